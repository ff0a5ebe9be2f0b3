"""The simulated cloud: one ground truth, operations on it, and the notifications they emit.

``SimCloud`` is a thin facade over the sim's parts, which share one
:class:`~eventmodel.sim.truth.GroundTruth`: compute hosts (one hypervisor node and
one ``nova-compute`` service each) in zone and non-zone aggregates, and instances
placed on them within Placement capacity (:mod:`~eventmodel.sim.world` builds it).
``step()`` performs random operations from a weighted mix
(:mod:`~eventmodel.sim.operations` over the explicit ones of
:mod:`~eventmodel.sim.explicit`: boot, delete, live and cold migration, resize with
confirm or revert, power/pause/suspend/shelve and back, lock, server metadata, service
disable/enable/forced down, aggregates) and returns what Nova would have put on the
bus (:mod:`~eventmodel.sim.emitter`, :mod:`~eventmodel.sim.notifications`), after the
configured faults (:mod:`~eventmodel.sim.faults`: drop, duplicate, delay, reorder).
The sync reads are in :mod:`~eventmodel.sim.listing`.

With ``volumes`` the cloud also runs a simulated Cinder (:mod:`~eventmodel.sim.cinder`,
its truth in :mod:`~eventmodel.sim.storage`): ``step()`` follows each Nova operation with
``volume_rate`` volume operations on average, an instance Nova deletes has its volumes
detached, and the notifications of both go through the same delivery faults. Without
volumes (the default) the cloud is exactly what it was before Cinder existed in the sim.
With ``baremetal`` it also runs a simulated Ironic (:mod:`~eventmodel.sim.ironic`):
``step()`` follows each Nova operation with ``baremetal_rate`` node operations on
average, ``baremetal_churn`` of them enrolling or deleting a node; without bare-metal
nodes (the default) the cloud is unchanged.

Everything is deterministic for a seed: operations, uuids, message ids, faults.
Independent RNG streams (operations, ids, delivery faults, payload quirks, listing
faults, host clocks) make the ground truth the same whatever faults are configured
(only versions move with the hosts' clock skew).

Timing follows real Nova (:mod:`~eventmodel.sim.timing`): an operation spans one or
more *phases*, each in a new whole second of simulated time; every instance save in a
phase stamps the instance with that second (Nova's ``updated_at`` has one-second
resolution), and every payload carries the ``updated_at`` of the save before it. So a
live migration's ``instance.live_migration_post.end``, sent by the source after the
destination's ``live_migration_post_dest.end``, carries the older ``updated_at`` and
the source host, as in Nova. The truth's ``Instance.version`` is the ``updated_at`` of
the last save (µs, whole seconds); a service's version is the second of its change,
which is also the second of its ``service.update`` timestamp. Aggregates have version
0 (Nova's aggregate payload has no time).

As unkind as Nova (see :class:`~eventmodel.sim.faults.Faults`, ``Faults.nova_like()``):
a compute host's saves are stamped by its own, possibly skewed, clock (API and
conductor saves are not), so an instance's ``updated_at`` can go back in time
across a save; a new instance's first notifications carry ``updated_at`` null;
a shelve-offloaded instance has no availability zone (None in the truth, null in
notifications, ``''`` in the API); a listing can omit a server or list a down
cell's servers as minimal records; and ``during_listing`` lets operations run
between the pages of a full sync.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from contextlib import contextmanager
from datetime import UTC, datetime

from eventmodel.clock import to_us
from eventmodel.events import (
    BaremetalNode,
    Aggregate,
    ComputeNode,
    ComputeService,
    Flavor,
    Instance,
    PartialInstance,
    Volume,
)
from eventmodel.sim.cinder import SimCinder
from eventmodel.sim.ironic import SimIronic
from eventmodel.sim.storage import StorageState, diff_storage
from eventmodel.sim.emitter import CONTROLLERS, Emitter
from eventmodel.sim.faults import NOTIFICATION_COUNTERS, Faults
from eventmodel.sim.listing import Listing
from eventmodel.sim.notifications import InstanceExtras
from eventmodel.sim.explicit import OP_KINDS, OpRecord
from eventmodel.sim.operations import DEFAULT_WEIGHTS, Operations, operation_mix
from eventmodel.sim.timing import PhaseClock
from eventmodel.sim.truth import (
    GroundTruth,
    HostSpec,
    OperationError,
    S,
    Truth,
    compared_fields,
    diff_table,
    diff_truth,
    flavor_disk_gb,
    page_after,
)
from eventmodel.sim.world import (
    DEFAULT_FLAVOR_WEIGHTS,
    DEFAULT_FLAVORS,
    People,
    add_aggregates,
    add_hosts,
    host_names,
    place_instances,
)

__all__ = [
    "DEFAULT_FLAVORS",
    "DEFAULT_WEIGHTS",
    "Faults",
    "HostSpec",
    "OpRecord",
    "OperationError",
    "PartialInstance",
    "SimCloud",
    "Truth",
    "baremetal_differences",
    "diff_truth",
    "flavor_disk_gb",
    "storage_differences",
]

DEFAULT_START = to_us(datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC))


class SimCloud:
    """N compute hosts, M instances, one ground truth, Nova-format notifications.

    Host names are ``compute-0001``...; each host's hypervisor (ComputeNode, Nova's
    ``node``) is ``compute-0001.example.org`` (libvirt reports the FQDN while the
    service host is the short name, so code that mixes the two up is caught).
    The initial instances and aggregates exist before the log starts: only a full
    sync (list_services / list_nodes / list_servers / list_aggregates) tells a
    projection about them.

    ``during_listing``, when set, is called before each ``list_servers`` page, before
    each ``get_server`` and before and after the other listings: a test or the demo
    sets it to e.g. ``lambda: feed(sim.step(5))`` so that operations start and finish
    while a full sync reads (or ``lambda: feed(sim.release(3))`` to deliver a backlog of
    held notifications without new operations). After each full listing of servers,
    ``omitted_last_listing`` holds the uuids it left out and ``minimal_last_listing``
    those it listed as minimal records (``down_cell_last_listing`` is the cell that was
    down, or None).

    Every operation returns the notifications that reach the bus (after faults).
    """

    def __init__(
        self,
        hosts: int = 10,
        instances: int = 100,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        flavors: list[Flavor] | None = None,
        start_time_us: int | None = None,
        weights: Mapping[str, float] | None = None,
        host_spec: HostSpec | None = None,
        volumes: int = 0,
        storage_backends: int | None = None,
        volume_rate: float = 0.5,
        baremetal: int = 0,
        baremetal_rate: float = 0.1,
        baremetal_churn: float = 0.1,
    ) -> None:
        if hosts < 0 or instances < 0:
            raise ValueError("hosts and instances must be >= 0")
        if volumes < 0:
            raise ValueError("volumes must be >= 0")
        self.seed = seed
        faults = faults if faults is not None else Faults()
        rng = random.Random(f"eventmodel-sim:{seed}:ops")
        self.start_time_us = start = (DEFAULT_START if start_time_us is None else start_time_us) // S * S
        if flavors:
            flavor_list: tuple[Flavor, ...] = tuple(flavors)
            fw: tuple[float, ...] = (1.0,) * len(flavor_list)
        else:
            flavor_list, fw = DEFAULT_FLAVORS, DEFAULT_FLAVOR_WEIGHTS
        mix = operation_mix(weights)
        self.people = People(rng)
        self.host_spec = spec = host_spec or HostSpec()

        #: the ground truth, the one state every part shares
        self.state = truth = GroundTruth(host_names(hosts), spec, start)
        self.counters: dict[str, int] = {"ops": 0, "skipped": 0}
        self.counters.update(dict.fromkeys(OP_KINDS, 0))
        self.counters.update(dict.fromkeys(NOTIFICATION_COUNTERS, 0))
        self.counters.update(
            dict.fromkeys(("listings", "omitted", "minimal", "server_gets", "null_updated_at_boots"), 0))
        add_hosts(truth, rng, spec, start - 7 * 86_400 * S)
        add_aggregates(truth, rng)
        self.clock_skew: dict[str, int] = PhaseClock.draw_skew(truth.hosts, faults, seed)
        self._clock = PhaseClock(truth, rng, self.clock_skew)
        # message and request ids differ for the same cloud started at another time (a
        # restarted cloud's messages are new ones, as Nova's would be)
        ids_stream = f"eventmodel-sim:{seed}:ids" if start_time_us is None else f"eventmodel-sim:{seed}:{start}:ids"
        self._emit = Emitter(
            truth, self._clock,
            ids=random.Random(ids_stream),
            delivery_rng=random.Random(f"eventmodel-sim:{seed}:faults"),
            faults=faults, counters=self.counters, admin=(self.people.admin_user, self.people.admin_project),
        )  # fmt: skip
        self._ops = Operations(
            truth, self._clock, self._emit, self.people,
            flavors=flavor_list, flavor_weights=fw, weights=mix,
            quirks=random.Random(f"eventmodel-sim:{seed}:quirks"), faults=faults, counters=self.counters,
        )  # fmt: skip
        self._listing = Listing(truth, random.Random(f"eventmodel-sim:{seed}:listing"), faults, self.counters)
        place_instances(truth, rng, self.people, instances, self._ops.pick_flavor, self._emit.pre_created)
        self._faults = faults
        #: the simulated Cinder (None without volumes: the cloud is Nova's alone)
        self.cinder: SimCinder | None = None
        #: the uuid of the volume :meth:`create_volume` created last
        self.last_volume: str | None = None
        if volumes:
            backends = storage_backends if storage_backends is not None else max(2, min(25, volumes // 400 + 1))
            self.cinder = SimCinder(truth, self._emit, self.people, self.counters, seed=seed, volumes=volumes,
                                    backends=backends, rate=volume_rate)
        #: the simulated Ironic (None without bare-metal nodes)
        self.ironic: SimIronic | None = None
        if baremetal:
            self.ironic = SimIronic(truth, self._emit, self.counters, seed=seed, nodes=baremetal,
                                    rate=baremetal_rate, churn=baremetal_churn)

    # ------------------------------------------------------------------
    # Configuration shared by the parts
    # ------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = self._emit.faults = self._ops.faults = self._listing.faults = faults

    @property
    def during_listing(self) -> Callable[[], None] | None:
        return self._listing.during_listing

    @during_listing.setter
    def during_listing(self, hook: Callable[[], None] | None) -> None:
        self._listing.during_listing = hook

    @property
    def flavors(self) -> tuple[Flavor, ...]:
        return self._ops.flavors

    @property
    def weights(self) -> dict[str, float]:
        return self._ops.weights

    @property
    def hosts(self) -> list[str]:
        return self.state.hosts

    @property
    def projects(self) -> list[tuple[str, str]]:
        return self.people.projects

    @property
    def users(self) -> dict[str, list[str]]:
        return self.people.users

    @property
    def admin_user(self) -> str:
        return self.people.admin_user

    @property
    def admin_project(self) -> str:
        return self.people.admin_project

    @property
    def clock_us(self) -> int:
        """Simulated time: where the last operation ended (µs)."""
        return self.state.clock_us

    @property
    def history(self) -> deque[OpRecord]:
        return self._ops.history

    # ------------------------------------------------------------------
    # Reading the truth
    # ------------------------------------------------------------------

    def truth(self) -> Truth:
        return self.state.snapshot()

    def instance(self, uuid: str) -> Instance:
        return self.state.instance(uuid)

    def aggregate(self, uuid: str) -> Aggregate:
        return self.state.aggregate(uuid)

    def aggregate_named(self, name: str) -> Aggregate:
        for a in self.state.aggregates.values():
            if a.name == name:
                return a
        raise OperationError(f"no aggregate named {name!r}")

    def extras(self, uuid: str) -> InstanceExtras:
        """What notifications say of an instance beyond its entity (image, launched_at, ip, ...)."""
        return self._emit.extras(uuid)

    @property
    def controllers(self) -> tuple[str, ...]:
        """The controller hosts whose nova-api publishes."""
        return CONTROLLERS

    @property
    def instance_count(self) -> int:
        return len(self.state.instances)

    def node_of(self, host: str) -> str:
        return self.state.node_of[self.state.host_idx[host]]

    def zone_of(self, host: str) -> str:
        """The host's availability zone (its zone aggregate's, else ``nova``)."""
        return self.state.zone(host)

    def usage(self, host: str) -> tuple[int, int, int]:
        """(vcpus, memory_mb, disk_gb) allocated on a host."""
        return self.state.usage(host)

    @property
    def last_op(self) -> OpRecord | None:
        h = self._ops.history
        return h[-1] if h else None

    def skew_of(self, host: str) -> int:
        """The offset of a compute host's clock from the controllers', in µs (whole seconds)."""
        return self.clock_skew[host]

    def cell_of(self, host: str | None, uuid: str) -> int:
        """The cell an instance lives in: its host's (host index modulo ``faults.cells``),
        else one derived from its uuid."""
        return self._listing.cell_of(host, uuid)

    # API-style reads, what Nova and Placement would answer right now

    def list_services(self) -> list[ComputeService]:
        return self._listing.list_services()

    def list_nodes(self) -> list[ComputeNode]:
        return self._listing.list_nodes()

    def list_servers(self, *, limit: int = 1000, marker: str | None = None) -> list[Instance | PartialInstance]:
        return self._listing.list_servers(limit=limit, marker=marker)

    def list_aggregates(self) -> list[Aggregate]:
        return self._listing.list_aggregates()

    def get_server(self, uuid: str) -> Instance | PartialInstance | None:
        """One server as Nova's show server answers now (None: 404); see
        :meth:`~eventmodel.sim.listing.Listing.get_server`."""
        return self._listing.get_server(uuid)

    @property
    def omitted_last_listing(self) -> set[str]:
        return self._listing.omitted_last_listing

    @property
    def minimal_last_listing(self) -> set[str]:
        return self._listing.minimal_last_listing

    @property
    def down_cell_last_listing(self) -> int | None:
        return self._listing.down_cell_last_listing

    @contextmanager
    def quiescent(self) -> Iterator[SimCloud]:
        """A block in which API reads see the cloud at rest and whole: no operations run
        during a listing (``during_listing`` is suspended) and no listing faults
        (omissions, down cells). For the sync a comparison with the truth follows."""
        hook, faults = self.during_listing, self.faults
        self.during_listing = None
        self.faults = faults.quiet_listing()
        try:
            yield self
        finally:
            self.during_listing = hook
            self.faults = faults

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def step(self, n: int = 1) -> list[bytes]:
        """Perform n random operations; return their notifications after faults. With
        volumes, each Nova operation is followed by ``volume_rate`` volume operations on
        average (and the detaching of the volumes of instances it deleted)."""
        cinder, ironic = self.cinder, self.ironic
        if cinder is None and ironic is None:
            self._ops.step(n)
        else:
            for _ in range(n):
                self._ops.step(1)
                if cinder is not None:
                    cinder.after_compute()
                if ironic is not None:
                    ironic.after_compute()
        return self._emit.deliver()

    def _deliver(self) -> list[bytes]:
        """After an explicit operation: the volumes of deleted instances detached, then
        what reaches the bus."""
        if self.cinder is not None:
            self.cinder.reap()
        return self._emit.deliver()

    # ------------------------------------------------------------------
    # Block storage (Cinder): reads and explicit operations
    # ------------------------------------------------------------------

    @property
    def storage(self) -> SimCinder:
        """The simulated Cinder; OperationError when the cloud has no volumes."""
        if self.cinder is None:
            raise OperationError("this simulated cloud has no block storage (volumes=0)")
        return self.cinder

    def storage_truth(self) -> StorageState:
        """A copy of the storage truth now (empty when the cloud has no block storage)."""
        if self.cinder is None:
            return StorageState({}, {}, {}, {}, self.state.clock_us)
        return self.cinder.snapshot(self.state.clock_us)

    def baremetal_truth(self) -> dict[str, BaremetalNode]:
        """A copy of the bare-metal nodes now (empty when the cloud has none)."""
        return {} if self.ironic is None else self.ironic.snapshot()

    def list_baremetal_nodes(self, *, limit: int = 1000, marker: str | None = None) -> list[BaremetalNode]:
        """One page of bare-metal nodes in Ironic's order after ``marker`` (OperationError
        when the marker is unknown); ``during_listing`` runs first."""
        self._hook()
        if self.ironic is None:
            raise OperationError("this simulated cloud has no bare-metal nodes (baremetal=0)")
        return self.ironic.page(limit, marker)

    def get_baremetal_node(self, uuid: str) -> BaremetalNode | None:
        """One bare-metal node by uuid (None: Ironic's 404); ``during_listing`` runs first."""
        self._hook()
        return None if self.ironic is None else self.ironic.nodes.get(uuid)

    def baremetal_op(self, name: str, *args: Any) -> list[bytes]:
        """An explicit operation of :class:`SimIronic` (``power``, ``deploy``, ``undeploy``,
        ``set_maintenance``, ``enroll``, ``delete``); its notifications after faults."""
        if name not in ("power", "deploy", "undeploy", "set_maintenance", "enroll", "delete"):
            raise OperationError(f"unknown bare-metal operation {name!r}")
        if self.ironic is None:
            raise OperationError("this simulated cloud has no bare-metal nodes (baremetal=0)")
        getattr(self.ironic, name)(*args)
        return self._deliver()

    def list_volumes(self, *, limit: int = 1000, marker: str | None = None) -> list[Volume]:
        """One page of volumes in Cinder's order (created_at desc, id desc) after
        ``marker``; ``during_listing`` runs first. A marker that is not a volume now
        (deleted between two pages) is an OperationError: Cinder looks it up among live
        volumes and answers 404."""
        self._hook()
        st = self.storage.state
        return page_after(st.volumes, st.ordered(), marker, limit, st.place, f"Volume {marker} could not be found.")

    def get_volume(self, uuid: str) -> Volume | None:
        """One volume by id (None: Cinder's 404); ``during_listing`` runs first."""
        self._hook()
        return self.storage.state.volumes.get(uuid)

    def _hook(self) -> None:
        hook = self._listing.during_listing
        if hook is not None:
            hook()

    def create_volume(self, type_name: str = "standard", size: int = 10, *, pool: str | None = None) -> list[bytes]:
        """A new volume of the type named ``type_name`` (its uuid in :attr:`last_volume`);
        its notifications after faults."""
        vt = next((t for t in self.storage.state.volume_types.values() if t.name == type_name), None)
        if vt is None:
            raise OperationError(f"no volume type named {type_name!r}")
        self.last_volume = self.storage.create(vt.id, size, pool=pool)
        return self._emit.deliver()

    def volume_op(self, name: str, *args: Any) -> list[bytes]:
        """An explicit volume operation of :class:`SimCinder` (``attach``, ``detach``,
        ``extend``, ``retype``, ``migrate``, ``rename``, ``set_metadata``, ``delete``);
        its notifications after faults."""
        if name not in ("attach", "detach", "extend", "retype", "migrate", "rename", "set_metadata", "delete"):
            raise OperationError(f"unknown volume operation {name!r}")
        getattr(self.storage, name)(*args)
        return self._emit.deliver()

    def flush(self) -> list[bytes]:
        """Release every held notification (delayed, reordered, to be redelivered), in the order they were held."""
        return self._emit.flush()

    def release(self, n: int | None = None) -> list[bytes]:
        """Release up to ``n`` held notifications (all when None, as :meth:`flush`), the
        longest held first, without running any operation: a test delivers a backlog
        while a sync reads (``sim.during_listing = lambda: feed(sim.release(3))``)."""
        return self._emit.release(n)

    @property
    def held(self) -> int:
        """How many notifications are held back right now."""
        return self._emit.held

    # explicit operations (tests, demo scripts); each returns the notifications

    def boot(
        self, *, flavor: str | Flavor | None = None, host: str | None = None, project_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[bytes]:  # fmt: skip
        """Boot a server (random flavor, host, project and metadata unless given)."""
        self._ops.boot(flavor=flavor, host=host, project_id=project_id, metadata=metadata)
        return self._deliver()

    def delete(self, uuid: str) -> list[bytes]:
        self._ops.delete(uuid)
        return self._deliver()

    def live_migrate(self, uuid: str, dest: str | None = None) -> list[bytes]:
        self._ops.live_migrate(uuid, dest)
        return self._deliver()

    def cold_migrate(self, uuid: str, dest: str | None = None, *, revert: bool = False) -> list[bytes]:
        self._ops.cold_migrate(uuid, dest, revert=revert)
        return self._deliver()

    def resize(
        self, uuid: str, flavor: str | Flavor | None = None, *, dest: str | None = None, revert: bool = False
    ) -> list[bytes]:
        self._ops.resize(uuid, flavor, dest=dest, revert=revert)
        return self._deliver()

    def power_off(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "power_off")

    def power_on(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "power_on")

    def pause(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "pause")

    def unpause(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "unpause")

    def suspend(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "suspend")

    def resume(self, uuid: str) -> list[bytes]:
        return self._transition(uuid, "resume")

    def shelve(self, uuid: str, *, offload: bool = True) -> list[bytes]:
        self._ops.shelve(uuid, offload=offload)
        return self._deliver()

    def shelve_offload(self, uuid: str) -> list[bytes]:
        self._ops.shelve_offload(uuid)
        return self._deliver()

    def unshelve(self, uuid: str, dest: str | None = None) -> list[bytes]:
        self._ops.unshelve(uuid, dest)
        return self._deliver()

    def lock(self, uuid: str, reason: str | None = None) -> list[bytes]:
        self._ops.lock(uuid, reason)
        return self._deliver()

    def unlock(self, uuid: str) -> list[bytes]:
        self._ops.unlock(uuid)
        return self._deliver()

    def set_metadata(self, uuid: str, metadata: Mapping[str, str], *, admin: bool = False) -> list[bytes]:
        """Set keys of a server's user metadata (the others stay): one ``instance.update``."""
        self._ops.update_instance_metadata(uuid, metadata, admin=admin)
        return self._deliver()

    def delete_metadata(self, uuid: str, *keys: str, admin: bool = False) -> list[bytes]:
        """Delete keys of a server's user metadata: one ``instance.update``."""
        self._ops.update_instance_metadata(uuid, None, tuple(keys), admin=admin)
        return self._deliver()

    def disable_service(self, host: str, reason: str | None = "maintenance") -> list[bytes]:
        self._ops.set_service(host, "service_disable", disabled=True, reason=reason)
        return self._deliver()

    def enable_service(self, host: str) -> list[bytes]:
        self._ops.set_service(host, "service_enable", disabled=False, reason=None)
        return self._deliver()

    def force_down(self, host: str) -> list[bytes]:
        self._ops.set_service(host, "service_force_down", forced_down=True)
        return self._deliver()

    def unforce_down(self, host: str) -> list[bytes]:
        self._ops.set_service(host, "service_force_up", forced_down=False)
        return self._deliver()

    # aggregates (each returns the notifications; the new aggregate is ``last_op.uuid``)

    def create_aggregate(
        self, name: str, *, availability_zone: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> list[bytes]:
        """Create an empty aggregate (a zone when ``availability_zone`` is given)."""
        self._ops.create_aggregate(name, availability_zone=availability_zone, metadata=metadata)
        return self._deliver()

    def delete_aggregate(self, uuid: str) -> list[bytes]:
        """Delete an empty aggregate."""
        self._ops.delete_aggregate(uuid)
        return self._deliver()

    def add_aggregate_host(self, uuid: str, host: str) -> list[bytes]:
        self._ops.add_aggregate_host(uuid, host)
        return self._deliver()

    def remove_aggregate_host(self, uuid: str, host: str) -> list[bytes]:
        self._ops.remove_aggregate_host(uuid, host)
        return self._deliver()

    def set_aggregate_metadata(self, uuid: str, metadata: Mapping[str, str | None]) -> list[bytes]:
        """Set (or, with None, delete) metadata keys; ``availability_zone`` sets the zone."""
        self._ops.update_aggregate_metadata(uuid, metadata)
        return self._deliver()

    def set_aggregate_zone(self, uuid: str, zone: str | None) -> list[bytes]:
        """Give the aggregate a zone (None: no zone), as Nova's aggregate update does:
        an ``aggregate.update_metadata``."""
        self._ops.update_aggregate_metadata(uuid, {"availability_zone": zone})
        return self._deliver()

    def rename_aggregate(self, uuid: str, name: str) -> list[bytes]:
        """Rename an aggregate: an ``aggregate.update_prop``."""
        self._ops.rename_aggregate(uuid, name)
        return self._deliver()

    def _transition(self, uuid: str, action: str) -> list[bytes]:
        self._ops.transition(uuid, action)
        return self._deliver()


#: the compared fields of a bare-metal node (its version aside)
BAREMETAL_FIELDS = compared_fields(BaremetalNode)


def storage_differences(sim: SimCloud, model: Any) -> list[str]:
    """The storage model's differences from the sim's storage truth — storage nodes,
    pools, volumes and volume types (``diff_storage``); none without Cinder. ``model``
    answers ``storage_nodes()``, ``pools()``, ``volumes()`` and ``volume_types()`` (a
    ``projections.model.ClusterModel``)."""
    if sim.cinder is None:
        return []
    return diff_storage(sim.storage_truth(), model.storage_nodes(), model.pools(), model.volumes(),
                        model.volume_types())


def baremetal_differences(sim: SimCloud, model: Any) -> list[str]:
    """The baremetal model's differences from the sim's Ironic nodes (every field but the
    version); none without Ironic. ``model`` answers ``baremetal_nodes()``."""
    if sim.ironic is None:
        return []
    return diff_table("baremetal node", BAREMETAL_FIELDS, sim.baremetal_truth(), model.baremetal_nodes())
