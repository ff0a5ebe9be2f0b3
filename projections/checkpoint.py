"""Checkpoints: the folded state plus its log position, written atomically.

File layout (format ``eventmodel.checkpoint``, schema 1)::

    <one line of JSON: the header>\\n<msgpack body>

The header names the format, schema, log URL, position, counts, body length and the
body's SHA-256. The body holds every table as rows (tuples in attrs field order,
flavors shared through one table), the tombstones and any open snapshot. A file is
written to a temporary name, fsynced and renamed, so a crash leaves either the old
set of checkpoints or the new one. A file that fails any check is reported and
skipped; start-up then takes the next newest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import immutables
import msgspec
from cattrs.preconf.msgspec import make_converter

from eventmodel.errors import ModelError
from eventmodel.clock import now_us
from eventmodel.codec import EventTypes
from eventmodel.events import INSTANCE, ComputeNode, ComputeService, Flavor, Instance
from eventmodel.log.base import Position
from projections.projection import bulk
from projections.state import ClusterState, OpenSnapshot, SnapshotResult

FORMAT = "eventmodel.checkpoint"
SCHEMA = 1
SUFFIX = ".ckpt"

_log = logging.getLogger(__name__)
_converter = make_converter()


class CheckpointError(ModelError, ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the log."""


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


#: entity classes stored as positional rows (fast); any other (a plugin's) goes through cattrs
ROW_CLASSES = (Instance, ComputeNode, ComputeService)


def entity_classes(types: EventTypes | None = None) -> dict[str, type]:
    """The entity classes a checkpoint may name, by class path: the built-in ones and
    those carried by the registered event types (plugins). Nothing else is ever loaded:
    a crafted file cannot make this process import a module."""
    allowed = {_class_path(c): c for c in ROW_CLASSES}
    types = types or EventTypes.builtin()
    for name in types.names():
        cls = types.get(name)
        attr = getattr(cls, "ENTITY", None) or getattr(cls, "KIND", None)
        if cls is None or not attr or not attrs.has(cls):
            continue
        try:
            attrs.resolve_types(cls)  # string annotations (``from __future__ import annotations``)
        except Exception:  # noqa: BLE001 - an annotation we cannot resolve names no entity class
            continue
        field = attrs.fields_dict(cls).get(attr)
        if field is not None and isinstance(field.type, type) and attrs.has(field.type):
            allowed[_class_path(field.type)] = field.type
    return allowed


def _load_class(path: str, allowed: dict[str, type]) -> type:
    cls = allowed.get(path)
    if cls is None:
        raise CheckpointError(f"entity class {path!r} is not a registered entity type (plugin not installed?)")
    return cls

_FLAVOR_GET = operator.attrgetter(*(f.name for f in attrs.fields(Flavor)))


def _FLAVOR_ROW(flavor: Flavor) -> tuple:  # noqa: N802 - used like the getter it wraps
    """A flavor as a hashable row: its extra specs (last field) as sorted pairs."""
    row = _FLAVOR_GET(flavor)
    return (*row[:-1], tuple(sorted(row[-1].items())))


def _flavor_of(row: list) -> Flavor:
    if len(row) < len(attrs.fields(Flavor)):  # written before flavors had extra specs
        return Flavor(*row)
    return Flavor(*row[:-1], dict(row[-1]))


