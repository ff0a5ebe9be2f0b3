"""Fold rules: records in, a new :class:`ClusterState` out. Pure: the input state is
never changed, the same records always give the same state.

Rules (DESIGN.md, "Ordering, idempotence, reconciliation"; ADR 0004):

* **Versions come from the source.** An entity's version is the source's own
  timestamp (``updated_at``, else ``created_at``, else the lowest version). A live
  record strictly older than the entity changes nothing; on an equal version the
  later record in log order wins.
* **Duplicates at any distance are no-ops.** A record at or below the state's
  position on its partition is skipped. Per entity the fold remembers the event ids
  applied at its current version (``ids``) and skips a record whose id is there; a
  record of an older version is skipped by the version rule, a delete's copy by the
  tombstone.
* A delete removes the entity and leaves a tombstone with its version; only a record
  strictly newer than the tombstone brings the key back.
* **A full sync is a snapshot inside the stream**: ``snapshot.started`` (every
  partition) → ``*.observed`` / ``*.seen`` records → ``snapshot.completed`` or
  ``snapshot.aborted`` (every partition). Each partition has its own window, from its
  ``started`` to its closing marker. An observed record of a key that no live record
  touched in its partition's window replaces the entity *whatever the versions* (it
  is the freshest read of the source's database) and clears a tombstone; for a
  touched key the version rule applies and an equal version goes to the live record
  (DBLog's watermark rule). An observation outside any window (its ``started`` was
  never read) applies by the version rule and loses ties. A ``seen`` record (a
  partial API record) only marks its key as seen.
* When ``completed`` is read on a partition, each entity of the snapshot's scope that
  lives in that partition, was not observed or seen and was not touched in that
  window is deleted (tombstone: the entity's own version). ``aborted`` closes the
  window without deletions. All of an entity's records are in its key's partition,
  so the outcome never depends on how a reader interleaves partitions.
* A ``completed`` on a partition also closes, on that partition, every open
  snapshot that started before it (its syncer died or its marker was partial).
  Once every partition is closed the outcome is reported: ``last_snapshot`` when all
  completed, else ``sync_error`` saying on how many partitions it failed and why.
* Observed records that changed the model plus those deletions are the snapshot's
  drift: what lost notifications had left wrong.
* Liveness comes from the API: a live service record can say a service is down
  (forced down), never that it is up again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import attrs
import immutables

from eventmodel.events import (
    INSTANCE, SERVICE, ComputeServiceChanged, SnapshotAborted, SnapshotCompleted, SnapshotStarted, entity_of,
)
from eventmodel.log.base import Position, Record
from projections.state import EMPTY, ClusterState, OpenSnapshot, SnapshotResult

_log = logging.getLogger(__name__)

#: how many finished snapshot ids are remembered to recognise duplicate markers
RECENT_SNAPSHOTS = 32
#: tombstones older than this (source time) before a completed snapshot are dropped
TOMBSTONE_TTL_US = 24 * 3600 * 1_000_000


def fold(state: ClusterState, records: Iterable[Record]) -> ClusterState:
    """Apply records in order and return the new state.

    A record the rules cannot apply (e.g. a plugin's event whose entity has no
    ``key``/``version``) is counted in ``rejected`` and skipped: one bad record never
    stops the model."""
    b = _Builder(state)
    apply = b.apply
    for rec in records:
        try:
            apply(rec)
        except Exception as exc:  # noqa: BLE001
            b.reject(rec, exc)
    return b.finish()


def _same_but_version(a: object, b: object) -> bool:
    return attrs.evolve(a, version=b.version) == b  # type: ignore[attr-defined]


def _has_id(seen: object, eid: str) -> bool:
    return seen == eid or (seen.__class__ is tuple and eid in seen)  # type: ignore[operator]


def _add_id(seen: object, eid: str) -> str | tuple[str, ...]:
    if seen is None:
        return eid
    if seen.__class__ is tuple:
        return (*seen, eid)  # type: ignore[misc]
    return (seen, eid)  # type: ignore[return-value]


class _PerKind:
    """A ``kind → Map`` being changed in one fold: a mutation per kind, made on first use."""

    __slots__ = ("base", "open")

    def __init__(self, base: immutables.Map) -> None:
        self.base = base
        self.open: dict[str, immutables.MapMutation] = {}

    def __call__(self, kind: str) -> immutables.MapMutation:
        m = self.open.get(kind)
        if m is None:
            m = self.open[kind] = self.base.get(kind, EMPTY).mutate()
        return m

    def current(self, kind: str) -> immutables.Map:
        """What the kind's map holds now (a mutation cannot be iterated)."""
        m = self.open.get(kind)
        if m is None:
            return self.base.get(kind, EMPTY)
        done = m.finish()
        self.open[kind] = done.mutate()
        return done

    def finish(self) -> immutables.Map:
        if not self.open:
            return self.base
        out = self.base.mutate()
        for kind, m in self.open.items():
            out[kind] = m.finish()
        return out.finish()


