"""Fold rules: records in, a new :class:`ClusterState` out. Pure: the input state is
never changed, the same records always give the same state.

Rules (DESIGN.md, "Ordering, idempotence, reconciliation"; ADR 0004):

* **Versions come from the source.** An entity's version is the source's own
  timestamp (``updated_at``, else ``created_at``, else the lowest version). A live
  record strictly older than the entity changes nothing; on an equal version the
  later record in log order wins.
* **Copies at any distance are no-ops.** A record at or below the state's position on
  its partition is skipped. Per entity the fold remembers the event ids of the live
  records applied at its current version (``ids``; a sync's read adds none, so they do
  not grow per sync) and skips a record whose id is there, at any version. A record
  above the entity's version but at or below its ``floor`` (the version a sync's read
  overrode when it lowered it) may be a copy of what the sync overrode: skipped too.
* A delete removes the entity and leaves a tombstone with its version (or its floor);
  only a record strictly newer than the tombstone brings the key back. A completed sync
  forgets its partition's tombstones a day older than its start and sets the
  partition's ``horizon``: a live record of an unknown key at or below it is a late
  copy and changes nothing (lowest-version tombstones, aggregates', are kept).
* **A full sync is a snapshot inside the stream**: ``snapshot.started`` (every
  partition) → ``*.observed`` / ``*.seen`` records → ``snapshot.completed`` or
  ``snapshot.aborted`` (every partition). Each partition has its own window, from its
  ``started`` to its closing marker. The first read of a key in its window that no
  live record (and no other sync's first read) touched before replaces the entity
  *whatever the versions* (the freshest read of the source's database) and clears a
  tombstone; otherwise the version rule applies and an equal version goes to the live
  record (DBLog's watermark rule). A read outside any window applies by the version rule
  and loses ties. A ``seen`` record (a partial API record) only marks its key as seen;
  an ``entity.absent`` record (a follow-up read found nothing) deletes an untouched key.
* When ``completed`` is read on a partition, each entity of the snapshot's scope that
  lives in that partition, was not read and was not touched in that window is deleted.
  ``aborted`` closes the window without deletions. All of an entity's records are in
  its key's partition, so the outcome never depends on how a reader interleaves
  partitions.
* A ``completed`` on a partition also closes, on that partition, every open full sync
  that started before it (its syncer died or its marker was partial). Markers carry
  ``after``, the log end their sync started after: a ``started`` at or before a
  completed sync's start is a copy or an older read and opens no window; a closing
  marker of an unknown sync that started before the newest known one is a copy.
* A follow-up round (``follows``: a targeted re-read of what live records touched
  during a sync) has an empty scope: it deletes only what it found absent and
  supersedes nothing; its corrections are added to its sync's report.
* Once every partition is closed the outcome is reported: ``last_snapshot`` when all
  completed, else ``sync_error``; syncs closed by one marker in the order they started.
* Corrections a lost notification could have prevented are the snapshot's drift (a
  compute node's are not: no notification describes one).
* Services: ``up`` is what the notification says (the normalizer applies Nova's
  servicegroup rule); a null zone in a service notification keeps the known zone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import attrs
import immutables

from eventmodel.events import (
    INSTANCE, LOWEST_VERSION, NODE, POOL, SERVICE, VOLUME, ComputeServiceChanged, EntityAbsent, Entity, Instance,
    InstanceSeen, Observation, Payload, PoolChanged, SnapshotAborted, SnapshotCompleted, SnapshotStarted, Volume,
    VolumeChanged, entity_of,
)
from eventmodel.records import Position, Record
from projections.state import EMPTY, ClusterState, OpenSnapshot, SnapshotResult

_log = logging.getLogger(__name__)

#: kinds, and the live record classes of them, whose records leave some facts unsaid
_UNSAID = frozenset({VOLUME, POOL})
_UNSAID_BY = frozenset({VolumeChanged, PoolChanged})
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


def _keep_unsaid(new: Any, old: Any) -> Any:
    """What a Cinder notification does not say, kept from the known entity (ADR 0018):
    a volume's type name (the payload has the id), its multi-attach flag (read only from
    an attachment row), its bootable flag (said only when true); a pool's volume count."""
    if new.__class__ is Volume:
        keep: dict[str, Any] = {}
        if new.volume_type is None and old.volume_type is not None and new.volume_type_id == old.volume_type_id:
            keep["volume_type"] = old.volume_type
        if not new.attachments and new.multiattach != old.multiattach:
            keep["multiattach"] = old.multiattach
        if not new.bootable and old.bootable:
            keep["bootable"] = True
        return attrs.evolve(new, **keep) if keep else new
    if new.total_volumes is None and old.total_volumes is not None:
        return attrs.evolve(new, total_volumes=old.total_volumes)
    return new


