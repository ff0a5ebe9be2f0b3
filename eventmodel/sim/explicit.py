"""The explicit operations on the simulated cloud: each a change of the ground truth
and the notifications Nova sends for it.

:class:`ExplicitOperations` performs them by name (boot, delete, live and cold
migration, resize with confirm or revert, power/pause/suspend/shelve and back, lock,
server metadata, service disable/enable/forced down, aggregates: create, delete,
add/remove host, metadata and zone, rename), for tests, demo scripts and the simulated
API; the random mix of :mod:`eventmodel.sim.operations` draws them. Each one changes
the truth through :class:`~eventmodel.sim.truth.GroundTruth`, queues its notifications
on the :class:`~eventmodel.sim.emitter.Emitter` in Nova's order, and records itself in
the history (:class:`OpRecord`).

As in Nova: an instance takes its host's availability zone when it is scheduled to a
host (boot, migration, resize, unshelve) and keeps it when its host changes zone
later; a host is in at most one zone; an aggregate must be empty to be deleted; a
locked instance's metadata can be changed by nobody but an admin. An aggregate change
sends no ``service.update``: the zone a service reports changes silently.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

from eventmodel.events import Aggregate, Flavor, Instance
from eventmodel.sim.emitter import Ctx, Emitter
from eventmodel.sim.faults import Faults
from eventmodel.sim.timing import PhaseClock
from eventmodel.sim.truth import ZONE_KEY, GroundTruth, OperationError
from eventmodel.sim.world import People, draw_metadata, uuid4

#: what OpRecord.kind can be (and the sim's counters count)
OP_KINDS = (
    "boot", "delete", "live_migrate", "cold_migrate", "resize", "resize_revert",
    "power_off", "power_on", "pause", "unpause", "suspend", "resume",
    "shelve", "shelve_offload", "unshelve", "lock", "unlock", "instance_metadata",
    "service_disable", "service_enable", "service_force_down", "service_force_up",
    "aggregate_create", "aggregate_delete", "aggregate_add_host", "aggregate_remove_host",
    "aggregate_update_metadata", "aggregate_update_prop",
)  # fmt: skip


#: vm_states whose server metadata Nova lets a user change
METADATA_STATES = ("active", "paused", "suspended", "stopped", "shelved", "shelved_offloaded")

# action -> (from vm_state, to vm_state, to power_state, task_state while it runs)
TRANSITIONS: dict[str, tuple[str, str, str, str]] = {
    "power_off": ("active", "stopped", "shutdown", "powering-off"),
    "power_on": ("stopped", "active", "running", "powering-on"),
    "pause": ("active", "paused", "paused", "pausing"),
    "unpause": ("paused", "active", "running", "unpausing"),
    "suspend": ("active", "suspended", "suspended", "suspending"),
    "resume": ("suspended", "active", "running", "resuming"),
}



@attrs.frozen(slots=True)
class OpRecord:
    """One operation the sim performed (for narration and tests).

    ``time_us`` is the second of its last save on the controllers' clock (the entity's new
    version unless a skewed compute host made that save).
    ``source``/``dest`` are hosts for moves; ``host`` for in-place actions and services.
    ``uuid``/``name`` are the instance's, or the aggregate's for aggregate operations.
    """

    kind: str
    time_us: int
    uuid: str | None = None
    name: str | None = None
    host: str | None = None
    source: str | None = None
    dest: str | None = None
    detail: str = ""


def cumulative(weights: Any) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return out


def pick(cum: list[float], rng: random.Random) -> int:
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)



class ExplicitOperations:
    """The operations on ``truth``, by name; each queues its notifications on ``emit``."""

    def __init__(
        self,
        truth: GroundTruth,
        clock: PhaseClock,
        emit: Emitter,
        people: People,
        *,
        flavors: tuple[Flavor, ...],
        flavor_weights: tuple[float, ...],
        quirks: random.Random,
        faults: Faults,
        counters: dict[str, int],
    ) -> None:
        self.truth = truth
        self.clock = clock
        self.emit = emit
        self.people = people
        self.rng = clock.rng
        self.qrng = quirks
        self.faults = faults
        self.counters = counters
        self.flavors = flavors
        self.flavor_cum = cumulative(flavor_weights)
        self.flavors_by_name = {f.name: f for f in flavors}
        self.history: deque[OpRecord] = deque(maxlen=10_000)
        self._agg_seq = 0
        for k in OP_KINDS:
            counters.setdefault(k, 0)

    def pick_flavor(self) -> Flavor:
        return self.flavors[pick(self.flavor_cum, self.rng)]
    # ------------------------------------------------------------------
    # Explicit operations (tests, demo scripts, the API)
    # ------------------------------------------------------------------

    def boot(
        self, *, flavor: str | Flavor | None = None, host: str | None = None, project_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        f = self.flavor(flavor) if flavor is not None else self.pick_flavor()
        t = self.truth
        if host is not None:
            dest = t.host(host)
            if not t.can_host(dest, f):
                raise OperationError(f"{host} cannot take {f.name} (disabled, down or full)")
        else:
            d = t.pick_host(self.rng, f)
            if d is None:
                raise OperationError(f"no host can take {f.name}")
            dest = d
        if project_id is not None and project_id not in self.people.users:
            raise OperationError(f"unknown project {project_id}")
        self._boot(f, dest, project_id, None if metadata is None else _str_map(metadata))

    def delete(self, uuid: str) -> None:
        self._delete(self.truth.instance(uuid))

    def live_migrate(self, uuid: str, dest: str | None = None) -> None:
        inst = self.truth.instance(uuid)
        self._require(inst, ("active",), admin=True)
        self._live_migrate(inst, self._dest(inst, inst.flavor, dest))

    def cold_migrate(self, uuid: str, dest: str | None = None, *, revert: bool = False) -> None:
        inst = self.truth.instance(uuid)
        self._require(inst, ("active", "stopped"), admin=True)
        self._resize(inst, inst.flavor, self._dest(inst, inst.flavor, dest), revert)

    def resize(
        self, uuid: str, flavor: str | Flavor | None = None, *, dest: str | None = None, revert: bool = False
    ) -> None:
        t = self.truth
        inst = t.instance(uuid)
        self._require(inst, ("active", "stopped"))
        if flavor is None:
            others = [f for f in self.flavors if f != inst.flavor]
            if not others:
                raise OperationError("no other flavor to resize to")
            new = others[int(self.rng.random() * len(others))]
        else:
            new = self.flavor(flavor)
        if dest is not None and t.host(dest) == t.host_idx[inst.host]:  # type: ignore[index]
            d = t.host(dest)
            if not self._fits_same_host(d, new):
                raise OperationError(f"{dest} cannot also hold {new.name} during the resize")
        else:
            d = self._dest(inst, new, dest)
        self._resize(inst, new, d, revert)

    def transition(self, uuid: str, action: str) -> None:
        """power_off, power_on, pause, unpause, suspend or resume."""
        inst = self.truth.instance(uuid)
        self._require(inst, (TRANSITIONS[action][0],))
        self._transition(inst, action)

    def shelve(self, uuid: str, *, offload: bool = True) -> None:
        inst = self.truth.instance(uuid)
        self._require(inst, ("active", "stopped"))
        self._shelve(inst, offload)

    def shelve_offload(self, uuid: str) -> None:
        inst = self.truth.instance(uuid)
        self._require(inst, ("shelved",))
        self.clock.begin()
        self._shelve_offload(inst, self.emit.admin_ctx())
        self._end()

    def unshelve(self, uuid: str, dest: str | None = None) -> None:
        inst = self.truth.instance(uuid)
        self._require(inst, ("shelved", "shelved_offloaded"))
        d = None
        if inst.vm_state == "shelved_offloaded":
            d = self._dest(inst, inst.flavor, dest)
        self._unshelve(inst, d)

    def lock(self, uuid: str, reason: str | None = None) -> None:
        inst = self.truth.instance(uuid)
        if inst.locked:
            raise OperationError(f"instance {uuid} is already locked")
        self._lock(inst, True, reason)

    def unlock(self, uuid: str) -> None:
        inst = self.truth.instance(uuid)
        if not inst.locked:
            raise OperationError(f"instance {uuid} is not locked")
        self._lock(inst, False, None)

    def update_instance_metadata(
        self, uuid: str, set_: Mapping[str, str] | None = None, delete: tuple[str, ...] = (), *, admin: bool = False
    ) -> None:
        """Set keys of a server's metadata and delete others (Nova's server metadata API)."""
        inst = self.truth.instance(uuid)
        if inst.vm_state not in METADATA_STATES:
            raise OperationError(f"instance {uuid} is {inst.vm_state}: its metadata cannot change now")
        if inst.locked and not admin:
            raise OperationError(f"instance {uuid} is locked")
        for k in delete:
            if k not in inst.metadata:
                raise OperationError(f"instance {uuid} has no metadata key {k!r}")
        md = dict(inst.metadata)
        md.update(_str_map(set_ or {}))
        for k in delete:
            md.pop(k, None)
        self._set_metadata(inst, md, admin)

    def set_service(
        self, host: str, kind: str, *, disabled: bool | None = None, reason: str | None = None,
        forced_down: bool | None = None,
    ) -> None:  # fmt: skip
        t = self.truth
        i = t.host(host)
        if kind == "service_disable" and i in t.disabled:
            raise OperationError(f"{host} is already disabled")
        if kind == "service_enable" and i not in t.disabled:
            raise OperationError(f"{host} is not disabled")
        if kind == "service_force_down" and i in t.forced:
            raise OperationError(f"{host} is already forced down")
        if kind == "service_force_up" and i not in t.forced:
            raise OperationError(f"{host} is not forced down")
        self._service(i, kind, disabled=disabled, reason=reason, forced_down=forced_down)

    # aggregates

    def create_aggregate(
        self, name: str, *, availability_zone: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> Aggregate:
        if not name or any(a.name == name for a in self.truth.aggregates.values()):
            raise OperationError(f"an aggregate named {name!r} exists already" if name else "an aggregate needs a name")
        md = _str_map(metadata or {})
        md.pop(ZONE_KEY, None)
        if availability_zone is not None:
            if not availability_zone:
                raise OperationError("an availability zone needs a name")
            md[ZONE_KEY] = availability_zone
        return self._create_aggregate(name, md)

    def delete_aggregate(self, uuid: str) -> None:
        agg = self.truth.aggregate(uuid)
        if agg.hosts:
            raise OperationError(f"aggregate {agg.name} is not empty")
        self._delete_aggregate(agg)

    def add_aggregate_host(self, uuid: str, host: str) -> None:
        agg = self.truth.aggregate(uuid)
        self.truth.host(host)
        if host in agg.hosts:
            raise OperationError(f"{host} is already in aggregate {agg.name}")
        self._check_zones(host, agg.availability_zone, agg.uuid)
        self._aggregate_hosts(agg, host, add=True)

    def remove_aggregate_host(self, uuid: str, host: str) -> None:
        agg = self.truth.aggregate(uuid)
        if host not in agg.hosts:
            raise OperationError(f"{host} is not in aggregate {agg.name}")
        self._aggregate_hosts(agg, host, add=False)

    def update_aggregate_metadata(self, uuid: str, metadata: Mapping[str, str | None]) -> None:
        """Set metadata keys (a value of None deletes the key); ``availability_zone`` sets the zone."""
        agg = self.truth.aggregate(uuid)
        md = dict(agg.metadata)
        for k, v in metadata.items():
            if v is None:
                md.pop(k, None)
            else:
                md[str(k)] = str(v)
        if ZONE_KEY in metadata:
            zone = metadata[ZONE_KEY]
            if zone is not None and not zone:
                raise OperationError("an availability zone needs a name")
            for h in agg.hosts:
                self._check_zones(h, zone, agg.uuid)
        self._aggregate_metadata(agg, md)

    def rename_aggregate(self, uuid: str, name: str) -> None:
        agg = self.truth.aggregate(uuid)
        if not name or any(a.name == name and a.uuid != uuid for a in self.truth.aggregates.values()):
            raise OperationError(f"an aggregate named {name!r} exists already" if name else "an aggregate needs a name")
        self._rename_aggregate(agg, name)

    # ------------------------------------------------------------------
    # Operations: ground truth + notifications
    # ------------------------------------------------------------------

    def _boot(self, f: Flavor, dest: int, project_id: str | None, metadata: dict[str, str] | None) -> None:
        rng, t, clock, emit = self.rng, self.truth, self.clock, self.emit
        people = self.people
        if project_id is None:
            project_id = people.projects[int(rng.random() * len(people.projects))][0]
        users = people.users[project_id]
        user = users[int(rng.random() * len(users))]
        u = uuid4(rng)
        host, node = t.hosts[dest], t.node_of[dest]
        md = draw_metadata(rng) if metadata is None else metadata
        t0 = clock.begin()
        t.launched[u] = None
        ctx = emit.ctx(user, project_id)
        api, comp = emit.api(), "nova-compute:" + host
        fl = self.faults
        if fl.null_updated_at and self.qrng.random() < fl.null_updated_at:
            emit.unsaved.add(u)  # until after create.start
            self.counters["null_updated_at_boots"] += 1
        i0 = Instance(
            u, t0, None, None, "building", f, "pending", "scheduling",
            project_id, user, people.new_name(rng, project_id), False, None, t.zone(host), md, t0,
        )  # fmt: skip
        emit.update(api, i0, ctx, "building", None)
        clock.phase(1, 2)
        i1 = attrs.evolve(i0, version=clock.at(comp), task_state=None)
        emit.update(comp, i1, ctx, "building", "scheduling")
        emit.create("instance.create.start", comp, i1, ctx)
        emit.unsaved.discard(u)
        i2 = attrs.evolve(i1, host=host, node=node, task_state="networking")
        emit.update(comp, i2, ctx, "building", None)
        i3 = attrs.evolve(i2, task_state="spawning")
        emit.update(comp, i3, ctx, "building", "networking")
        clock.phase(2, 8)
        t2 = clock.at(comp)
        t.launched[u] = t2
        final = attrs.evolve(i3, version=t2, vm_state="active", power_state="running", task_state=None)
        emit.update(comp, final, ctx, "building", "spawning")
        emit.create("instance.create.end", comp, final, ctx)
        t.commit(None, final)
        self._end("boot", final, dest=host, detail=f.name)

    def _delete(self, inst: Instance) -> None:
        clock, emit = self.clock, self.emit
        ctx = emit.user_ctx(inst)
        t0 = clock.begin()
        api = emit.api()
        vm = inst.vm_state
        i1 = attrs.evolve(inst, version=t0, task_state="deleting")
        emit.update(api, i1, ctx, vm, None)
        if inst.host is not None and self.truth.host_up(inst.host):
            comp = "nova-compute:" + inst.host
            emit.action("instance.delete.start", comp, i1, ctx)
            emit.action("instance.shutdown.start", comp, i1, ctx)
            emit.action("instance.shutdown.end", comp, i1, ctx)
            clock.phase(1, 3)
            t1 = clock.at(comp)
            i2 = attrs.evolve(i1, version=t1, vm_state="deleted", power_state="pending", task_state=None)
            emit.update(comp, i2, ctx, vm, "deleting", deleted=t1)
            emit.action("instance.delete.end", comp, i2, ctx, deleted=t1)
            detail = ""
        else:  # local delete: the compute service is down or the instance has no host
            emit.action("instance.delete.start", api, i1, ctx)
            t1 = clock.phase(1, 1)
            i2 = attrs.evolve(i1, version=t1, vm_state="deleted", task_state=None)
            emit.update(api, i2, ctx, vm, "deleting", deleted=t1)
            emit.action("instance.delete.end", api, i2, ctx, deleted=t1)
            detail = "local delete"
        self.truth.commit(inst, None)
        self._end("delete", i2, source=inst.host, detail=detail)

    def _live_migrate(self, inst: Instance, dest: int) -> None:
        t, clock, emit = self.truth, self.clock, self.emit
        ctx = emit.admin_ctx()
        src_host = inst.host
        assert src_host is not None
        host, node = t.hosts[dest], t.node_of[dest]
        t0 = clock.begin()
        src, dst = "nova-compute:" + src_host, "nova-compute:" + host
        i1 = attrs.evolve(inst, version=t0, task_state="migrating")
        emit.update(emit.api(), i1, ctx, inst.vm_state, None)
        emit.action("instance.live_migration_pre.start", dst, i1, ctx)
        emit.action("instance.live_migration_pre.end", dst, i1, ctx)
        clock.phase(2, 10)  # the memory copy
        emit.action("instance.live_migration_post.start", src, i1, ctx)
        emit.action("instance.live_migration_post_dest.start", dst, i1, ctx)
        i2 = attrs.evolve(
            i1, version=clock.at(dst), host=host, node=node, task_state=None, availability_zone=t.zone(host)
        )
        emit.update(dst, i2, ctx, inst.vm_state, "migrating")
        emit.action("instance.live_migration_post_dest.end", dst, i2, ctx)
        # the source's copy of the instance is stale: its own host, older updated_at
        emit.action("instance.live_migration_post.end", src, i1, ctx)
        t.commit(inst, i2)
        self._end("live_migrate", i2, source=src_host, dest=host)

    def _resize(self, inst: Instance, new: Flavor, dest: int, revert: bool) -> None:
        """Cold migration (same flavor) or resize, then confirm or revert."""
        t, clock, emit = self.truth, self.clock, self.emit
        kind = "cold_migrate" if new == inst.flavor else "resize"
        ctx = emit.admin_ctx() if kind == "cold_migrate" else emit.user_ctx(inst)
        src_host, src_node, old = inst.host, inst.node, inst.flavor
        assert src_host is not None
        host, node = t.hosts[dest], t.node_of[dest]
        vm = inst.vm_state
        src, dst = "nova-compute:" + src_host, "nova-compute:" + host
        t0 = clock.begin()
        i1 = attrs.evolve(inst, version=t0, task_state="resize_prep")
        emit.update(emit.api(), i1, ctx, vm, None)
        emit.resize_prep("instance.resize_prep.start", dst, i1, new, ctx)
        emit.resize_prep("instance.resize_prep.end", dst, i1, new, ctx)
        clock.phase(1, 3)
        i2 = attrs.evolve(i1, version=clock.at(src), task_state="resize_migrating")
        emit.update(src, i2, ctx, vm, "resize_prep")
        emit.action("instance.resize.start", src, i2, ctx)
        i3 = attrs.evolve(i2, task_state="resize_migrated")
        emit.update(src, i3, ctx, vm, "resize_migrating")
        emit.action("instance.resize.end", src, i3, ctx)
        clock.phase(2, 10)
        i4 = attrs.evolve(
            i3, version=clock.at(dst), host=host, node=node, flavor=new, task_state="resize_finish",
            availability_zone=t.zone(host),
        )  # fmt: skip
        emit.update(dst, i4, ctx, vm, "resize_migrated")
        emit.action("instance.resize_finish.start", dst, i4, ctx)
        i5 = attrs.evolve(i4, vm_state="resized", task_state=None)
        emit.update(dst, i5, ctx, vm, "resize_finish")
        emit.action("instance.resize_finish.end", dst, i5, ctx)
        t3 = clock.phase(5, 60)  # the user looks at it, then confirms or reverts
        ctx = (emit.req(), *ctx[1:])  # type: ignore[assignment]
        if not revert:
            emit.action("instance.resize_confirm.start", src, i5, ctx)
            final = attrs.evolve(i5, version=clock.at(src), vm_state=vm)
            emit.update(src, final, ctx, "resized", None)
            emit.action("instance.resize_confirm.end", src, final, ctx)
            detail = f"{old.name}->{new.name}" if kind == "resize" else ""
        else:
            i6 = attrs.evolve(i5, version=t3, task_state="resize_reverting")
            emit.update(emit.api(), i6, ctx, "resized", None)
            emit.action("instance.resize_revert.start", dst, i6, ctx)
            clock.phase(1, 5)
            final = attrs.evolve(
                i6, version=clock.at(src), host=src_host, node=src_node, flavor=old, vm_state=vm, task_state=None,
                availability_zone=t.zone(src_host),
            )  # fmt: skip
            emit.update(src, final, ctx, "resized", "resize_reverting")
            emit.action("instance.resize_revert.end", src, final, ctx)
            detail = f"reverted {old.name}->{new.name} on {host}"
            self.counters["resize_revert"] += 1
        t.commit(inst, final)
        self._end(kind, final, source=src_host, dest=host, detail=detail)

    def _transition(self, inst: Instance, action: str) -> None:
        clock, emit = self.clock, self.emit
        frm, to, power, task = TRANSITIONS[action]
        assert inst.vm_state == frm and inst.host is not None
        ctx = emit.user_ctx(inst)
        comp = "nova-compute:" + inst.host
        t0 = clock.begin()
        i1 = attrs.evolve(inst, version=t0, task_state=task)
        emit.update(emit.api(), i1, ctx, frm, None)
        emit.action(f"instance.{action}.start", comp, i1, ctx)
        clock.phase(1, 5)
        i2 = attrs.evolve(i1, version=clock.at(comp), vm_state=to, power_state=power, task_state=None)
        emit.update(comp, i2, ctx, frm, task)
        emit.action(f"instance.{action}.end", comp, i2, ctx)
        self.truth.commit(inst, i2)
        self._end(action, i2, host=inst.host)

    def _shelve(self, inst: Instance, offload: bool) -> None:
        clock, emit = self.clock, self.emit
        assert inst.host is not None
        ctx = emit.user_ctx(inst)
        comp = "nova-compute:" + inst.host
        vm = inst.vm_state
        t0 = clock.begin()
        i1 = attrs.evolve(inst, version=t0, task_state="shelving")
        emit.update(emit.api(), i1, ctx, vm, None)
        emit.action("instance.shelve.start", comp, i1, ctx)
        i1b = attrs.evolve(i1, version=clock.at(comp), task_state="shelving_image_pending_upload")
        emit.update(comp, i1b, ctx, vm, "shelving")
        i1c = attrs.evolve(i1b, task_state="shelving_image_uploading")
        emit.update(comp, i1c, ctx, vm, "shelving_image_pending_upload")
        clock.phase(2, 20)
        i2 = attrs.evolve(i1c, version=clock.at(comp), vm_state="shelved", power_state="shutdown", task_state=None)
        emit.update(comp, i2, ctx, vm, "shelving_image_uploading")
        emit.action("instance.shelve.end", comp, i2, ctx)
        self.truth.commit(inst, i2)
        self._record("shelve", i2, host=inst.host)
        if offload:  # shelved_offload_time = 0: offloaded right away
            self._shelve_offload(i2, ctx)
        self._end()

    def _shelve_offload(self, inst: Instance, ctx: Ctx) -> None:
        """Inside an operation (between begin and _end)."""
        clock, emit = self.clock, self.emit
        assert inst.host is not None and inst.vm_state == "shelved"
        comp = "nova-compute:" + inst.host
        clock.phase(1, 2)
        i1 = attrs.evolve(inst, version=clock.at(comp), task_state="shelving_offloading")
        emit.update(comp, i1, ctx, "shelved", None)
        emit.action("instance.shelve_offload.start", comp, i1, ctx)
        clock.phase(1, 3)
        # no host, no zone: Nova's notifications say null here, its API ''
        i2 = attrs.evolve(
            i1, version=clock.at(comp), host=None, node=None, vm_state="shelved_offloaded", task_state=None,
            availability_zone=None,
        )  # fmt: skip
        emit.update(comp, i2, ctx, "shelved", "shelving_offloading")
        emit.action("instance.shelve_offload.end", comp, i2, ctx)
        self.truth.commit(inst, i2)
        self._record("shelve_offload", i2, source=inst.host)

    def _unshelve(self, inst: Instance, dest: int | None) -> None:
        t, clock, emit = self.truth, self.clock, self.emit
        ctx = emit.user_ctx(inst)
        vm = inst.vm_state
        src: str | None = None
        t0 = clock.begin()
        i1 = attrs.evolve(inst, version=t0, task_state="unshelving")
        emit.update(emit.api(), i1, ctx, vm, None)
        if vm == "shelved_offloaded":
            assert dest is not None
            host = t.hosts[dest]
            comp = "nova-compute:" + host
            clock.phase(1, 3)
            emit.action("instance.unshelve.start", comp, i1, ctx)
            i2 = attrs.evolve(
                i1, version=clock.at(comp), host=host, node=t.node_of[dest], task_state="spawning",
                availability_zone=t.zone(host),
            )  # fmt: skip
            emit.update(comp, i2, ctx, vm, "unshelving")
            last_task = "spawning"
        else:
            assert inst.host is not None
            host = inst.host
            comp = "nova-compute:" + host
            emit.action("instance.unshelve.start", comp, i1, ctx)
            i2 = i1
            last_task = "unshelving"
            src = host
        clock.phase(2, 10)
        final = attrs.evolve(i2, version=clock.at(comp), vm_state="active", power_state="running", task_state=None)
        emit.update(comp, final, ctx, vm, last_task)
        emit.action("instance.unshelve.end", comp, final, ctx)
        t.commit(inst, final)
        self._end("unshelve", final, source=src, dest=host)

    def _lock(self, inst: Instance, locked: bool, reason: str | None) -> None:
        emit = self.emit
        ctx = emit.user_ctx(inst)
        t0 = self.clock.begin()
        new = attrs.evolve(inst, version=t0, locked=locked, locked_reason=reason if locked else None)
        emit.action("instance.lock" if locked else "instance.unlock", emit.api(), new, ctx)
        self.truth.commit(inst, new)
        self._end("lock" if locked else "unlock", new, detail=reason or "")

    def _set_metadata(self, inst: Instance, metadata: dict[str, str], admin: bool) -> None:
        """The API saves the instance with its new metadata: one ``instance.update``."""
        emit = self.emit
        ctx = emit.admin_ctx() if admin else emit.user_ctx(inst)
        t0 = self.clock.begin()
        new = attrs.evolve(inst, version=t0, metadata=metadata)
        emit.update(emit.api(), new, ctx, inst.vm_state, inst.task_state)
        self.truth.commit(inst, new)
        self._end("instance_metadata", new, host=inst.host, detail=",".join(f"{k}={v}" for k, v in sorted(metadata.items())))

    def _service(
        self, i: int, kind: str, *, disabled: bool | None = None, reason: str | None = None,
        forced_down: bool | None = None,
    ) -> None:  # fmt: skip
        t = self.truth
        host = t.hosts[i]
        old = t.services[host]
        t0 = self.clock.begin()
        changes: dict[str, Any] = {"version": t0}
        if disabled is not None:
            changes["disabled"] = disabled
            changes["disabled_reason"] = reason if disabled else None
        if forced_down is not None:
            changes["forced_down"] = forced_down
            changes["up"] = not forced_down
        new = attrs.evolve(old, **changes)
        t.put_service(new)
        self.emit.service(new)
        self._end(kind, None, host=host, detail=str(new.disabled_reason or ""))

    # aggregates: nova-api changes them; their payloads carry no time

    def _create_aggregate(self, name: str, metadata: dict[str, str]) -> Aggregate:
        t = self.truth
        self.clock.begin()
        agg = Aggregate(uuid4(self.rng), 0, t.next_aggregate_id, name, metadata.get(ZONE_KEY) or None, (), metadata)
        t.next_aggregate_id += 1
        t.put_aggregate(agg)
        self.emit.aggregate("create", None, agg, creating=True)
        self._end("aggregate_create", None, uuid=agg.uuid, name=name, detail=_md_detail(metadata))
        return agg

    def _delete_aggregate(self, agg: Aggregate) -> None:
        self.clock.begin()
        self.truth.drop_aggregate(agg.uuid)
        self.emit.aggregate("delete", agg, agg)
        self._end("aggregate_delete", None, uuid=agg.uuid, name=agg.name)

    def _aggregate_hosts(self, agg: Aggregate, host: str, *, add: bool) -> None:
        self.clock.begin()
        hosts = set(agg.hosts)
        (hosts.add if add else hosts.discard)(host)
        new = attrs.evolve(agg, hosts=tuple(sorted(hosts)))
        self.truth.put_aggregate(new)
        action = "add_host" if add else "remove_host"
        self.emit.aggregate(action, agg, new)
        self._end("aggregate_" + action, None, uuid=agg.uuid, name=agg.name, host=host,
                  detail=agg.availability_zone or "")  # fmt: skip

    def _aggregate_metadata(self, agg: Aggregate, metadata: dict[str, str]) -> None:
        self.clock.begin()
        new = attrs.evolve(agg, metadata=metadata, availability_zone=metadata.get(ZONE_KEY) or None)
        self.truth.put_aggregate(new)
        self.emit.aggregate("update_metadata", agg, new)
        self._end("aggregate_update_metadata", None, uuid=agg.uuid, name=agg.name, detail=_md_detail(metadata))

    def _rename_aggregate(self, agg: Aggregate, name: str) -> None:
        self.clock.begin()
        new = attrs.evolve(agg, name=name)
        self.truth.put_aggregate(new)
        self.emit.aggregate("update_prop", agg, new)
        self._end("aggregate_update_prop", None, uuid=agg.uuid, name=name, detail=f"{agg.name}->{name}")

    # ------------------------------------------------------------------
    # Bookkeeping and checks
    # ------------------------------------------------------------------

    def _end(self, kind: str | None = None, inst: Instance | None = None, **rec: Any) -> None:
        self.clock.end()
        if kind is not None:
            self._record(kind, inst, **rec)

    def _record(self, kind: str, inst: Instance | None, **rec: Any) -> None:
        self.counters["ops"] += 1
        self.counters[kind] += 1
        if inst is not None:
            rec.setdefault("uuid", inst.uuid)
            rec.setdefault("name", inst.name)
        self.history.append(OpRecord(kind, self.clock.sec, **rec))

    def flavor(self, flavor: str | Flavor) -> Flavor:
        if isinstance(flavor, Flavor):
            return flavor
        try:
            return self.flavors_by_name[flavor]
        except KeyError:
            raise OperationError(f"no flavor {flavor!r}") from None

    def _fits_same_host(self, i: int, new: Flavor) -> bool:
        """A resize on the same host holds the old and the new allocation until confirmed."""
        t = self.truth
        return t.fits(i, new) and i not in t.disabled and i not in t.forced

    def _require(self, inst: Instance, states: tuple[str, ...], admin: bool = False) -> None:
        if inst.vm_state not in states:
            raise OperationError(f"instance {inst.uuid} is {inst.vm_state}, needs {' or '.join(states)}")
        if inst.locked and not admin:
            raise OperationError(f"instance {inst.uuid} is locked")
        if inst.host is not None and not self.truth.host_up(inst.host):
            raise OperationError(f"the compute service on {inst.host} is down")

    def _dest(self, inst: Instance, f: Flavor, dest: str | None) -> int:
        t = self.truth
        exclude = t.host_idx[inst.host] if inst.host is not None else -1
        if dest is None:
            d = t.pick_host(self.rng, f, exclude=exclude)
            if d is None:
                raise OperationError(f"no other host can take {f.name}")
            return d
        d = t.host(dest)
        if d == exclude:
            raise OperationError(f"instance {inst.uuid} is already on {dest}")
        if not t.can_host(d, f):
            raise OperationError(f"{dest} cannot take {f.name} (disabled, down or full)")
        return d

    def _check_zones(self, host: str, zone: str | None, agg_uuid: str) -> None:
        """Nova keeps a host in one zone: refuse a zone that differs from the host's
        zones in its other aggregates."""
        if not zone:
            return
        t = self.truth
        for u in t.host_aggregates.get(host, ()):
            other = t.aggregates[u]
            if u != agg_uuid and other.availability_zone and other.availability_zone != zone:
                raise OperationError(
                    f"{host} is in zone {other.availability_zone} (aggregate {other.name}): it cannot also be in {zone}"
                )


def _str_map(d: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()}


def _md_detail(md: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(md.items()))
