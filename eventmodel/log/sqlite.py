"""The embedded log: one SQLite file in WAL mode, one partition.

Layout (format 1)::

    events(offset INTEGER PRIMARY KEY,    -- 0, 1, 2, ... (the partition-0 offset)
           event_id TEXT, type TEXT, key TEXT, recorded_at INTEGER, value BLOB)
    dead_letters(id INTEGER PRIMARY KEY, at INTEGER, source TEXT, reason TEXT, raw BLOB)
    meta(name TEXT PRIMARY KEY, value TEXT)

``synchronous=FULL``: a committed batch survives a power cut. Readers use their own
connection, so a follower tails the file while a writer appends to it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence

from eventmodel.codec import Codec
from eventmodel.events import Envelope
from eventmodel.log.base import (
    DeadLetter,
    LogError,
    Position,
    RawRecord,
    Record,
    decode_batches,
)

FORMAT = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    offset INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_recorded_at ON events(recorded_at);
CREATE INDEX IF NOT EXISTS events_key ON events(key);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteEventLog:
    """The embedded default backend (``sqlite:///relative.db``, ``sqlite:////abs.db``)."""

    def __init__(self, path: str, codec: Codec | None = None, *, url: str | None = None,
                 create: bool = True) -> None:
        """Open (and with ``create``, make if needed) the log file at ``path``. Without
        ``create``, a missing file or one that is not an eventmodel log is refused and
        left untouched."""
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self.codec = codec or Codec()
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise LogError(f"cannot open {self.url}: directory {parent} does not exist")
        if not create and not os.path.exists(path):
            raise LogError(f"{self.url}: no such log file ({os.path.abspath(path)})")
        self._lock = threading.Lock()
        try:
            self._w = self._connect()
            if not create:
                has_meta = self._w.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
                if not has_meta:
                    self._w.close()
                    raise LogError(f"{self.url}: not an eventmodel log (no meta table)")
            with self._w:
                self._w.executescript(_SCHEMA)
                row = self._w.execute("SELECT value FROM meta WHERE name='format'").fetchone()
                if row is None:
                    self._w.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
                elif row[0] != FORMAT:
                    raise LogError(f"{path}: log format {row[0]}, this version reads {FORMAT}")
                self._w.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)", (f"sqlite:{uuid.uuid4()}",))
                #: what this log is, wherever the file moves: made once, when the log is created
                self.log_id = self._w.execute("SELECT value FROM meta WHERE name='log_id'").fetchone()[0]
            self._r = self._connect()
        except sqlite3.DatabaseError as exc:
            raise LogError(f"cannot open {self.url}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    # -- writing ---------------------------------------------------------
    def partitions(self) -> int:
        return 1

    def append(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        encode = self.codec.encode
        values = [encode(e) for e in envelopes]
        with self._lock:
            try:
                self._w.execute("BEGIN IMMEDIATE")
                (nxt,) = self._w.execute("SELECT coalesce(max(offset) + 1, 0) FROM events").fetchone()
                self._w.executemany(
                    "INSERT INTO events(offset, event_id, type, key, recorded_at, value) "
                    "VALUES (?,?,?,?,?,?)",
                    [
                        (nxt + i, e.event_id, e.type, e.key, e.recorded_at, v)
                        for i, (e, v) in enumerate(zip(envelopes, values))
                    ],
                )
                self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    self._w.execute("ROLLBACK")
                raise LogError(f"append to {self.url} failed: {exc}") from exc

    def append_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with self._lock:
            try:
                self._w.execute("BEGIN IMMEDIATE")
                self._w.executemany(
                    "INSERT INTO dead_letters(at, source, reason, raw) VALUES (?,?,?,?)",
                    [(d.at, d.source, d.reason, d.raw) for d in letters],
                )
                self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    self._w.execute("ROLLBACK")
                raise LogError(f"dead-letter append to {self.url} failed: {exc}") from exc

    # -- reading ---------------------------------------------------------
    def end(self) -> Position:
        with self._lock:
            row = self._r.execute("SELECT max(offset) FROM events").fetchone()
        return Position(((row[0] + 1) if row[0] is not None else 0,))

    def read_raw(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[RawRecord]]:
        lo = start.offsets[0] if start is not None else 0
        hi = (end or self.end()).offsets[0]
        while lo < hi:
            with self._lock:
                rows = self._r.execute(
                    "SELECT offset, value FROM events WHERE offset >= ? AND offset < ? "
                    "ORDER BY offset LIMIT ?",
                    (lo, hi, batch),
                ).fetchall()
            if not rows:
                return
            yield [RawRecord(0, off, val) for off, val in rows]
            lo = rows[-1][0] + 1

    def read(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[Record]]:
        return decode_batches(self.read_raw(start, end, batch), self.codec)

    def read_key(self, key: str) -> Iterator[Record]:
        """Every record of one entity key, in log order (uses the key index)."""
        with self._lock:
            rows = self._r.execute(
                "SELECT offset, value FROM events WHERE key = ? ORDER BY offset", (key,)
            ).fetchall()
        for batch in decode_batches(iter([[RawRecord(0, o, v) for o, v in rows]]), self.codec):
            yield from batch

    def position_at(self, time_us: int) -> Position:
        with self._lock:
            row = self._r.execute(
                "SELECT min(offset) FROM events WHERE recorded_at > ?", (time_us,)
            ).fetchone()
        if row[0] is None:
            return self.end()
        return Position((row[0],))

    def dead_letters(self) -> Iterator[DeadLetter]:
        with self._lock:
            rows = self._r.execute(
                "SELECT id, at, source, reason, raw FROM dead_letters ORDER BY id"
            ).fetchall()
        for id_, at, source, reason, raw in rows:
            yield DeadLetter(raw=bytes(raw), reason=reason, source=source, at=at, offset=id_)

    def close(self) -> None:
        with self._lock:
            self._r.close()
            self._w.close()

    def __enter__(self) -> SqliteEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