def _same_but_version(a: Entity, b: Entity) -> bool:
    return attrs.evolve(a, version=b.version) == b


def _drift(kind: str, old: Entity | None, new: Entity | None) -> bool:
    """Whether a sync's correction from ``old`` to ``new`` is drift: something a lost
    notification would have said. No Nova notification describes a compute node (its
    inventory comes from Placement, its state from the hypervisor listing), so a
    node's correction never is. What a Cinder notification cannot say (a volume's type
    name, its multi-attach and bootable flags, a pool's volume count) is not drift either."""
    if kind == NODE:
        return False
    if old is None or new is None:
        return True
    if kind in _UNSAID:
        old = _keep_unsaid(old, new)  # the sync's read fills in what the records left unsaid
    return not _same_but_version(old, new)


def _stamp(offsets: tuple[int, ...], n: int, fill: int) -> tuple[int, ...]:
    """A per-partition tuple of ``n`` values (an older state's may be missing)."""
    return offsets if len(offsets) == n else (fill,) * n


#: the ids of the live records applied at an entity's current version: one, or several
#: on same-second ties (ADR 0004)
Ids = str | tuple[str, ...]


def _has_id(seen: Ids | None, eid: str) -> bool:
    return seen == eid or (type(seen) is tuple and eid in seen)


def _add_id(seen: Ids | None, eid: str) -> Ids:
    if seen is None:
        return eid
    if type(seen) is tuple:
        return (*seen, eid)
    return (seen, eid)


