"""The simulated Cinder: storage backends, pools, volume types and volumes beside the
simulated Nova, its operations, and its notifications in Cinder's unversioned format.

Backends (cinder-volume services ``storage-01@lvm``, …) each have pools
(``storage-01@lvm#pool-a``); the last backend is a Ceph-like one whose single pool
reports ``infinite`` capacity. Volume types select a backend through the extra spec
``volume_backend_name`` (``__DEFAULT__`` selects none; ``secret`` is private).
Volumes are created on a pool with room, attached to the sim's instances, detached,
extended, retyped (moving to another backend's pool when the new type asks for
it), migrated between pools, renamed, given metadata and deleted; an instance Nova
deletes has its volumes detached. Every change goes through
:class:`~eventmodel.sim.storage.StorageTruth`, which recomputes the pools' figures.

What Cinder says about it (research notes, cinder 29.0.0):

- volume usage notifications ``volume.<action>.start/.end`` (``volume.retype`` alone),
  payload keys exactly those of ``volume_utils._usage_from_volume`` — ``volume_type`` is
  the type's *id*, ``metadata`` a list of ``{key, value}``, ``created_at``/``launched_at``
  tz-aware ISO strings, ``volume_attachment`` the attachment rows, ``glance_metadata``
  only for a volume made from an image — and no ``updated_at``;
- publishers: ``volume.<host@backend#pool>`` for create, ``volume.<host@backend>`` for
  the volume manager's events, ``volume.<api host>`` for the API's (attach.end,
  detach.*, update.*);
- ``capacity.pool`` (and ``capacity.backend``) from ``capacity.<scheduler host>`` for
  the pools whose figures changed, never for a pool reporting ``infinite``;
- a migration (``os-migrate_volume``), a metadata change and ``set_bootable`` send
  nothing: only the API shows them.

New volumes have ``updated_at`` null until their first save; saves are whole seconds.
The operations draw from their own RNG streams, so a cloud without volumes is the
same cloud, operation for operation, as before Cinder existed in the sim. The
notifications go through the Nova emitter's queue and so through the same delivery
faults (:class:`~eventmodel.sim.faults.Delivery`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from eventmodel.events import Instance, StorageNode, Volume, VolumeAttachment, VolumeType
from eventmodel.sim import notifications as N
from eventmodel.sim.emitter import CONTROLLERS, IMAGES, Emitter
from eventmodel.sim.explicit import cumulative, pick
from eventmodel.sim.storage import StorageState, StorageTruth
from eventmodel.sim.truth import GroundTruth, OperationError, S
from eventmodel.sim.world import People, uuid4

#: relative weights of the volume operations
VOLUME_WEIGHTS: dict[str, float] = {
    "volume_create": 10,
    "volume_delete": 7,
    "volume_attach": 8,
    "volume_detach": 6,
    "volume_extend": 3,
    "volume_retype": 2,
    "volume_migrate": 2,  # silent: no volume notification
    "volume_rename": 1,
    "volume_metadata": 1,  # silent
}
#: counters the simulated Cinder keeps in the sim's ``counters``
VOLUME_COUNTERS = ("volume_ops", *VOLUME_WEIGHTS)

#: (name, backend it selects, public, weight when creating)
VOLUME_TYPES: tuple[tuple[str, str | None, bool, float], ...] = (
    ("__DEFAULT__", None, True, 1),
    ("standard", "lvm", True, 6),
    ("ssd", "lvm", True, 2),
    ("ceph", "ceph", True, 3),
    ("secret", "lvm", False, 1),
)
VOLUME_SIZES = (1, 5, 10, 20, 40, 50, 80, 100, 200)
POOL_GB = 40_000.0
USER_METADATA = ({}, {}, {}, {"purpose": "db"}, {"purpose": "logs", "owner": "sre"}, {"backup": "daily"})
#: states of an instance a volume can be attached to
ATTACHABLE = frozenset({"active", "stopped", "paused", "suspended", "shelved"})


def iso_api(us: int | None) -> str | None:
    """µs → Cinder's API time ``2026-01-02T03:04:05.000000`` (naive UTC, 6 digits)."""
    if us is None:
        return None
    return (datetime(1970, 1, 1) + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%f")


def iso_payload(us: int | None) -> str | None:
    """µs → ``isoformat()`` of a tz-aware UTC datetime (``…+00:00``; a fraction only when non-zero)."""
    if us is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


@attrs.define
class AttachmentRow:
    """What Cinder's ``volume_attachment`` table holds of one attachment."""

    id: str
    volume_id: str
    instance_uuid: str
    attached_host: str | None
    mountpoint: str
    attach_time: int
    created_at: int


class SimCinder:
    """The storage half of a :class:`~eventmodel.sim.cloud.SimCloud`; see the module docstring."""

    def __init__(
        self,
        compute: GroundTruth,
        emit: Emitter,
        people: People,
        counters: dict[str, int],
        *,
        seed: int,
        volumes: int,
        backends: int,
        pools_per_backend: int = 2,
        rate: float = 0.5,
    ) -> None:
        if volumes < 0 or backends < 1 or pools_per_backend < 1 or rate < 0:
            raise ValueError("volumes >= 0, backends >= 1, pools_per_backend >= 1 and rate >= 0 are needed")
        self.compute = compute
        compute.gone = []
        self.emit = emit
        self.people = people
        self.counters = counters
        for name in VOLUME_COUNTERS:
            counters.setdefault(name, 0)
        self.rng = random.Random(f"eventmodel-sim:{seed}:cinder")
        self.ids = random.Random(f"eventmodel-sim:{seed}:cinder-ids")
        self.rate = rate
        self._credit = 0.0
        self.state = StorageTruth()
        #: attachment id → its row; volume uuid → its attachment ids in order
        self.rows: dict[str, AttachmentRow] = {}
        #: server uuid → the ids of its attachments
        self.by_server: dict[str, set[str]] = {}
        self.launched: dict[str, int] = {}
        self.images: dict[str, str] = {}  # volume uuid → image it was made from (bootable)
        self._seq = 0
        self.kinds = list(VOLUME_WEIGHTS)
        self.kind_cum = cumulative([VOLUME_WEIGHTS[k] for k in self.kinds])
        self.type_cum = cumulative([w for *_, w in VOLUME_TYPES])
        self._build(backends, pools_per_backend)
        self._place(volumes)

    # ------------------------------------------------------------------
    # The storage before the log starts
    # ------------------------------------------------------------------

    def _build(self, backends: int, per: int) -> None:
        st, start = self.state, self.compute.start_us
        for i in range(backends):
            ceph = backends >= 2 and i == backends - 1
            backend = "ceph" if ceph else "lvm"
            host = f"storage-{i + 1:02d}@{backend}"
            disabled = backends >= 3 and i == 1
            st.add_node(StorageNode(host, 0, "az1" if i % 2 == 0 else "az2", disabled,
                                    "disk replacement" if disabled else None, True))
            if ceph:
                st.add_pool(f"{host}#rbd", None, start - 30 * S)
            else:
                for k in range(per):
                    st.add_pool(f"{host}#pool-{chr(ord('a') + k)}", POOL_GB, start - 30 * S)
        for name, backend, public, _ in VOLUME_TYPES:
            specs = {"volume_backend_name": backend} if backend else {}
            if name == "ssd":
                specs["tier"] = "ssd"
            st.add_type(VolumeType(uuid4(self.ids), 0, name, backend, public, specs))
        self.type_list = list(st.volume_types.values())

    def _place(self, count: int) -> None:
        """``count`` volumes created before the start, some attached to instances that exist."""
        rng, start = self.rng, self.compute.start_us
        servers = sorted(u for u, i in self.compute.instances.items() if i.host is not None)
        for _ in range(count):
            for _attempt in range(32):  # a type whose backend has a pool with room
                vt = self._pick_type()
                size = VOLUME_SIZES[int(rng.random() * len(VOLUME_SIZES))]
                pool = self._pick_pool(vt, size)
                if pool is not None:
                    break
            if pool is None:
                raise ValueError(f"cannot place {count} volumes: the pools are full")
            created = start - (3_600 + int(rng.random() * 90 * 86_400)) * S
            updated = None if rng.random() < 0.4 else created + (60 + int(rng.random() * 86_400)) * S
            vol = self._new_volume(vt, size, pool, created)
            attachments: tuple[VolumeAttachment, ...] = ()
            if servers and rng.random() < 0.4:
                server = servers[int(rng.random() * len(servers))]
                row = self._row(vol.uuid, self.compute.instances[server], created + 120 * S)
                attachments = (VolumeAttachment(server, row.id),)
            vol = attrs.evolve(vol, status="in-use" if attachments else "available", attachments=attachments,
                               version=updated or created)
            self.state.put_volume(vol, updated, start - 30 * S)

    def _pick_type(self) -> VolumeType:
        return self.type_list[pick(self.type_cum, self.rng)]

    def _pools_for(self, vt: VolumeType, size: int, exclude: str | None = None) -> list[str]:
        st = self.state
        out = []
        for name in st.pools:
            node = st.nodes[name.partition("#")[0]]
            if node.disabled or not node.up or name == exclude:
                continue
            if vt.backend_name is not None and node.backend != vt.backend_name:
                continue
            if st.fits(name, size):
                out.append(name)
        return out

    def _pick_pool(self, vt: VolumeType, size: int, exclude: str | None = None) -> str | None:
        pools = self._pools_for(vt, size, exclude)
        return pools[int(self.rng.random() * len(pools))] if pools else None

    def _new_volume(self, vt: VolumeType, size: int, pool: str, created: int) -> Volume:
        rng, people = self.rng, self.people
        pid = people.projects[int(rng.random() * len(people.projects))][0]
        users = people.users[pid]
        u = uuid4(self.ids)
        self._seq += 1
        name = "" if rng.random() < 0.1 else f"{dict(people.projects)[pid]}-vol-{self._seq:05d}"
        bootable = rng.random() < 0.25
        if bootable:
            self.images[u] = IMAGES[int(rng.random() * len(IMAGES))]
        self.launched[u] = created + (2 + int(rng.random() * 10)) * S
        node = self.state.nodes[pool.partition("#")[0]]
        return Volume(
            uuid=u, version=created, host=pool, size_gb=size, status="available", name=name, project_id=pid,
            user_id=users[int(rng.random() * len(users))], volume_type_id=vt.id, volume_type=vt.name,
            availability_zone=node.zone, bootable=bootable,
            snapshot_id=uuid4(self.ids) if rng.random() < 0.05 else None,
            metadata=dict(USER_METADATA[int(rng.random() * len(USER_METADATA))]), created_at=created,
        )

    def _row(self, volume: str, inst: Instance, at: int) -> AttachmentRow:
        mine = self.by_server.setdefault(inst.uuid, set())
        row = AttachmentRow(uuid4(self.ids), volume, inst.uuid, inst.host,
                            f"/dev/vd{chr(ord('b') + len(mine) % 24)}", at, at)
        self.rows[row.id] = row
        mine.add(row.id)
        return row

    def _drop_row(self, attachment_id: str) -> None:
        row = self.rows.pop(attachment_id, None)
        if row is not None:
            mine = self.by_server.get(row.instance_uuid)
            if mine is not None:
                mine.discard(attachment_id)
                if not mine:
                    del self.by_server[row.instance_uuid]

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    def snapshot(self, time_us: int) -> StorageState:
        return self.state.snapshot(time_us)

    def volume(self, uuid: str) -> Volume:
        try:
            return self.state.volumes[uuid]
        except KeyError:
            raise OperationError(f"no volume {uuid}") from None

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def after_compute(self) -> None:
        """After one Nova operation: detach the volumes of instances it deleted, then
        ``rate`` volume operations on average (their own RNG stream)."""
        self.reap()
        self._credit += self.rate
        while self._credit >= 1:
            self._credit -= 1
            self.step(1)

    def reap(self) -> None:
        """Nova deleted instances: their attachments go (``detach.start``/``.end`` each)."""
        gone = self.compute.gone
        if not gone:
            return
        dead = list(gone)
        gone.clear()
        for server in dead:
            for aid in sorted(self.by_server.get(server, ())):
                row = self.rows.get(aid)
                if row is not None and row.volume_id in self.state.volumes:
                    self.detach(row.volume_id, aid)

    def step(self, n: int = 1) -> None:
        """``n`` random volume operations (their notifications are queued)."""
        for _ in range(n):
            for _attempt in range(32):
                kind = self.kinds[pick(self.kind_cum, self.rng)]
                if getattr(self, "_try_" + kind)():
                    break

    def _random_volume(self, ok: Callable[[Volume], bool]) -> Volume | None:
        order = self.state.ordered()
        if not order:
            return None
        for _ in range(4):
            v = self.state.volumes[order[int(self.rng.random() * len(order))]]
            if ok(v):
                return v
        return None

    def _try_volume_create(self) -> bool:
        vt = self._pick_type()
        size = VOLUME_SIZES[int(self.rng.random() * len(VOLUME_SIZES))]
        if self._pick_pool(vt, size) is None:
            return False
        self.create(vt.id, size)
        return True

    def _try_volume_delete(self) -> bool:
        v = self._random_volume(lambda x: x.status == "available")
        if v is None:
            return False
        self.delete(v.uuid)
        return True

    def _try_volume_attach(self) -> bool:
        t = self.compute
        v = self._random_volume(lambda x: x.status == "available")
        if v is None or not t.live:
            return False
        inst = t.instances[t.live.choice(self.rng)]
        if inst.host is None or inst.vm_state not in ATTACHABLE:
            return False
        self.attach(v.uuid, inst.uuid)
        return True

    def _try_volume_detach(self) -> bool:
        v = self._random_volume(lambda x: bool(x.attachments))
        if v is None:
            return False
        self.detach(v.uuid, v.attachments[int(self.rng.random() * len(v.attachments))].attachment_id)
        return True

    def _try_volume_extend(self) -> bool:
        v = self._random_volume(lambda x: x.status == "available")
        if v is None:
            return False
        new = v.size_gb + 1 + int(self.rng.random() * max(1, v.size_gb))
        if not self.state.fits(v.host, new - v.size_gb):  # type: ignore[arg-type]
            return False
        self.extend(v.uuid, new)
        return True

    def _try_volume_retype(self) -> bool:
        v = self._random_volume(lambda x: x.status == "available")
        if v is None:
            return False
        vt = self._pick_type()
        if vt.id == v.volume_type_id:
            return False
        try:
            self.retype(v.uuid, vt.id)
        except OperationError:
            return False
        return True

    def _try_volume_migrate(self) -> bool:
        v = self._random_volume(lambda x: x.status in ("available", "in-use"))
        if v is None:
            return False
        vt = self.state.volume_types[v.volume_type_id]  # type: ignore[index]
        backend = self.state.nodes[v.host.partition("#")[0]].backend  # type: ignore[union-attr]
        same = attrs.evolve(vt, backend_name=vt.backend_name or backend)
        dest = self._pick_pool(same, v.size_gb, exclude=v.host)
        if dest is None:
            return False
        self.migrate(v.uuid, dest)
        return True

    def _try_volume_rename(self) -> bool:
        v = self._random_volume(lambda x: x.status in ("available", "in-use"))
        if v is None:
            return False
        self._seq += 1
        self.rename(v.uuid, f"{v.name or 'volume'}~{self._seq}")
        return True

    def _try_volume_metadata(self) -> bool:
        v = self._random_volume(lambda x: True)
        if v is None:
            return False
        md = dict(v.metadata)
        if md and self.rng.random() < 0.5:
            del md[sorted(md)[0]]
        else:
            md["tier-hint"] = ("hot", "cold")[int(self.rng.random() * 2)]
        if md == v.metadata:
            return False
        self.set_metadata(v.uuid, md)
        return True

    # ------------------------------------------------------------------
    # Operations (explicit: tests and the random mix)
    # ------------------------------------------------------------------

    def _begin(self) -> int:
        """A volume operation starts in a new second after the last one ended."""
        t = self.compute
        self._sec = t.clock_us // S * S + (1 + int(self.rng.random() * 3)) * S
        self._now = self._sec + 1_000 + int(self.rng.random() * 100_000)
        return self._sec

    def _phase(self) -> int:
        self._sec = self._now // S * S + (1 + int(self.rng.random() * 2)) * S
        self._now = self._sec + 1_000 + int(self.rng.random() * 100_000)
        return self._sec

    def _end(self, kind: str) -> None:
        self.compute.clock_us = max(self.compute.clock_us, self._now)
        self.counters["volume_ops"] += 1
        self.counters[kind] += 1

    def _save(self, new: Volume, *, created: bool = False) -> set[str]:
        """Store a volume saved now (``updated_at`` null for a creation)."""
        at = None if created else self._sec
        new = attrs.evolve(new, version=at if at is not None else (new.created_at or 0))
        return self.state.put_volume(new, at, self._now)

    def create(self, type_id: str, size: int, *, pool: str | None = None) -> str:
        """A new volume of that type and size (on ``pool``, else one the type selects); its uuid."""
        st = self.state
        vt = st.volume_types.get(type_id)
        if vt is None:
            raise OperationError(f"no volume type {type_id}")
        pool = pool or self._pick_pool(vt, size)
        if pool is None or pool not in st.pools or not st.fits(pool, size):
            raise OperationError(f"no pool with {size} GB free for volume type {vt.name}")
        t0 = self._begin()
        vol = self._new_volume(vt, size, pool, t0)
        vol = attrs.evolve(vol, status="creating")
        self.launched.pop(vol.uuid, None)  # unset until created: payloads say "now" (its created_at)
        ctx = self._ctx(vol)
        self._volume_event("create.start", "volume." + pool, vol, ctx)
        self._phase()
        self.launched[vol.uuid] = self._sec
        vol = attrs.evolve(vol, status="available")
        changed = self._save(vol, created=True)
        self._volume_event("create.end", "volume." + pool, vol, ctx)
        self._capacity(changed)
        self._end("volume_create")
        return vol.uuid

    def delete(self, uuid: str) -> None:
        vol = self.volume(uuid)
        if vol.attachments or vol.status not in ("available", "error"):
            raise OperationError(f"volume {uuid} is {vol.status}: only an available volume is deleted")
        self._begin()
        ctx = self._ctx(vol)
        vol = attrs.evolve(vol, status="deleting")
        self._save(vol)
        self._volume_event("delete.start", self._manager(vol), vol, ctx)
        self._phase()
        changed = self.state.drop_volume(uuid, self._now)
        self.launched.pop(uuid, None)
        self.images.pop(uuid, None)
        self._volume_event("delete.end", self._manager(vol), attrs.evolve(vol, status="deleted"), ctx, rows=())
        self._capacity(changed)
        self._end("volume_delete")

    def attach(self, uuid: str, server: str) -> str:
        """Attach a volume to a server (the attachments API flow); the attachment id."""
        vol = self.volume(uuid)
        inst = self.compute.instance(server)
        if inst.host is None:
            raise OperationError(f"server {server} has no host")
        if vol.attachments and not vol.multiattach:
            raise OperationError(f"volume {uuid} is attached already")
        if vol.status not in ("available", "in-use"):
            raise OperationError(f"volume {uuid} is {vol.status}")
        self._begin()
        ctx = self._ctx(vol)
        vol = attrs.evolve(vol, status="attaching")
        self._save(vol)
        row = self._row(uuid, inst, self._sec)
        self._volume_event("attach.start", self._manager(vol), vol, ctx, rows=(*self._rows(vol), row))
        self._phase()
        vol = attrs.evolve(vol, status="in-use", attachments=(*vol.attachments, VolumeAttachment(server, row.id)))
        self._save(vol)
        self._volume_event("attach.end", self._api(), vol, ctx)
        self._end("volume_attach")
        return row.id

    def detach(self, uuid: str, attachment_id: str) -> None:
        vol = self.volume(uuid)
        if attachment_id not in {a.attachment_id for a in vol.attachments}:
            raise OperationError(f"volume {uuid} has no attachment {attachment_id}")
        self._begin()
        ctx = self._ctx(vol)
        vol = attrs.evolve(vol, status="detaching")
        self._save(vol)
        self._volume_event("detach.start", self._api(), vol, ctx)
        self._phase()
        left = tuple(a for a in vol.attachments if a.attachment_id != attachment_id)
        self._drop_row(attachment_id)
        vol = attrs.evolve(vol, status="in-use" if left else "available", attachments=left)
        self._save(vol)
        self._volume_event("detach.end", self._api(), vol, ctx)
        self._end("volume_detach")

    def extend(self, uuid: str, size: int) -> None:
        vol = self.volume(uuid)
        if size <= vol.size_gb:
            raise OperationError(f"volume {uuid}: new size {size} must exceed {vol.size_gb}")
        if not self.state.fits(vol.host, size - vol.size_gb):  # type: ignore[arg-type]
            raise OperationError(f"pool {vol.host} has no room to extend volume {uuid}")
        self._begin()
        ctx = self._ctx(vol)
        vol = attrs.evolve(vol, status="extending")
        self._save(vol)
        self._volume_event("resize.start", self._manager(vol), vol, ctx)
        self._phase()
        vol = attrs.evolve(vol, status="available", size_gb=size)
        changed = self._save(vol)
        self._volume_event("resize.end", self._manager(vol), vol, ctx)
        self._capacity(changed)
        self._end("volume_extend")

    def retype(self, uuid: str, type_id: str) -> None:
        """Change a volume's type; it moves to a pool of the new type's backend when its
        own is not one (Cinder migrates it, then sends ``volume.retype``)."""
        vol = self.volume(uuid)
        st = self.state
        vt = st.volume_types.get(type_id)
        if vt is None:
            raise OperationError(f"no volume type {type_id}")
        backend = st.nodes[vol.host.partition("#")[0]].backend  # type: ignore[union-attr]
        dest = vol.host
        if vt.backend_name is not None and vt.backend_name != backend:
            dest = self._pick_pool(vt, vol.size_gb)
            if dest is None:
                raise OperationError(f"no pool of backend {vt.backend_name} for volume {uuid}")
        self._begin()
        ctx = self._ctx(vol)
        old_manager = self._manager(vol)
        vol = attrs.evolve(vol, status="retyping")
        self._save(vol)
        self._phase()
        node = st.nodes[dest.partition("#")[0]]  # type: ignore[union-attr]
        vol = attrs.evolve(vol, status="available", host=dest, volume_type_id=vt.id, volume_type=vt.name,
                           availability_zone=node.zone)
        changed = self._save(vol)
        self._volume_event("retype", old_manager, vol, ctx)
        self._capacity(changed)
        self._end("volume_retype")

    def migrate(self, uuid: str, pool: str) -> None:
        """Move a volume to another pool, as ``os-migrate_volume``: no volume notification
        (only the changed pools' capacity reports)."""
        vol = self.volume(uuid)
        if pool not in self.state.pools or pool == vol.host:
            raise OperationError(f"cannot migrate volume {uuid} to {pool!r}")
        if not self.state.fits(pool, vol.size_gb):
            raise OperationError(f"pool {pool} has no room for volume {uuid}")
        self._begin()
        status = vol.status
        vol = attrs.evolve(vol, status="maintenance" if status == "available" else status)
        self._save(vol)
        self._phase()
        node = self.state.nodes[pool.partition("#")[0]]
        changed = self._save(attrs.evolve(vol, status=status, host=pool, availability_zone=node.zone))
        self._capacity(changed)
        self._end("volume_migrate")

    def rename(self, uuid: str, name: str) -> None:
        """``PUT /volumes/{id}`` with a new name: ``update.start``/``.end`` from the API."""
        vol = self.volume(uuid)
        self._begin()
        ctx = self._ctx(vol)
        self._volume_event("update.start", self._api(), vol, ctx)
        vol = attrs.evolve(vol, name=name)
        self._save(vol)
        self._volume_event("update.end", self._api(), vol, ctx)
        self._end("volume_rename")

    def set_metadata(self, uuid: str, metadata: dict[str, str]) -> None:
        """The volume metadata API: the volume is saved, nothing is sent."""
        vol = self.volume(uuid)
        self._begin()
        self._save(attrs.evolve(vol, metadata=dict(metadata)))
        self._end("volume_metadata")

    # ------------------------------------------------------------------
    # Notifications
    # ------------------------------------------------------------------

    def _ctx(self, vol: Volume) -> tuple[str, str, str, bool]:
        return ("req-" + uuid4(self.ids), vol.user_id, vol.project_id, False)

    def _manager(self, vol: Volume) -> str:
        return "volume." + (vol.host or "").partition("#")[0]

    def _api(self) -> str:
        return "volume." + CONTROLLERS[int(self.rng.random() * len(CONTROLLERS))]

    def _rows(self, vol: Volume) -> tuple[AttachmentRow, ...]:
        return tuple(self.rows[a.attachment_id] for a in vol.attachments if a.attachment_id in self.rows)

    def _send(self, event_type: str, publisher: str, payload: dict[str, Any], ctx: tuple[str, str, str, bool]) -> None:
        self._now = min(self._now + 200 + int(self.rng.random() * 30_000), self._sec + 999_999)
        inner = N.message(
            event_type=event_type, publisher_id=publisher, payload=payload, timestamp=self._now,
            message_id=uuid4(self.ids), unique_id=uuid4(self.ids).replace("-", ""), request_id=ctx[0],
            user_id=ctx[1], project_id=ctx[2], is_admin=ctx[3],
        )
        self.emit.raw.append(N.wire(inner))

    def _volume_event(self, action: str, publisher: str, vol: Volume, ctx: tuple[str, str, str, bool],
                      rows: tuple[AttachmentRow, ...] | None = None) -> None:
        self._send("volume." + action, publisher, self.usage_payload(vol, rows), ctx)

    def usage_payload(self, vol: Volume, rows: tuple[AttachmentRow, ...] | None = None) -> dict[str, Any]:
        """Cinder's ``_usage_from_volume`` for a volume now, its keys in Cinder's order."""
        rows = self._rows(vol) if rows is None else rows
        created = vol.created_at or 0
        payload: dict[str, Any] = {
            "tenant_id": vol.project_id,
            "host": vol.host,
            "user_id": vol.user_id,
            "availability_zone": vol.availability_zone,
            "volume_id": vol.uuid,
            "volume_type": vol.volume_type_id,
            "display_name": vol.name or None,
            "launched_at": iso_payload(self.launched.get(vol.uuid, created)),
            "created_at": iso_payload(created),
            "status": vol.status,
            "snapshot_id": vol.snapshot_id,
            "size": vol.size_gb,
            "replication_status": None,
            "replication_extended_status": None,
            "replication_driver_data": None,
            "metadata": [{"key": k, "value": v} for k, v in vol.metadata.items()],
            "volume_attachment": [self._row_payload(r, vol) for r in rows],
        }
        image = self.images.get(vol.uuid)
        if image is not None:
            payload["glance_metadata"] = [
                {"key": k, "value": v, "volume_id": vol.uuid, "snapshot_id": None, "deleted": False,
                 "created_at": _serial(created), "updated_at": None, "deleted_at": None, "id": n + 1}
                for n, (k, v) in enumerate((("image_id", image), ("image_name", "image-" + image[:8]),
                                            ("min_disk", "0"), ("min_ram", "0")))]
        return payload

    def _row_payload(self, r: AttachmentRow, vol: Volume) -> dict[str, Any]:
        """An attachment row as the JSON payload serializer writes it, with its joined volume row."""
        updated = self.state.updated_at.get(vol.uuid)
        return {
            "id": r.id, "volume_id": r.volume_id, "instance_uuid": r.instance_uuid,
            "attached_host": r.attached_host, "mountpoint": r.mountpoint, "attach_time": _serial(r.attach_time),
            "detach_time": None, "attach_status": "attached" if vol.status != "attaching" else "attaching",
            "attach_mode": "rw", "connection_info": None, "connector": None, "created_at": _serial(r.created_at),
            "updated_at": _serial(r.attach_time), "deleted_at": None, "deleted": False,
            "volume": {
                "id": vol.uuid, "user_id": vol.user_id, "project_id": vol.project_id, "host": vol.host,
                "size": vol.size_gb, "availability_zone": vol.availability_zone, "status": vol.status,
                "attach_status": "attached", "display_name": vol.name or None, "volume_type_id": vol.volume_type_id,
                "bootable": vol.bootable, "multiattach": vol.multiattach, "created_at": _serial(vol.created_at),
                "updated_at": _serial(updated), "deleted": False, "deleted_at": None,
            },
        }

    def _capacity(self, pools: set[str]) -> None:
        """``capacity.pool`` per changed pool with numbers, then ``capacity.backend`` per backend."""
        st = self.state
        bounded = sorted(p for p in pools if p not in st.infinite)
        if not bounded:
            return
        ctx = ("req-" + uuid4(self.ids), self.emit.admin_user, self.emit.admin_project, True)
        pub = "capacity." + CONTROLLERS[int(self.rng.random() * len(CONTROLLERS))]
        backends: dict[str, list[str]] = {}
        for name in bounded:
            p = st.pools[name]
            backends.setdefault(p.node, []).append(name)
            self._send("capacity.pool", pub, _capacity_payload(name, [p]), ctx)
        for node, _ in sorted(backends.items()):
            mine = [st.pools[n] for n in st.pools if n.partition("#")[0] == node and n not in st.infinite]
            self._send("capacity.backend", pub, _capacity_payload(node, mine), ctx)


def _serial(us: int | None) -> str | None:
    """A datetime as oslo's JSON payload serializer writes it (``%Y-%m-%dT%H:%M:%S.%f``)."""
    return iso_api(us)


def _capacity_payload(name: str, pools: list[Any]) -> dict[str, Any]:
    total = sum(p.total_capacity_gb or 0 for p in pools)
    free = sum(p.free_capacity_gb or 0 for p in pools)
    return {
        "name_to_id": name, "total": total, "free": free,
        "allocated": sum(p.allocated_capacity_gb or 0 for p in pools),
        "provisioned": sum(p.provisioned_capacity_gb or 0 for p in pools),
        "virtual_free": free, "reported_at": iso_api(max(p.version for p in pools)),
    }
