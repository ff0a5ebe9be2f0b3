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
        "multi", "superseded", "_hot", "_observed", "_touched", "_corrected",
    )

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._table = _PerKind(state.tables)
        self._tomb = _PerKind(state.tombstones)
        self._home = _PerKind(state.homes)
        self._ids = _PerKind(state.ids)
        #: kind -> (table mutation, ids mutation) for the hot path; cleared whenever a
        #: mutation is finished to be read (``_PerKind.current``)
        self._hot: dict[str, tuple] = {}
        # An open snapshot's observed/touched sets and drift count change with most
        # records in its window: they are kept as mutations here and written back to
        # the OpenSnapshot only when it is read whole (``_flush``).
        self._observed: dict[str, immutables.MapMutation] = {}
        self._touched: dict[str, immutables.MapMutation] = {}
        self._corrected: dict[str, int] = {}
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
        sup = state.superseded
        self.superseded = sup if len(sup) == len(self.offsets) else (-1,) * len(self.offsets)

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
            self._home(kind)[key] = partition  # kept with a tombstone until it is pruned
        if kind == INSTANCE and (old is None or old.node != new.node):  # type: ignore[attr-defined]
            if old is not None:
                self._index_remove(old)
            self._index_add(new)

    def _remove(self, kind: str, key: str, old: object, version: int, eid: str | None = None) -> None:
        """Delete an entity, leaving a tombstone. The ids stay with the tombstone (a
        delete's own id added), so that copies stay recognisable if a sync restores it."""
        del self._table(kind)[key]
        if eid is not None:
            ids = self._ids(kind)
            ids[key] = _add_id(ids.get(key), eid) if version == old.version else eid  # type: ignore[attr-defined]
        if kind == INSTANCE:
            self._index_remove(old)
        self._tomb(kind)[key] = version

    def _touch(self, kind: str, key: str, partition: int) -> None:
        """A live record inside a snapshot's window on its partition."""
        for sid, snap in self.snaps.items():
            if snap.open_on(partition, self.superseded):
                m = self._touched.get(sid)
                if m is None:
                    m = self._touched[sid] = snap.touched.mutate()
                m[(kind, key)] = None

    def _observed_in(self, sid: str, snap: OpenSnapshot) -> immutables.MapMutation:
        m = self._observed.get(sid)
        if m is None:
            m = self._observed[sid] = snap.observed.mutate()
        return m

    def _flush(self, sid: str) -> OpenSnapshot:
        """The open snapshot ``sid`` with its pending observed/touched/drift written back."""
        snap = self.snaps[sid]
        obs, tch = self._observed.pop(sid, None), self._touched.pop(sid, None)
        corr = self._corrected.pop(sid, 0)
        if obs is not None or tch is not None or corr:
            snap = attrs.evolve(
                snap,
                observed=obs.finish() if obs is not None else snap.observed,
                touched=tch.finish() if tch is not None else snap.touched,
                corrected=snap.corrected + corr,
            )
            self.snaps[sid] = snap
        return snap

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
                    self._started(payload, p, rec.offset, env.occurred_at)
                elif isinstance(payload, SnapshotCompleted):
                    self._completed(payload, p, env.occurred_at)
                elif isinstance(payload, SnapshotAborted):
                    self._aborted(payload, p, env.occurred_at)
            return
        # The hot path, inlined: a live record carrying an entity's new state. Only a
        # record that changes the entity touches it in an open snapshot's window: a
        # stale record or a copy says nothing about what happened since the sync began.
        kind = payload.KIND
        entity = getattr(payload, payload.ENTITY or kind)
        key = env.key or entity.key  # the envelope's key is its entity's key
        eid = env.event_id
        hot = self._hot.get(kind)
        if hot is None:
            hot = self._hot[kind] = (self._table(kind), self._ids(kind))
        table, ids = hot
        version = entity.version  # (an entity without one is rejected here)
        old = table.get(key)
        if old is None:
            tomb = self._tomb(kind).get(key)
            if tomb is not None:
                if version <= tomb:
                    if version == tomb:  # remembered: a sync may restore the entity at this version
                        seen = ids.get(key)
                        if not _has_id(seen, eid):
                            ids[key] = _add_id(seen, eid)
                    return
                del self._tomb(kind)[key]
            if self.snaps:
                self._touch(kind, key, p)
            self._put(kind, key, None, entity, p)
            ids[key] = eid
            return
        if version > old.version:
            ids[key] = eid
        elif version == old.version:
            seen = ids.get(key)
            if _has_id(seen, eid):
                self.duplicates += 1
                return
            ids[key] = _add_id(seen, eid)
        else:
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
        ids = self._ids(kind)
        if _has_id(ids.get(key), eid):
            self.duplicates += 1
            return
        old = self._table(kind).get(key)
        if old is None:
            tombs = self._tomb(kind)
            if tombs.get(key, -1) < version:
                tombs[key] = version
                ids[key] = eid
            elif key in tombs:
                return  # an older delete: nothing changes
        elif version >= old.version:
            self._remove(kind, key, old, version, eid)
        else:
            return  # older than the entity: stale
        if self.snaps:
            self._touch(kind, key, partition)

    def _window(self, sid: str, partition: int) -> OpenSnapshot | None:
        snap = self.snaps.get(sid)
        return snap if snap is not None and snap.open_on(partition, self.superseded) else None

    def _seen(self, payload: object, partition: int) -> None:
        snap = self._window(payload.snapshot_id, partition)  # type: ignore[attr-defined]
        if snap is not None:
            self._observed_in(snap.snapshot_id, snap)[(payload.KIND, payload.uuid)] = None  # type: ignore[attr-defined]

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
        seen = ids.get(key)
        if _has_id(seen, eid):
            self.duplicates += 1
            return
        touched = False
        if snap is not None:
            sid = snap.snapshot_id
            observed = self._observed_in(sid, snap)
            # A key observed twice in one window (a copy, or a listing that repeated
            # it) is authoritative only the first time; after that, versions decide.
            touched = (kind, key) in observed
            observed[(kind, key)] = None
            if not touched:
                tch = self._touched.get(sid)
                touched = (kind, key) in (tch if tch is not None else snap.touched)
        changed = False
        if snap is not None and not touched:
            # Authoritative: nothing changed this key since the sync started reading.
            if old is None:
                tombs = self._tomb(kind)
                tomb = tombs.get(key)
                if tomb is not None:
                    del tombs[key]
                self._put(kind, key, None, entity, partition)
                # as below: the overridden delete's copies must not undo this
                ids[key] = _add_id(seen, eid) if tomb is not None and tomb >= version else eid
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
        if changed and snap is not None:
            self._corrected[snap.snapshot_id] = self._corrected.get(snap.snapshot_id, 0) + 1

    # -- markers -----------------------------------------------------------
    # Every decision that shapes the model depends only on the marker's own partition
    # (its records and its ``superseded`` entry), so a reader's interleaving of
    # partitions cannot change the model. A sync's outcome is reported once it is
    # closed on every partition; with markers written to every partition in append
    # order (as the syncer does), that is in append order too.

    def _snapshot(self, sid: str, started_at: int, scope: tuple[str, ...] = ()) -> OpenSnapshot:
        snap = self.snaps.get(sid)
        if snap is None:
            # The reader's partitions, not a marker's count: one rule for every marker.
            snap = OpenSnapshot(sid, scope, len(self.offsets), started_at)
        elif scope and not snap.scope:  # made by a closing marker read first elsewhere
            snap = attrs.evolve(snap, scope=scope)
        return snap

    def _started(self, m: SnapshotStarted, partition: int, offset: int, occurred_at: int) -> None:
        if m.snapshot_id in self.recent:
            return  # a copy of a finished snapshot's marker
        snap = self._snapshot(m.snapshot_id, occurred_at, tuple(m.scope))
        if partition not in snap.started and partition not in snap.closed:
            snap = attrs.evolve(snap, started=snap.started.set(partition, offset))
        self.snaps[m.snapshot_id] = snap
        self._finish_if_closed(m.snapshot_id, occurred_at)

    def _completed(self, m: SnapshotCompleted, partition: int, occurred_at: int) -> None:
        sid = m.snapshot_id
        if sid in self.recent:
            return
        if sid in self.snaps:
            self._flush(sid)
        snap = self._snapshot(sid, occurred_at if m.started_at is None else m.started_at)
        if snap.closed_on(partition, self.superseded):
            return  # a copy, or superseded here
        if partition in snap.started:
            # Reconcile this partition's entities: every record of theirs is here.
            self._hot.clear()  # current() below finishes the open mutations
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
                self._prune_tombstones(kind, partition, snap.started_at - TOMBSTONE_TTL_US)
            snap = attrs.evolve(snap, completed=snap.completed | {partition}, closed=snap.closed | {partition},
                                deleted=snap.deleted + deleted)
        else:
            # Its started marker never reached this partition: there was no window
            # here, so nothing may be reconciled; the sync counts as incomplete.
            snap = attrs.evolve(snap, closed=snap.closed | {partition},
                                reasons=snap.reasons | {"its started marker is missing on some partitions"})
        self.snaps[sid] = snap
        # Every sync whose started marker is earlier in this partition and that is still
        # open here was abandoned (its syncer died, or its markers reached only some
        # partitions).
        mine = snap.started.get(partition)
        if mine is not None and mine > self.superseded[partition]:
            sup = list(self.superseded)
            sup[partition] = mine
            self.superseded = tuple(sup)
        for other in list(self.snaps):
            self._finish_if_closed(other, occurred_at)

    def _aborted(self, m: SnapshotAborted, partition: int, occurred_at: int) -> None:
        sid = m.snapshot_id
        if sid in self.recent:
            return
        snap = self._snapshot(sid, occurred_at if m.started_at is None else m.started_at)
        if not snap.closed_on(partition, self.superseded):
            snap = attrs.evolve(snap, closed=snap.closed | {partition}, reasons=snap.reasons | {m.reason})
        self.snaps[sid] = snap
        self._finish_if_closed(sid, occurred_at)

    def _finish_if_closed(self, sid: str, occurred_at: int) -> None:
        """Once a snapshot is closed on every partition, report its outcome."""
        snap = self.snaps[sid]
        sup = self.superseded
        if not all(snap.closed_on(p, sup) for p in range(snap.partitions)):
            return
        snap = self._flush(sid)
        del self.snaps[sid]
        self.recent = (*self.recent, sid)[-RECENT_SNAPSHOTS:]
        if len(snap.completed) < snap.partitions:
            done = len(snap.completed)
            reasons = set(snap.reasons)
            if any(p not in snap.closed for p in range(snap.partitions)):
                reasons.add("superseded by a later full sync")
            where = f" (completed on {done} of {snap.partitions} partitions)" if done else ""
            why = "; ".join(sorted(r for r in reasons if r)) or "aborted"
            self.sync_error = f"full sync {sid} failed{where}: {why}"
            return
        self.last_snapshot = SnapshotResult(
            snap.snapshot_id, snap.started_at, occurred_at,
            observed=len(snap.observed), corrected=snap.corrected + snap.deleted, deleted=snap.deleted,
        )
        self.sync_error = None

    def _prune_tombstones(self, kind: str, partition: int, older_than: int) -> None:
        """Forget this partition's tombstones (and their homes) older than the TTL
        before a completed sync: that sync vouches for those keys' absence."""
        self._hot.clear()
        current = self._tomb.current(kind)
        homes = self._home.current(kind) if self.multi else None
        old = [k for k, v in current.items()
               if v < older_than and (homes is None or homes.get(k, partition) == partition)]
        if old:
            tombs = self._tomb(kind)
            home = self._home(kind) if self.multi else None
            ids = self._ids(kind)
            for k in old:
                del tombs[k]
                if k in ids:
                    del ids[k]
                if home is not None and k in home:
                    del home[k]

    # -- result ------------------------------------------------------------
    def finish(self) -> ClusterState:
        for sid in list(self.snaps):
            self._flush(sid)
        return ClusterState(
            position=Position(tuple(self.offsets)),
            homes=self._home.finish(),
            ids=self._ids.finish(),
            tables=self._table.finish(),
            tombstones=self._tomb.finish(),
            by_node=self.by_node.finish(),
            open_snapshots=immutables.Map(self.snaps),
            superseded=self.superseded,
            recent_snapshots=self.recent,
            last_snapshot=self.last_snapshot,
            recorded_at=self.recorded_at,
            applied=self.applied,
            duplicates=self.duplicates,
            rejected=self.rejected,
            last_rejected=self.last_rejected,
            sync_error=self.sync_error,
        )
