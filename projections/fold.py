"""Fold rules: records in, a new :class:`ClusterState` out. Pure: the input state is
never changed, the same records always give the same state.

Rules (DESIGN.md, "Ordering, idempotence, reconciliation"):

* An entity's version is the source's own timestamp. A live record strictly older
  than the entity's version changes nothing; on an equal version the later record in
  log order wins. Applying a record twice is therefore a no-op.
* A delete removes the entity and leaves a tombstone with its version; only a record
  strictly newer than the tombstone brings the key back.
* A full sync is ``snapshot.started`` (every partition) → ``*.observed`` records →
  ``snapshot.completed`` (every partition). An observed record applies like a live one,
  except that on an equal version it loses to an entity that a live record touched
  since the snapshot started (the observation may predate that record; DBLog's
  watermark rule). When ``completed`` is read on a partition, each entity of the
  snapshot's scope that lives in that partition, that the snapshot did not observe
  and that no record touched since ``started`` on that partition is deleted (the
  started time is the tombstone's version). All of an entity's records are in its
  key's partition, so the outcome does not depend on how a reader interleaves
  partitions; with several partitions the fold remembers each key's partition.
  The snapshot's result is reported when every partition has completed.
* Observed records that changed the model plus those deletions are the snapshot's
  drift: what lost notifications had left wrong.
* ``snapshot.aborted`` closes a failed sync without deletions; a completed sync also
  closes any sync that started before it and never finished.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import attrs
import immutables

from eventmodel.events import INSTANCE, SnapshotAborted, SnapshotCompleted, SnapshotStarted, entity_of
from eventmodel.log.base import Position, Record
from projections.state import EMPTY, ClusterState, OpenSnapshot, SnapshotResult

_log = logging.getLogger(__name__)

#: how many completed snapshot ids are remembered to recognise duplicate markers
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
        "state", "_table", "_tomb", "_home", "by_node", "snaps", "offsets", "recorded_at",
        "applied", "recent", "last_snapshot", "rejected", "last_rejected", "sync_error",
        "multi",
    )

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._table = _PerKind(state.tables)
        self._tomb = _PerKind(state.tombstones)
        self._home = _PerKind(state.homes)
        self.by_node = state.by_node.mutate()
        self.snaps: dict[str, OpenSnapshot] = dict(state.open_snapshots.items())
        self.offsets = list(state.position.offsets)
        self.recorded_at = state.recorded_at
        self.applied = state.applied
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
        if kind == INSTANCE:
            self._index_remove(old)
        self._tomb(kind)[key] = version

    def _touch(self, kind: str, key: str, partition: int) -> None:
        """A live record inside a snapshot's window on its partition (after that
        partition's ``started``, before its ``completed``). Only the window counts, so
        the outcome does not depend on how a reader interleaves partitions."""
        for sid, snap in self.snaps.items():
            if partition in snap.started and partition not in snap.completed:
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
        if rec.offset >= offsets[p]:
            offsets[p] = rec.offset + 1
        if env.recorded_at > self.recorded_at:
            self.recorded_at = env.recorded_at
        self.applied += 1
        payload = env.payload
        effect = payload.EFFECT
        if effect != "upsert":
            if effect == "delete":
                self._delete(payload, p)
            elif effect == "observe":
                self._observe(payload, p)
            elif effect == "marker":
                if isinstance(payload, SnapshotStarted):
                    self._started(payload, p, env.occurred_at)
                elif isinstance(payload, SnapshotCompleted):
                    self._completed(payload, p, env.occurred_at)
                elif isinstance(payload, SnapshotAborted):
                    if self.snaps.pop(payload.snapshot_id, None) is not None or self.sync_error is None:
                        self.sync_error = f"full sync {payload.snapshot_id} failed: {payload.reason}"
            return
        # The hot path, inlined: a live record carrying an entity's new state.
        kind = payload.KIND
        entity = getattr(payload, payload.ENTITY or kind)
        key = entity.key
        if self.snaps:
            self._touch(kind, key, p)
        table = self._table(kind)
        old = table.get(key)
        if old is None:
            tomb = self._tomb(kind).get(key)
            if tomb is not None:
                if entity.version <= tomb:
                    return
                del self._tomb(kind)[key]
            self._put(kind, key, None, entity, p)
        elif entity.version >= old.version:
            if kind == INSTANCE and old.node == entity.node:
                table[key] = entity
            else:
                self._put(kind, key, old, entity, p)

    def _delete(self, payload: object, partition: int) -> None:
        kind = payload.KIND  # type: ignore[attr-defined]
        entity = getattr(payload, payload.ENTITY or kind)  # type: ignore[attr-defined]
        key = entity.key
        version = entity.version
        if self.snaps:
            self._touch(kind, key, partition)
        old = self._table(kind).get(key)
        if old is None:
            tombs = self._tomb(kind)
            if tombs.get(key, -1) < version:
                tombs[key] = version
        elif version >= old.version:
            self._remove(kind, key, old, version)

    def _observe(self, payload: object, partition: int) -> None:
        kind = payload.KIND  # type: ignore[attr-defined]
        entity = entity_of(payload)
        sid = payload.snapshot_id  # type: ignore[attr-defined]
        if entity is None:
            return
        key = entity.key  # type: ignore[attr-defined]
        version = entity.version  # type: ignore[attr-defined]
        snap = self.snaps.get(sid)
        if snap is not None:
            snap = attrs.evolve(snap, observed=snap.observed.set((kind, key), None))
        table = self._table(kind)
        old = table.get(key)
        changed = False
        if old is None:
            tomb = self._tomb(kind).get(key)
            if tomb is None or version > tomb:
                self._put(kind, key, None, entity, partition)
                if tomb is not None:
                    del self._tomb(kind)[key]
                changed = True
        elif version > old.version or (
            version == old.version and (snap is None or (kind, key) not in snap.touched)
        ):
            if old != entity:
                changed = not _same_but_version(old, entity)
                self._put(kind, key, old, entity, partition)
        if snap is not None:
            if changed:
                snap = attrs.evolve(snap, corrected=snap.corrected + 1)
            self.snaps[sid] = snap

    def _started(self, m: SnapshotStarted, partition: int, occurred_at: int) -> None:
        if m.snapshot_id in self.recent:
            return  # a duplicate of a finished snapshot's marker
        snap = self.snaps.get(m.snapshot_id)
        if snap is None:
            snap = OpenSnapshot(m.snapshot_id, tuple(m.scope), max(1, m.partitions), occurred_at)
        if partition not in snap.started:
            snap = attrs.evolve(snap, started=snap.started | {partition})
        self.snaps[m.snapshot_id] = snap

    def _completed(self, m: SnapshotCompleted, partition: int, occurred_at: int) -> None:
        snap = self.snaps.get(m.snapshot_id)
        if snap is None or partition in snap.completed or partition not in snap.started:
            return  # duplicate, or its start predates what this state has read
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
                self._remove(kind, key, ent, max(snap.started_at, ent.version))
            deleted += len(gone)
        snap = attrs.evolve(snap, completed=snap.completed | {partition}, deleted=snap.deleted + deleted)
        if len(snap.completed) < snap.partitions:
            self.snaps[m.snapshot_id] = snap
            return
        del self.snaps[m.snapshot_id]
        # A sync that started before this one and never finished was abandoned
        # (its syncer died): this one supersedes it.
        for sid, other in list(self.snaps.items()):
            if other.started_at < snap.started_at:
                del self.snaps[sid]
        for kind in snap.scope:
            self._prune_tombstones(kind, snap.started_at - TOMBSTONE_TTL_US)
        self.last_snapshot = SnapshotResult(
            snap.snapshot_id, snap.started_at, occurred_at,
            observed=len(snap.observed), corrected=snap.corrected + snap.deleted, deleted=snap.deleted,
        )
        self.recent = (*self.recent, snap.snapshot_id)[-RECENT_SNAPSHOTS:]
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
            tables=self._table.finish(),
            tombstones=self._tomb.finish(),
            by_node=self.by_node.finish(),
            open_snapshots=immutables.Map(self.snaps),
            recent_snapshots=self.recent,
            last_snapshot=self.last_snapshot,
            recorded_at=self.recorded_at,
            applied=self.applied,
            rejected=self.rejected,
            last_rejected=self.last_rejected,
            sync_error=self.sync_error,
        )