def _carried(payload: Payload) -> tuple[str, Entity]:
    """The kind and the entity state a delete carries; ValueError (the record is
    rejected, with this reason) when it names no kind or carries no entity."""
    kind, entity = payload.KIND, entity_of(payload)
    if kind is None or entity is None:
        raise ValueError(f"{payload.TYPE} ({payload.EFFECT}) carries no entity")
    return kind, entity


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
        "multi", "superseded", "_hot", "_observed", "_touched", "_corrected", "_floor", "last_started",
        "horizons",
    )

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._table = _PerKind(state.tables)
        self._tomb = _PerKind(state.tombstones)
        self._home = _PerKind(state.homes)
        self._ids = _PerKind(state.ids)
        self._floor = _PerKind(state.floors)
        #: kind -> (table, ids, floors, tombstones mutations) for the hot path; cleared
        #: whenever a mutation is finished to be read (``_PerKind.current``)
        self._hot: dict[str, tuple] = {}
        # An open snapshot's observed/touched sets and drift count change with most
        # records in its window: they are kept as mutations here and written back to
        # the OpenSnapshot only when it is read whole (``_flush``).
        self._observed: dict[str, immutables.MapMutation] = {}
        self._touched: dict[str, immutables.MapMutation] = {}
        self._corrected: dict[str, int] = {}
        self.by_node = state.by_node.mutate()
        # in the order syncs started (a Map iterates by hash: reports must not depend on it)
        self.snaps: dict[str, OpenSnapshot] = dict(
            sorted(state.open_snapshots.items(), key=lambda kv: (kv[1].started_at, kv[0])))
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
        n = len(self.offsets)
        self.superseded = _stamp(state.superseded, n, -1)
        self.last_started = _stamp(state.last_started, n, -1)
        self.horizons = _stamp(state.horizons, n, 0)

    # -- plumbing ----------------------------------------------------------
    def _index_remove(self, inst: Instance) -> None:
        node = inst.node
        if node is not None:
            members = self.by_node.get(node)
            if members is not None:
                members = members.delete(inst.uuid)
                if len(members):
                    self.by_node[node] = members
                else:
                    del self.by_node[node]

    def _index_add(self, inst: Instance) -> None:
        node = inst.node
        if node is not None:
            self.by_node[node] = self.by_node.get(node, EMPTY).set(inst.uuid, None)

    def _put(self, kind: str, key: str, old: object | None, new: object, partition: int) -> None:
        self._table(kind)[key] = new
        if old is None and self.multi:
            self._home(kind)[key] = partition  # kept with a tombstone until it is pruned
        if kind == INSTANCE and (old is None or old.node != new.node):  # type: ignore[attr-defined]
            if old is not None:
                self._index_remove(old)
            self._index_add(new)

    def _remove(self, kind: str, key: str, old: Entity, version: int, eid: str | None = None) -> None:
        """Delete an entity, leaving a tombstone. The ids stay with the tombstone (a
        delete's own id added), so that copies stay recognisable if a sync restores it."""
        del self._table(kind)[key]
        if eid is not None:
            ids = self._ids(kind)
            ids[key] = _add_id(ids.get(key), eid) if version == old.version else eid
        if kind == INSTANCE:
            self._index_remove(old)
        floors = self._floor(kind)
        floor = floors.get(key)
        if floor is not None:
            # what a sync overrode stays overridden: no copy of it brings the key back
            del floors[key]
            version = max(version, floor)
        self._tomb(kind)[key] = version

    def _touch(self, kind: str, key: str, partition: int, skip: str | None = None) -> None:
        """A live record (or another sync's observation) inside a snapshot's window on
        its partition."""
        for sid, snap in self.snaps.items():
            if sid != skip and snap.open_on(partition, self.superseded):
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
        self.applied += 1
        payload = env.payload
        effect = payload.EFFECT
        if env.recorded_at > self.recorded_at and effect != "ignore":
            self.recorded_at = env.recorded_at  # audits' own records say nothing of the cluster
        if effect != "upsert":
            if effect == "delete":
                self._delete(payload, p, env.event_id)
            elif effect == "observe":
                self._observe(cast(Observation, payload), p, env.event_id)
            elif effect == "seen":
                self._seen(cast(InstanceSeen, payload), p)
            elif effect == "absent":
                self._absent(cast(EntityAbsent, payload), p)
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
            hot = self._hot[kind] = (self._table(kind), self._ids(kind), self._floor(kind), self._tomb(kind))
        table, ids, floors, tombs = hot
        version = entity.version  # (an entity without one is rejected here)
        seen = ids.get(key)
        if seen is not None and (seen == eid or (seen.__class__ is tuple and eid in seen)):
            self.duplicates += 1  # a copy, at any version (_has_id, inlined)
            return
        old = table.get(key)
        if old is None:
            tomb = tombs.get(key)
            if tomb is not None:
                if version <= tomb:
                    if version == tomb:  # remembered: a sync may restore the entity at this version
                        ids[key] = _add_id(seen, eid)
                    return
                del tombs[key]
            elif version != LOWEST_VERSION and version <= self.horizons[p]:
                return  # older than the reads of a sync that did not list it: a late copy
            if self.snaps:
                self._touch(kind, key, p)
            self._put(kind, key, None, entity, p)
            ids[key] = eid
            return
        if version > old.version:
            floor = floors.get(key)
            if floor is not None:
                if version <= floor:
                    return  # may be a copy of what a sync's read overrode
                del floors[key]
            ids[key] = eid
        elif version == old.version:
            ids[key] = _add_id(seen, eid)
        else:
            return
        if self.snaps:
            self._touch(kind, key, p)
        if (kind == SERVICE and entity.availability_zone is None and old.availability_zone is not None
                and payload.__class__ is ComputeServiceChanged):
            # Nova's service notifications do not load the zone (null): it is unknown, not gone
            entity = attrs.evolve(entity, availability_zone=old.availability_zone)
        elif kind in _UNSAID and payload.__class__ in _UNSAID_BY:
            entity = _keep_unsaid(entity, old)
        if kind == INSTANCE and old.node == entity.node:
            table[key] = entity
        else:
            self._put(kind, key, old, entity, p)

    def _delete(self, payload: Payload, partition: int, eid: str) -> None:
        kind, entity = _carried(payload)
        key = entity.key
        version = entity.version
        ids = self._ids(kind)
        if _has_id(ids.get(key), eid):
            self.duplicates += 1
            return
        old = self._table(kind).get(key)
        if old is None:
            tombs = self._tomb(kind)
            tomb = tombs.get(key)
            if tomb is None and version != LOWEST_VERSION and version <= self.horizons[partition]:
                return  # a late copy about a key long forgotten
            if tomb is not None and tomb >= version:
                return  # an older delete: nothing changes
            tombs[key] = version
            ids[key] = eid
        elif version >= old.version:
            self._remove(kind, key, old, version, eid)
        else:
            return  # older than the entity: stale
        if self.snaps:
            self._touch(kind, key, partition)

    def _window(self, sid: str, partition: int) -> OpenSnapshot | None:
        snap = self.snaps.get(sid)
        return snap if snap is not None and snap.open_on(partition, self.superseded) else None

    def _seen(self, payload: InstanceSeen, partition: int) -> None:
        snap = self._window(payload.snapshot_id, partition)
        if snap is not None:
            self._observed_in(snap.snapshot_id, snap)[(payload.KIND, payload.uuid)] = None

    def _first_untouched(self, snap: OpenSnapshot, kind: str, key: str, partition: int) -> bool:
        """Mark ``key`` read in ``snap``'s window; True when this is its first read there
        and no live record (nor another sync's read) touched it there before.

        A first read also touches the key in the windows of the other syncs open here:
        a sync running at the same time may have read it later than they did."""
        sid = snap.snapshot_id
        observed = self._observed_in(sid, snap)
        k = (kind, key)
        if k in observed:
            return False  # a copy, or a listing that repeated it: versions decide
        observed[k] = None
        if len(self.snaps) > 1:
            self._touch(kind, key, partition, skip=sid)
        tch = self._touched.get(sid)
        return k not in (tch if tch is not None else snap.touched)

    def _observe(self, payload: Observation, partition: int, eid: str) -> None:
        kind = payload.KIND
        entity = entity_of(payload)
        if entity is None or kind is None:
            return
        key = entity.key
        version = entity.version
        sid = payload.snapshot_id
        snap = self._window(sid, partition)
        table = self._table(kind)
        old = table.get(key)
        ids = self._ids(kind)
        seen = ids.get(key)
        if _has_id(seen, eid):
            self.duplicates += 1
            return
        floors = self._floor(kind)
        changed = False
        if snap is not None and self._first_untouched(snap, kind, key, partition):
            # Authoritative: nothing changed this key since the sync started reading.
            if old is None:
                tombs = self._tomb(kind)
                tomb = tombs.get(key)
                if tomb is not None:
                    del tombs[key]
                self._put(kind, key, None, entity, partition)
                if tomb is not None and tomb > version:
                    floors[key] = tomb  # the overridden delete's records must not undo this
                    ids[key] = eid
                elif tomb is None or tomb < version or seen is None:
                    ids[key] = eid
                # (at the tombstone's version its ids stay: their copies must not undo this)
                changed = _drift(kind, None, entity)
            elif old != entity:
                if old.version > version:
                    # The read lowers the version (a skewed clock wrote the newer one, or the
                    # log came from another cloud): remember how high, so that no copy of
                    # the overridden records undoes it.
                    floor = floors.get(key)
                    floors[key] = old.version if floor is None else max(floor, old.version)
                    ids[key] = eid
                elif old.version == version:
                    pass  # the overridden same-version ids stay (the read's own id is not needed)
                else:
                    ids[key] = eid
                    floor = floors.get(key)
                    if floor is not None and version > floor:
                        del floors[key]
                changed = _drift(kind, old, entity)
                self._put(kind, key, old, entity, partition)
            # unchanged: nothing to remember (a copy of the read is caught by ``observed``
            # in this window and loses the tie outside it), so ids do not grow per sync
        elif old is None:
            tombs = self._tomb(kind)
            tomb = tombs.get(key)
            if tomb is None:
                fresh = version == LOWEST_VERSION or version > self.horizons[partition]
            else:
                fresh = version > tomb
            if fresh:
                if tomb is not None:
                    del tombs[key]
                self._put(kind, key, None, entity, partition)
                ids[key] = eid
                changed = _drift(kind, None, entity)
        elif version > old.version:
            floor = floors.get(key)
            if floor is None or version > floor:
                if floor is not None:
                    del floors[key]
                ids[key] = eid
                changed = _drift(kind, old, entity)
                self._put(kind, key, old, entity, partition)
        if changed and snap is not None:
            self._corrected[sid] = self._corrected.get(sid, 0) + 1

    def _absent(self, payload: EntityAbsent, partition: int) -> None:
        """A follow-up read found no such entity: inside its window, for an untouched
        key, the entity is deleted (tombstone: its own version, or its floor)."""
        kind, key = payload.kind, payload.key
        snap = self._window(payload.snapshot_id, partition)
        if snap is None or not self._first_untouched(snap, kind, key, partition):
            return
        old = self._table(kind).get(key)
        if old is None:
            return
        self._hot.pop(kind, None)
        self._remove(kind, key, old, old.version)
        if _drift(kind, old, None):
            snap = self._flush(snap.snapshot_id)
            self.snaps[snap.snapshot_id] = attrs.evolve(snap, deleted=snap.deleted + 1)

    # -- markers -----------------------------------------------------------
    # Every decision that shapes the model depends only on the marker's own partition
    # (its records and its ``superseded`` entry), so a reader's interleaving of
    # partitions cannot change the model. A sync's outcome is reported once it is
    # closed on every partition, syncs closed by one marker in the order they started.

    def _snapshot(self, sid: str, started_at: int, scope: tuple[str, ...] = (),
                  follows: str | None = None) -> OpenSnapshot:
        snap = self.snaps.get(sid)
        if snap is None:
            # The reader's partitions, not a marker's count: one rule for every marker.
            snap = OpenSnapshot(sid, scope, len(self.offsets), started_at, follows=follows)
        else:
            if scope and not snap.scope:  # made by a closing marker read first elsewhere
                snap = attrs.evolve(snap, scope=scope)
            if follows is not None and snap.follows is None:
                snap = attrs.evolve(snap, follows=follows)
        return snap

    def _after(self, after: tuple[int, ...] | None, partition: int) -> int | None:
        """A marker's ``after`` offset on this partition (None: not said, or said for
        another partition count)."""
        if after is None or len(after) != len(self.offsets):
            return None
        return after[partition]

    def _old_copy(self, sid: str, after: tuple[int, ...] | None, partition: int) -> bool:
        """A closing marker of a sync this state does not know, that started at or
        before the newest sync started on this partition: a copy of a finished one."""
        if sid in self.snaps:
            return False
        at = self._after(after, partition)
        return at is not None and at <= self.last_started[partition]

    def _started(self, m: SnapshotStarted, partition: int, offset: int, occurred_at: int) -> None:
        sid = m.snapshot_id
        if sid in self.recent:
            return  # a copy of a finished snapshot's marker
        at = self._after(m.after, partition)
        # started (read the log's end) before a sync whose window completed here
        older = at is not None and at <= self.superseded[partition]
        if older and sid not in self.snaps:
            return  # a copy of an old sync's marker, or a read older than a completed one
        snap = self._snapshot(sid, occurred_at, tuple(m.scope), m.follows)
        if partition not in snap.started and partition not in snap.closed:
            if older:
                snap = attrs.evolve(snap, closed=snap.closed | {partition},
                                    reasons=snap.reasons | {"superseded by a later full sync"})
            else:
                snap = attrs.evolve(snap, started=snap.started.set(partition, offset))
                if offset > self.last_started[partition]:
                    ls = list(self.last_started)
                    ls[partition] = offset
                    self.last_started = tuple(ls)
        self.snaps[sid] = snap
        self._finish_if_closed(sid, occurred_at)

    def _completed(self, m: SnapshotCompleted, partition: int, occurred_at: int) -> None:
        sid = m.snapshot_id
        if sid in self.recent or self._old_copy(sid, m.after, partition):
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
            cutoff = snap.started_at - TOMBSTONE_TTL_US
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
                deleted += sum(1 for _, ent in gone if _drift(kind, ent, None))
                self._prune_tombstones(kind, partition, cutoff)
            if snap.scope and cutoff != self.horizons[partition]:
                # the newest completed sync's, not the highest ever: a syncer whose clock
                # ran ahead once must not keep the keys of a slower cloud out for good
                hz = list(self.horizons)
                hz[partition] = cutoff
                self.horizons = tuple(hz)
            snap = attrs.evolve(snap, completed=snap.completed | {partition}, closed=snap.closed | {partition},
                                deleted=snap.deleted + deleted)
        else:
            # Its started marker never reached this partition: there was no window
            # here, so nothing may be reconciled; the sync counts as incomplete.
            snap = attrs.evolve(snap, closed=snap.closed | {partition},
                                reasons=snap.reasons | {"its started marker is missing on some partitions"})
        self.snaps[sid] = snap
        # Every full sync whose started marker is earlier in this partition and that is
        # still open here was abandoned (its syncer died, or its markers reached only
        # some partitions). A follow-up round (empty scope) supersedes nothing.
        mine = snap.started.get(partition)
        if snap.scope and mine is not None and mine > self.superseded[partition]:
            sup = list(self.superseded)
            sup[partition] = mine
            self.superseded = tuple(sup)
        for other in sorted(self.snaps, key=lambda s: (self.snaps[s].started_at, s)):
            self._finish_if_closed(other, occurred_at)

    def _aborted(self, m: SnapshotAborted, partition: int, occurred_at: int) -> None:
        sid = m.snapshot_id
        if sid in self.recent or self._old_copy(sid, m.after, partition):
            return
        snap = self._snapshot(sid, occurred_at if m.started_at is None else m.started_at)
        if not snap.closed_on(partition, self.superseded):
            snap = attrs.evolve(snap, closed=snap.closed | {partition}, reasons=snap.reasons | {m.reason})
        self.snaps[sid] = snap
        self._finish_if_closed(sid, occurred_at)

    def _finish_if_closed(self, sid: str, occurred_at: int) -> None:
        """Once a snapshot is closed on every partition, report its outcome."""
        snap = self.snaps.get(sid)
        if snap is None:
            return
        sup = self.superseded
        if not all(snap.closed_on(p, sup) for p in range(snap.partitions)):
            return
        snap = self._flush(sid)
        del self.snaps[sid]
        self.recent = (*self.recent, sid)[-RECENT_SNAPSHOTS:]
        if snap.follows is not None:
            # A follow-up round: its corrections are its sync's; a failed one leaves the
            # sync's report as it was (the keys it did not settle stay for the next sync).
            last = self.last_snapshot
            if len(snap.completed) == snap.partitions and last is not None and last.snapshot_id == snap.follows:
                self.last_snapshot = attrs.evolve(
                    last, corrected=last.corrected + snap.corrected + snap.deleted,
                    deleted=last.deleted + snap.deleted, rechecked=last.rechecked + len(snap.observed),
                    follow_ups=last.follow_ups + 1)
            return
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
        before a completed sync: that sync vouches for those keys' absence, and the
        partition's horizon keeps their late copies out. Tombstones at the lowest
        version (aggregates, nodes: no time to compare) are kept."""
        self._hot.clear()
        current = self._tomb.current(kind)
        homes = self._home.current(kind) if self.multi else None
        old = [k for k, v in current.items()
               if LOWEST_VERSION < v < older_than and (homes is None or homes.get(k, partition) == partition)]
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
            floors=self._floor.finish(),
            last_started=self.last_started,
            horizons=self.horizons,
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
