"""The embedded log: one SQLite file in WAL mode, one partition.

Layout (format 1)::

    events(offset INTEGER PRIMARY KEY,    -- 0, 1, 2, ... (the partition-0 offset)
           event_id TEXT, type TEXT, key TEXT, recorded_at INTEGER, value BLOB)
    dead_letters(id INTEGER PRIMARY KEY, at INTEGER, source TEXT, reason TEXT, raw BLOB,
                 size INTEGER, sha256 TEXT)   -- size/sha256: of the whole input
    meta(name TEXT PRIMARY KEY, value TEXT)

``synchronous=FULL``: a committed batch survives a power cut. Readers use their own
connection, so a follower tails the file while a writer appends to it.

Files written before dead letters had ``size``/``sha256`` are migrated when opened
for writing (two columns added, filled from the stored bytes, which were whole).

Limits and errors, as for Kafka: a record (key + value) over ``max_record_bytes``
(default 1,000,000, ``sqlite:///x.db?max_record_bytes=N``) is refused for good —
:class:`RecordsRejected` after every other record of the batch was stored, in the
same transaction. A read from a position before the first stored record (rows
deleted by hand) or past the end raises :class:`PositionNotCovered`; a position with
more than one offset raises :class:`PartitionsChanged`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import uuid
from typing import Any
from collections.abc import Iterator, Sequence

from eventmodel.codec import Codec
from eventmodel.events import Envelope
from eventmodel.log.base import (
    DeadLetter,
    LogError,
    LogUrlError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
    RawRecord,
    Record,
    RecordsRejected,
    bounded_dead_letter,
    decode_batches,
)

from eventmodel.log.key_page import KeyPage

FORMAT = "1"
#: the default largest record (key + value bytes): the order of Kafka's message.max.bytes
DEFAULT_MAX_RECORD_BYTES = 1_000_000

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
    raw BLOB NOT NULL,
    size INTEGER NOT NULL DEFAULT -1,
    sha256 TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteEventLog:
    """The embedded default backend (``sqlite:///relative.db``, ``sqlite:////abs.db``)."""

    def __init__(self, path: str, codec: Codec | None = None, *, url: str | None = None,
                 create: bool = True, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        """Open (and with ``create``, make if needed) the log file at ``path``. Without
        ``create``, a missing file or one that is not an eventmodel log is refused and
        left untouched. ``max_record_bytes`` bounds one record (key + value)."""
        if max_record_bytes < 1:
            raise LogUrlError(f"{url or path}: max_record_bytes must be >= 1, not {max_record_bytes}")
        #: a record (key + value) larger than this is refused (RecordsRejected)
        self.max_record_bytes = max_record_bytes
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
                self._migrate()
                self._w.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)", (f"sqlite:{uuid.uuid4()}",))
                #: what this log is, wherever the file moves: made once, when the log is created
                self.log_id = self._w.execute("SELECT value FROM meta WHERE name='log_id'").fetchone()[0]
            self._r: sqlite3.Connection | None = self._connect()
        except sqlite3.DatabaseError as exc:
            raise LogError(f"cannot open {self.url}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _migrate(self) -> None:
        """Bring an older file's tables up to date (inside the opening transaction)."""
        cols = {row[1] for row in self._w.execute("PRAGMA table_info(dead_letters)")}
        if "size" in cols and "sha256" in cols:
            return
        if "size" not in cols:
            self._w.execute("ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT -1")
        if "sha256" not in cols:
            self._w.execute("ALTER TABLE dead_letters ADD COLUMN sha256 TEXT NOT NULL DEFAULT ''")
        # dead letters stored before were kept whole: their size and hash are those of raw
        rows = self._w.execute("SELECT id, raw FROM dead_letters WHERE sha256 = ''").fetchall()
        self._w.executemany(
            "UPDATE dead_letters SET size = ?, sha256 = ? WHERE id = ?",
            [(len(raw), hashlib.sha256(raw).hexdigest(), id_) for id_, raw in rows],
        )

    # -- writing ---------------------------------------------------------
    def partitions(self) -> int:
        return 1

    def _query(self, sql: str, args: tuple = (), *, many: bool = False) -> Any:
        """One read query; a damaged or vanished file raises LogError naming it."""
        try:
            with self._lock:
                if self._r is None:  # dropped after an error: the file may be whole again
                    self._r = self._connect()
                cur = self._r.execute(sql, args)
                return cur.fetchall() if many else cur.fetchone()
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                self._drop_reader()  # a damaged file: read it afresh next time
            raise LogError(f"cannot read {self.url} ({os.path.abspath(self.path)}): "
                           f"{type(exc).__name__}: {exc}") from exc

    def _drop_reader(self) -> None:
        with self._lock:
            r, self._r = self._r, None
        if r is not None:
            try:
                r.close()
            except sqlite3.Error:
                pass

    def start(self) -> Position:
        """The first stored offset: 0 unless rows were deleted (then the first left, or the end)."""
        lo, hi = self._query("SELECT min(offset), max(offset) FROM events")
        return Position((lo if lo is not None else 0 if hi is None else hi + 1,))

    def append(self, envelopes: Sequence[Envelope]) -> None:
        """Store the batch in one transaction. Records over ``max_record_bytes`` are
        left out and reported by :class:`RecordsRejected` after the rest committed."""
        if not envelopes:
            return
        encode = self.codec.encode
        limit = self.max_record_bytes
        rejected: dict[int, str] = {}
        rows: list[tuple[Envelope, bytes]] = []
        for i, e in enumerate(envelopes):
            v = encode(e)
            size = len(v) + len(e.key.encode())
            if size > limit:
                rejected[i] = (f"{e.type} {e.key!r}: record of {size} bytes exceeds max_record_bytes "
                               f"{limit} of {self.url}")
            else:
                rows.append((e, v))
        if rows:
            self._insert(rows)
        if rejected:
            raise RecordsRejected(rejected)

    def _insert(self, rows: list[tuple[Envelope, bytes]]) -> None:
        with self._lock:
            try:
                self._w.execute("BEGIN IMMEDIATE")
                (nxt,) = self._w.execute("SELECT coalesce(max(offset) + 1, 0) FROM events").fetchone()
                self._w.executemany(
                    "INSERT INTO events(offset, event_id, type, key, recorded_at, value) "
                    "VALUES (?,?,?,?,?,?)",
                    [
                        (nxt + i, e.event_id, e.type, e.key, e.recorded_at, v)
                        for i, (e, v) in enumerate(rows)
                    ],
                )
                self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    self._w.execute("ROLLBACK")
                raise LogError(f"append to {self.url} failed: {exc}") from exc

    def append_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters, bounded (:func:`bounded_dead_letter`): never refused for size."""
        if not letters:
            return
        bounded = [bounded_dead_letter(d) for d in letters]
        with self._lock:
            try:
                self._w.execute("BEGIN IMMEDIATE")
                self._w.executemany(
                    "INSERT INTO dead_letters(at, source, reason, raw, size, sha256) VALUES (?,?,?,?,?,?)",
                    [(d.at, d.source, d.reason, d.raw, d.size, d.sha256) for d in bounded],
                )
                self._w.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._w.in_transaction:
                    self._w.execute("ROLLBACK")
                raise LogError(f"dead-letter append to {self.url} failed: {exc}") from exc

    # -- reading ---------------------------------------------------------
    def end(self) -> Position:
        row = self._query("SELECT max(offset) FROM events")
        return Position(((row[0] + 1) if row[0] is not None else 0,))

    def _check(self, pos: Position, what: str) -> None:
        if len(pos.offsets) != 1:
            raise PartitionsChanged(
                f"{self.url}: {what} position {pos} has {len(pos.offsets)} partitions, this log has 1 "
                "(a position of another log?); replay from the log start instead", len(pos.offsets), 1)

    def read_raw(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[RawRecord]]:
        """Records from ``start`` (default: the first stored) up to ``end`` (default: the end
        now). Raises :class:`PositionNotCovered` at once if ``start`` lies before the first
        stored record or past the end, or ``end`` past the end."""
        if start is not None:
            self._check(start, "start")
        if end is not None:
            self._check(end, "end")
        first, last = self._query("SELECT min(offset), max(offset) FROM events")
        stop = last + 1 if last is not None else 0
        lo = start.offsets[0] if start is not None else (first or 0)
        hi = end.offsets[0] if end is not None else stop
        if lo > stop or hi > stop:
            bad = lo if lo > stop else hi
            raise PositionNotCovered(
                f"{self.url}: position {bad} is past the log's end {stop}: it belongs to another log or "
                f"an earlier incarnation of this file ({stop - bad} record(s) missing). Discard it: replay "
                f"from the log start and run a full sync (eventmodel sync)")
        first = first if first is not None else stop
        if lo < first and lo < hi:
            raise PositionNotCovered(
                f"{self.url}: partition 0: records {lo}..{first - 1} ({first - lo} record(s)) before the "
                f"log start {first} were deleted; reading from {lo} would lose them. Restore from a "
                f"checkpoint at or after {first}, or replay from the log start ({first}) and run a full "
                f"sync (eventmodel sync) so that the model is complete again")
        return self._rows(lo, hi, batch)

    def _rows(self, lo: int, hi: int, batch: int) -> Iterator[list[RawRecord]]:
        while lo < hi:
            rows = self._query("SELECT offset, value FROM events WHERE offset >= ? AND offset < ? "
                               "ORDER BY offset LIMIT ?", (lo, hi, batch), many=True)
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
        rows = self._query("SELECT offset, value FROM events WHERE key = ? ORDER BY offset", (key,), many=True)
        for batch in decode_batches(iter([[RawRecord(0, o, v) for o, v in rows]]), self.codec):
            yield from batch

    def read_key_back(self, key: str, before: int | None = None, limit: int = 100) -> KeyPage:
        """Up to ``limit`` records of one key with offsets below ``before`` (default: all),
        newest first: a backward walk of the key index, O(limit) whatever the key's history."""
        hi = before if before is not None else 1 << 62
        rows = self._query("SELECT offset, value FROM events WHERE key = ? AND offset < ? ORDER BY offset DESC "
                           "LIMIT ?", (key, hi, limit + 1), many=True)
        more = len(rows) > limit
        rows = rows[:limit]
        records = [r for batch in decode_batches(iter([[RawRecord(0, o, v) for o, v in rows]]), self.codec)
                   for r in batch]
        return KeyPage(records, rows[-1][0] if more and rows else None)

    def position_at(self, time_us: int) -> Position:
        row = self._query("SELECT min(offset) FROM events WHERE recorded_at > ?", (time_us,))
        if row[0] is None:
            return self.end()
        return Position((row[0],))

    def dead_letters(self) -> Iterator[DeadLetter]:
        rows = self._query("SELECT id, at, source, reason, raw, size, sha256 FROM dead_letters ORDER BY id",
                           many=True)
        for id_, at, source, reason, raw, size, sha256 in rows:
            yield DeadLetter(raw=bytes(raw), reason=reason, source=source, at=at, offset=id_,
                             size=size, sha256=sha256)

    def close(self) -> None:
        with self._lock:
            if self._r is not None:
                self._r.close()
            self._w.close()

    def __enter__(self) -> SqliteEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