def _encode_state(state: ClusterState) -> bytes:
    flavors: dict[tuple, int] = {}  # flavor as a plain tuple (C-speed hashing) → index
    kinds: dict[str, Any] = {}
    for kind, table in state.tables.items():
        if not len(table):
            kinds[kind] = {"class": None, "fields": [], "rows": []}
            continue
        cls = type(next(iter(table.values())))
        if cls not in ROW_CLASSES:
            # A plugin's entity: cattrs keeps its field types (tuples, nested attrs).
            kinds[kind] = {"class": _class_path(cls), "dicts": [_converter.unstructure(e) for e in table.values()]}
            continue
        names = [f.name for f in attrs.fields(cls)]
        getter = operator.attrgetter(*names)
        fi = names.index("flavor") if "flavor" in names else -1
        rows: list[Any] = []
        append = rows.append
        for ent in table.values():
            row = list(getter(ent))
            if fi >= 0:
                fl = _FLAVOR_ROW(row[fi])
                idx = flavors.get(fl)
                if idx is None:
                    idx = flavors[fl] = len(flavors)
                row[fi] = idx
            append(row)
        kinds[kind] = {"class": _class_path(cls), "fields": names, "flavor_field": fi, "rows": rows}
    body = {
        "flavors": list(flavors),
        "kinds": kinds,
        "tombstones": {k: list(t.items()) for k, t in state.tombstones.items()},
        "homes": {k: list(t.items()) for k, t in state.homes.items()},
        "ids": {k: list(t.items()) for k, t in state.ids.items()},
        "floors": {k: list(t.items()) for k, t in state.floors.items()},
        "open_snapshots": [
            {
                "snapshot_id": s.snapshot_id, "scope": list(s.scope), "partitions": s.partitions,
                "started_at": s.started_at, "started": sorted(s.started.items()), "completed": sorted(s.completed),
                "closed": sorted(s.closed),
                "observed": [list(k) for k in s.observed], "touched": [list(k) for k in s.touched],
                "corrected": s.corrected, "deleted": s.deleted, "reasons": sorted(s.reasons),
                "follows": s.follows,
            }
            for s in sorted(state.open_snapshots.values(), key=lambda s: (s.started_at, s.snapshot_id))
        ],
        "recent_snapshots": list(state.recent_snapshots),
        "superseded": list(state.superseded),
        "last_started": list(state.last_started),
        "horizons": list(state.horizons),
        "last_snapshot": _converter.unstructure(state.last_snapshot) if state.last_snapshot else None,
        "recorded_at": state.recorded_at,
        "applied": state.applied,
        "duplicates": state.duplicates,
        "rejected": state.rejected,
        "last_rejected": state.last_rejected,
        "sync_error": state.sync_error,
    }
    return msgspec.msgpack.encode(body)


def _decode_state(body: bytes, position: Position, allowed: dict[str, type]) -> ClusterState:
    d = msgspec.msgpack.decode(body)
    flavors = [_flavor_of(row) for row in d["flavors"]]
    intern = sys.intern
    tables = {}
    by_node = immutables.Map().mutate()
    for kind, spec in d["kinds"].items():
        m = immutables.Map().mutate()
        if "dicts" in spec:
            cls = _load_class(spec["class"], allowed)
            for item in spec["dicts"]:
                ent = _converter.structure(item, cls)
                m[ent.key] = ent
        elif spec["class"] is not None:
            cls = _load_class(spec["class"], allowed)
            names = [f.name for f in attrs.fields(cls)]
            if names != spec["fields"]:
                raise CheckpointError(f"{kind}: fields {spec['fields']} do not match {cls.__name__} {names}")
            fi = spec["flavor_field"]
            # Repeated short strings (hosts, states, projects) are shared, not copied.
            str_fields = [i for i, f in enumerate(attrs.fields(cls)) if i > 0 and f.name != "name"]
            for row in spec["rows"]:
                if fi >= 0:
                    row[fi] = flavors[row[fi]]
                for i in str_fields:
                    v = row[i]
                    if v.__class__ is str:
                        row[i] = intern(v)
                ent = cls(*row)
                m[ent.key] = ent
        table = m.finish()
        tables[kind] = table
        if kind == INSTANCE:
            groups: dict[str, Any] = {}
            for uuid, inst in table.items():
                if inst.node is not None:
                    g = groups.get(inst.node)
                    if g is None:
                        g = groups[inst.node] = immutables.Map().mutate()
                    g[uuid] = None
            for node, g in groups.items():
                by_node[node] = g.finish()
    tombstones = {k: immutables.Map(v) for k, v in d["tombstones"].items()}
    homes = {k: immutables.Map(v) for k, v in d.get("homes", {}).items()}
    ids = {
        k: immutables.Map((key, tuple(v) if v.__class__ is list else v) for key, v in items)
        for k, items in d.get("ids", {}).items()
    }
    snaps = {}
    for s in d["open_snapshots"]:
        snaps[s["snapshot_id"]] = OpenSnapshot(
            s["snapshot_id"], tuple(s["scope"]), s["partitions"], s["started_at"],
            immutables.Map((p, o) for p, o in s["started"]), frozenset(s["completed"]), frozenset(s.get("closed", s["completed"])),
            immutables.Map({tuple(k): None for k in s["observed"]}),
            immutables.Map({tuple(k): None for k in s["touched"]}),
            s["corrected"], s.get("deleted", 0), frozenset(s.get("reasons", ())), s.get("follows"),
        )
    last = d["last_snapshot"]
    return ClusterState(
        position=position,
        tables=immutables.Map(tables),
        tombstones=immutables.Map(tombstones),
        by_node=by_node.finish(),
        homes=immutables.Map(homes),
        ids=immutables.Map(ids),
        open_snapshots=immutables.Map(snaps),
        recent_snapshots=tuple(d["recent_snapshots"]),
        superseded=tuple(d.get("superseded", (-1,) * len(position.offsets))),
        last_started=tuple(d.get("last_started", (-1,) * len(position.offsets))),
        horizons=tuple(d.get("horizons", (0,) * len(position.offsets))),
        floors=immutables.Map({k: immutables.Map(v) for k, v in d.get("floors", {}).items()}),

        last_snapshot=_converter.structure(last, SnapshotResult) if last else None,
        recorded_at=d["recorded_at"],
        applied=d["applied"],
        duplicates=d.get("duplicates", 0),
        rejected=d.get("rejected", 0),
        last_rejected=d.get("last_rejected"),
        sync_error=d.get("sync_error"),
    )