class _Builder:
    """Batches mutations of one fold call; never visible outside :func:`fold`."""

    __slots__ = (
        "state", "_table", "_tomb", "_home", "_ids", "by_node", "snaps", "offsets", "recorded_at",
        "applied", "duplicates", "recent", "last_snapshot", "rejected", "last_rejected", "sync_error",
        "multi",
    )

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._table = _PerKind(state.tables)
        self._tomb = _PerKind(state.tombstones)
        self._home = _PerKind(state.homes)
        self._ids = _PerKind(state.ids)
        self.by_node = state.by_node.mutate()
        self.snaps: dict[str, OpenSnapshot] = dict(state.open_snapshots.items())
        self.offsets = list(state.position.offsets)
        self.recorded_at = state.recorded_at
        self.applied = state.applied
        self.duplicates = state.duplicates
        self.recent = state.recent_snapshots
        self.last_snapshot = state.last_snapshot
        self.rejected = state.rejected
        self.sync_error = state.sync_error
        self.last_rejected = state.last_rejected
        self.multi = len(self.offsets) > 1  # several partitions: remember each key's

    # -- plumbing ----------------------------------------------------------
    def _index_remove(self, inst: object) -> None:
        node = inst.node  # type: ignore[attr-defined]
        if node is not None:
            members = self.by_node.get(node)
            if members is not None:
                members = members.delete(inst.uuid)  # type: ignore[attr-defined]
                if len(members):
                    self.by_node[node] = members
                else:
                    del self.by_node[node]

    def _index_add(self, inst: object) -> None:
        node = inst.node  # type: ignore[attr-defined]
        if node is not None:
            self.by_node[node] = self.by_node.get(node, EMPTY).set(inst.uuid, None)  # type: ignore[attr-defined]

    def _put(self, kind: str, key: str, old: object | None, new: object, partition: int) -> None:
        self._table(kind)[key] = new
        if old is None and self.multi:
            self._home(kind)[key] = partition
        if kind == INSTANCE and (old is None or old.node != new.node):  # type: ignore[attr-defined]
            if old is not None:
                self._index_remove(old)
            self._index_add(new)

    def _remove(self, kind: str, key: str, old: object, version: int) -> None:
        del self._table(kind)[key]
        ids = self._ids(kind)
        if key in ids:
            del ids[key]
        if self.multi:
            homes = self._home(kind)
            if key in homes:
                del homes[key]
        if kind == INSTANCE:
            self._index_remove(old)
        self._tomb(kind)[key] = version

    def _touch(self, kind: str, key: str, partition: int) -> None:
        """A live record inside a snapshot's window on its partition."""
        for sid, snap in self.snaps.items():
            if snap.open_on(partition):
                self.snaps[sid] = attrs.evolve(snap, touched=snap.touched.set((kind, key), None))

    def reject(self, rec: Record, exc: Exception) -> None:
        p = rec.partition
        if rec.offset >= self.offsets[p]:
            self.offsets[p] = rec.offset + 1
        self.rejected += 1
        self.last_rejected = (f"{rec.partition}:{rec.offset} {rec.envelope.type}: "
                              f"{type(exc).__name__}: {exc}")[:500]
        _log.warning("fold: skipped record %s", self.last_rejected)

    # -- records -----------------------------------------------------------
    def apply(self, rec: Record) -> None:
        env = rec.envelope
        p = rec.partition
        offsets = self.offsets
        if rec.offset < offsets[p]:
            self.duplicates += 1  # at or below our position: already folded
            return
        offsets[p] = rec.offset + 1
        if env.recorded_at > self.recorded_at:
            self.recorded_at = env.recorded_at
        self.applied += 1
        payload = env.payload
        effect = payload.EFFECT
        if effect != "upsert":
            if effect == "delete":
                self._delete(payload, p, env.event_id)
            elif effect == "observe":
                self._observe(payload, p, env.event_id)
            elif effect == "seen":
                self._seen(payload, p)
            elif effect == "marker":
                if isinstance(payload, SnapshotStarted):
                    self._started(payload, p, env.occurred_at)
                elif isinstance(payload, SnapshotCompleted):
                    self._completed(payload, p, env.occurred_at)
                elif isinstance(payload, SnapshotAborted):
                    self._aborted(payload, p)
            return
        # The hot path, inlined: a live record carrying an entity's new state.
        kind = payload.KIND
        entity = getattr(payload, payload.ENTITY or kind)
        key = entity.key
        eid = env.event_id
        table = self._table(kind)
        old = table.get(key)
        if old is None:
            tomb = self._tomb(kind).get(key)
            if tomb is not None:
                if entity.version <= tomb:
                    if self.snaps:
                        self._touch(kind, key, p)
                    return
                del self._tomb(kind)[key]
            if self.snaps:
                self._touch(kind, key, p)
            self._put(kind, key, None, entity, p)
            self._ids(kind)[key] = eid
            return
        version = entity.version
        if version > old.version:
            self._ids(kind)[key] = eid
        elif version == old.version:
            ids = self._ids(kind)
            seen = ids.get(key)
            if _has_id(seen, eid):
                self.duplicates += 1
                return
            ids[key] = _add_id(seen, eid)
        else:
            if self.snaps:
                self._touch(kind, key, p)
            return
        if self.snaps:
            self._touch(kind, key, p)
        if kind == SERVICE and not old.up and entity.up and payload.__class__ is ComputeServiceChanged:
            entity = attrs.evolve(entity, up=False)  # only the API says a service is up
        if kind == INSTANCE and old.node == entity.node:
            table[key] = entity
        else:
            self._put(kind, key, old, entity, p)

    def _delete(self, payload: object, partition: int, eid: str) -> None:
        kind = payload.KIND  # type: ignore[attr-defined]
        entity = entity_of(payload)
        key = entity.key  # type: ignore[union-attr]
        version = entity.version  # type: ignore[union-attr]
        if self.snaps:
            self._touch(kind, key, partition)
        old = self._table(kind).get(key)
        if old is None:
            tombs = self._tomb(kind)
            if tombs.get(key, -1) < version:
                tombs[key] = version
        elif version >= old.version:
            self._remove(kind, key, old, version)

    def _window(self, sid: str, partition: int) -> OpenSnapshot | None:
        snap = self.snaps.get(sid)
        return snap if snap is not None and snap.open_on(partition) else None

    def _seen(self, payload: object, partition: int) -> None:
        snap = self._window(payload.snapshot_id, partition)  # type: ignore[attr-defined]
        if snap is not None:
            k = (payload.KIND, payload.uuid)  # type: ignore[attr-defined]
            self.snaps[snap.snapshot_id] = attrs.evolve(snap, observed=snap.observed.set(k, None))

    def _observe(self, payload: object, partition: int, eid: str) -> None:
        kind = payload.KIND  # type: ignore[attr-defined]
        entity = entity_of(payload)
        if entity is None:
            return
        key = entity.key  # type: ignore[attr-defined]
        version = entity.version  # type: ignore[attr-defined]
        snap = self._window(payload.snapshot_id, partition)  # type: ignore[attr-defined]
        table = self._table(kind)
        old = table.get(key)
        ids = self._ids(kind)
        seen = ids.get(key) if old is not None else None
        if _has_id(seen, eid):
            self.duplicates += 1
            return
        if snap is not None:
            snap = attrs.evolve(snap, observed=snap.observed.set((kind, key), None))
        changed = False
        if snap is not None and (kind, key) not in snap.touched:
            # Authoritative: nothing changed this key since the sync started reading.
            if old is None:
                tombs = self._tomb(kind)
                if key in tombs:
                    del tombs[key]
                self._put(kind, key, None, entity, partition)
                ids[key] = eid
                changed = True
            else:
                # Keep the ids of a newer version this observation overrides: their
                # late copies must not undo it.
                ids[key] = _add_id(seen, eid) if old.version >= version else eid
                if old != entity:
                    changed = not _same_but_version(old, entity)
                    self._put(kind, key, old, entity, partition)
        elif old is None:
            tomb = self._tomb(kind).get(key)
            if tomb is None or version > tomb:
                if tomb is not None:
                    del self._tomb(kind)[key]
                self._put(kind, key, None, entity, partition)
                ids[key] = eid
                changed = True
        elif version > old.version:
            ids[key] = eid
            changed = not _same_but_version(old, entity)
            self._put(kind, key, old, entity, partition)
        if snap is not None:
            if changed:
                snap = attrs.evolve(snap, corrected=snap.corrected + 1)
            self.snaps[snap.snapshot_id] = snap

    # -- markers -----------------------------------------------------------
    def _started(self, m: SnapshotStarted, partition: int, occurred_at: int) -> None:
        if m.snapshot_id in self.recent:
            return  # a copy of a finished snapshot's marker
        snap = self.snaps.get(m.snapshot_id)
        if snap is None:
            snap = OpenSnapshot(m.snapshot_id, tuple(m.scope), max(1, m.partitions), occurred_at)
        if partition not in snap.started and partition not in snap.closed:
            self.snaps[m.snapshot_id] = attrs.evolve(snap, started=snap.started | {partition})

    def _completed(self, m: SnapshotCompleted, partition: int, occurred_at: int) -> None:
        snap = self._window(m.snapshot_id, partition)
        if snap is None:
            return  # a copy, or its start was never read on this partition
        # Reconcile this partition's entities now: every record of theirs is in this
        # partition, so what a reader interleaves from other partitions cannot matter.
        deleted = 0
        for kind in snap.scope:
            table = self._table.current(kind)
            homes = self._home.current(kind) if self.multi else None
            gone = [
                (key, ent)
                for key, ent in table.items()
                if (homes is None or homes.get(key, partition) == partition)
                and (kind, key) not in snap.observed and (kind, key) not in snap.touched
            ]
            for key, ent in gone:
                self._remove(kind, key, ent, ent.version)
            deleted += len(gone)
        snap = attrs.evolve(snap, completed=snap.completed | {partition}, closed=snap.closed | {partition},
                            deleted=snap.deleted + deleted)
        self.snaps[m.snapshot_id] = snap
        # A sync that started before this one and is still open here was abandoned (its
        # syncer died, or its markers reached only some partitions): this one supersedes it.
        for sid, other in list(self.snaps.items()):
            if sid != m.snapshot_id and other.started_at < snap.started_at and other.open_on(partition):
                self._close(sid, attrs.evolve(
                    other, closed=other.closed | {partition},
                    reason=other.reason or f"superseded by full sync {m.snapshot_id}"), occurred_at)
        self._close(m.snapshot_id, snap, occurred_at)

    def _aborted(self, m: SnapshotAborted, partition: int) -> None:
        if m.snapshot_id in self.recent:
            return
        snap = self.snaps.get(m.snapshot_id)
        if snap is None:
            # It failed before its started marker reached this state's log: say so once.
            self.sync_error = f"full sync {m.snapshot_id} failed: {m.reason}"
            self.recent = (*self.recent, m.snapshot_id)[-RECENT_SNAPSHOTS:]
            return
        if partition in snap.closed:
            return
        snap = attrs.evolve(snap, closed=snap.closed | {partition}, reason=snap.reason or m.reason)
        self._close(m.snapshot_id, snap, 0)

    def _close(self, sid: str, snap: OpenSnapshot, occurred_at: int) -> None:
        """Store ``snap``; once every partition is closed, report its outcome."""
        if len(snap.closed) < snap.partitions:
            self.snaps[sid] = snap
            return
        del self.snaps[sid]
        self.recent = (*self.recent, sid)[-RECENT_SNAPSHOTS:]
        if len(snap.completed) < snap.partitions:
            done = len(snap.completed)
            where = f" (completed on {done} of {snap.partitions} partitions)" if done else ""
            self.sync_error = f"full sync {sid} failed{where}: {snap.reason or 'aborted'}"
            return
        for kind in snap.scope:
            self._prune_tombstones(kind, snap.started_at - TOMBSTONE_TTL_US)
        self.last_snapshot = SnapshotResult(
            snap.snapshot_id, snap.started_at, occurred_at,
            observed=len(snap.observed), corrected=snap.corrected + snap.deleted, deleted=snap.deleted,
        )
        self.sync_error = None

    def _prune_tombstones(self, kind: str, older_than: int) -> None:
        current = self._tomb.current(kind)
        old = [k for k, v in current.items() if v < older_than]
        if old:
            tombs = self._tomb(kind)
            for k in old:
                del tombs[k]

    # -- result ------------------------------------------------------------
    def finish(self) -> ClusterState:
        return ClusterState(
            position=Position(tuple(self.offsets)),
            homes=self._home.finish(),
            ids=self._ids.finish(),
            tables=self._table.finish(),
            tombstones=self._tomb.finish(),
            by_node=self.by_node.finish(),
            open_snapshots=immutables.Map(self.snaps),
            recent_snapshots=self.recent,
            last_snapshot=self.last_snapshot,
            recorded_at=self.recorded_at,
            applied=self.applied,
            duplicates=self.duplicates,
            rejected=self.rejected,
            last_rejected=self.last_rejected,
            sync_error=self.sync_error,
        )