def write_checkpoint(path: Path, state: ClusterState, *, log_url: str = "", log_id: str = "") -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    with bulk():
        body = _encode_state(state)
    header = {
        "format": FORMAT,
        "schema": SCHEMA,
        "log": log_url,
        "log_id": log_id,
        "position": list(state.position.offsets),
        "recorded_at": state.recorded_at,
        "created_at": now_us(),
        "counts": {k: len(t) for k, t in state.tables.items()},
        "body_bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        line = f.readline(1 << 20)
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise CheckpointError(f"{path}: header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an eventmodel checkpoint")
    if header.get("schema") != SCHEMA:
        raise CheckpointError(f"{path}: checkpoint schema {header.get('schema')}, this version reads {SCHEMA}")
    return header


def read_checkpoint(path: Path, types: EventTypes | None = None) -> ClusterState:
    """Load and verify one checkpoint; raise CheckpointError saying what is wrong.

    Entity classes are looked up among the registered ones (:func:`entity_classes`
    of ``types``), never imported by the name the file gives."""
    path = Path(path)
    try:
        header = read_header(path)
        with open(path, "rb") as f:
            f.readline(1 << 20)
            body = f.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if len(body) != header.get("body_bytes"):
        raise CheckpointError(f"{path}: body is {len(body)} bytes, header says {header.get('body_bytes')} (truncated?)")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (corrupt)")
    try:
        with bulk():
            return _decode_state(body, Position(tuple(header["position"])), entity_classes(types))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: body does not decode: {type(exc).__name__}: {exc}") from exc


@attrs.define
class Checkpointer:
    """Writes checkpoints into a directory, keeps the newest ``keep`` of its log's, and
    loads the newest valid one. ``log_id`` (the log's identity) keeps checkpoints of
    another log — or of a log that was recreated — from ever being used or counted.

    Positional checkpoints (``ladder`` > 0): besides the newest ``keep``, one checkpoint
    per ``ladder`` records of log position is kept (the first written in each such
    stretch), at most ``ladder_keep`` of them (the oldest go first), so that a replay to
    any covered point starts from the nearest one at or before it (``load(until=…)``)."""

    directory: Path = attrs.field(converter=Path)
    log_url: str = ""
    log_id: str = ""
    keep: int = 3
    skipped: list[str] = attrs.field(factory=list)  # why files were skipped at the last load
    loaded_position: Position | None = None  # position of the checkpoint the last load returned
    types: EventTypes | None = None  # event types whose entity classes checkpoints may hold
    ladder: int = 0  # records of log position between kept positional checkpoints (0: none kept)
    ladder_keep: int = 64  # the most positional checkpoints kept

    @classmethod
    def for_log(cls, directory: str | Path, log: object, keep: int = 3, *, ladder: int = 0,
                ladder_keep: int = 64) -> Checkpointer:
        codec = getattr(log, "codec", None)
        return cls(directory, log_url=getattr(log, "url", ""), log_id=getattr(log, "log_id", ""), keep=keep,
                   types=getattr(codec, "types", None), ladder=ladder, ladder_keep=ladder_keep)

    def __attrs_post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        """Checkpoint files, newest position first."""
        return sorted(self.directory.glob(f"checkpoint-*{SUFFIX}"), reverse=True)

    def _our_header(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint's header if it is this log's (readable, same log id), else None."""
        try:
            header = read_header(path)
        except (CheckpointError, OSError):
            return None
        other = header.get("log_id", "")
        return None if self.log_id and other and other != self.log_id else header

    def _ours(self, path: Path) -> bool:
        return self._our_header(path) is not None

    def write(self, state: ClusterState) -> Path:
        name = f"checkpoint-{state.position.total:015d}-{now_us()}{SUFFIX}"
        path = write_checkpoint(self.directory / name, state, log_url=self.log_url, log_id=self.log_id)
        # Keep the newest few of this log's (and with a ladder, one per stretch of it);
        # never the one just written, never another log's.
        mine = [p for p in self.files() if p != path and self._ours(p)]
        for old in self._positional(mine[max(0, self.keep - 1):]):
            old.unlink(missing_ok=True)
        return path

    def _positional(self, older: list[Path]) -> list[Path]:
        """Of ``older`` (newest first), those the ladder does not keep."""
        if self.ladder <= 0:
            return older
        kept: dict[int, Path] = {}
        drop: list[Path] = []
        for p in reversed(older):  # oldest first: the first of each stretch stays
            total = _total_of(p)
            stretch = -1 if total is None else total // self.ladder
            if stretch < 0 or stretch in kept:
                drop.append(p)
            else:
                kept[stretch] = p
        stretches = sorted(kept)
        drop.extend(kept[s] for s in stretches[:max(0, len(stretches) - self.ladder_keep)])
        return drop

    def positions(self) -> list[Position]:
        """Positions of this log's checkpoints in the directory, newest first (headers only)."""
        headers = (self._our_header(p) for p in self.files())
        return [Position(tuple(h["position"])) for h in headers if h is not None]

    def load(self, partitions: int, log_end: Position | None = None,
             log_start: Position | None = None, *, until: Position | None = None) -> ClusterState | None:
        """The newest checkpoint that verifies and fits the log — its position within
        ``log_start``..``log_end`` — or None if there is none. With ``until``, the newest
        at or before that position (checkpoints past it are passed over, not reported)."""
        self.skipped = []
        self.loaded_position = None
        for path in self.files():
            try:
                header = read_header(path)
                if until is not None:
                    pos = header.get("position")
                    if (isinstance(pos, list) and len(pos) == len(until.offsets)
                            and not until.covers(Position(tuple(pos)))):
                        continue
                other = header.get("log_id", "")
                if self.log_id and other and other != self.log_id:
                    raise CheckpointError(f"{path}: made for another log ({other}, this is {self.log_id})")
                state = read_checkpoint(path, self.types)
                if len(state.position.offsets) != partitions:
                    raise CheckpointError(
                        f"{path}: made for {len(state.position.offsets)} partitions, the log has {partitions}")
                if log_end is not None and not log_end.covers(state.position):
                    raise CheckpointError(
                        f"{path}: position {state.position} is past the log's end {log_end} (another log?)")
                if log_start is not None and not state.position.covers(log_start):
                    raise CheckpointError(
                        f"{path}: position {state.position} is before the log's start {log_start}: the records "
                        "after it were deleted (retention), so its tail cannot be replayed")
            except CheckpointError as exc:
                _log.warning("skipping checkpoint: %s", exc)
                self.skipped.append(str(exc))
                continue
            self.loaded_position = state.position
            return state
        return None


def _total_of(path: Path) -> int | None:
    """The position total a checkpoint's file name carries (``checkpoint-<total>-<time>``)."""
    parts = path.name.split("-")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None
