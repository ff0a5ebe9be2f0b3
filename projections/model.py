"""The read side: an immutable cluster model with a Watcher-style query API.

A :class:`ClusterModel` wraps one :class:`ClusterState`. It never changes under its
reader; taking one is O(1). What-if changes (:meth:`ClusterModel.migrate`) return a
new model that shares everything it did not change — no copy of the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import immutables

from eventmodel.errors import ModelError
from eventmodel.clock import format_time
from eventmodel.events import (
    AGGREGATE, BAREMETAL_NODE, INSTANCE, NODE, POOL, SERVICE, STORAGE_NODE, VOLUME, VOLUME_TYPE, Aggregate,
    BaremetalNode, ComputeNode, ComputeService, Instance, Volume, service_key,
)
from eventmodel.records import Position
from projections.state import EMPTY, ClusterState, SnapshotResult


@attrs.frozen(slots=True)
class Resources:
    vcpus: float = 0
    memory_mb: float = 0
    disk_gb: float = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.vcpus + other.vcpus, self.memory_mb + other.memory_mb, self.disk_gb + other.disk_gb)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.vcpus - other.vcpus, self.memory_mb - other.memory_mb, self.disk_gb - other.disk_gb)

    def fits(self, need: Resources) -> bool:
        return self.vcpus >= need.vcpus and self.memory_mb >= need.memory_mb and self.disk_gb >= need.disk_gb


def instance_resources(inst: Instance) -> Resources:
    f = inst.flavor
    return Resources(f.vcpus, f.memory_mb, f.root_gb + f.ephemeral_gb)


def node_capacity(node: ComputeNode) -> Resources:
    """Schedulable capacity: (total − reserved) × allocation ratio, as Placement computes it."""
    return Resources(
        (node.vcpus - node.vcpus_reserved) * node.cpu_allocation_ratio,
        (node.memory_mb - node.memory_mb_reserved) * node.ram_allocation_ratio,
        (node.disk_gb - node.disk_gb_reserved) * node.disk_allocation_ratio,
    )


@attrs.frozen(slots=True)
class NodeStatus:
    """What a scheduler or an audit asks of a node beyond its capacity.

    ``disabled``/``disabled_reason``/``up`` come from the node's compute service when the
    model has it (notifications keep it current), else from the hypervisor listing.
    ``zone`` is the zone of an aggregate holding the host, else the service's zone (the
    default zone, as os-services reports it).
    """

    disabled: bool
    disabled_reason: str | None
    up: bool
    zone: str | None
    aggregates: tuple[str, ...]  # names, sorted

    @property
    def status(self) -> str:
        """Nova's word for it: ``enabled`` or ``disabled``."""
        return "disabled" if self.disabled else "enabled"


class UnknownEntity(ModelError, KeyError):
    """The model has no entity with that key."""

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen(slots=True)
class ClusterModel:
    """One immutable view of the cluster, stamped with the log position it reflects."""

    state: ClusterState
    hypothetical: bool = False  # True for what-if models derived with migrate()
    #: why the log cannot bring this model up to date (records deleted before the
    #: reader's position, a recreated topic, partitions added), set by the follower
    log_problem: str | None = None
    #: the layout of a model read from elsewhere (a Watcher XML file, a ``ModelRoot``):
    #: (node uuids, instance uuids) as that source lists them, and the instances it marks
    #: ``watcher_exclude``; None for a folded model
    given_order: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    #: the same for storage (a Watcher storage XML file, a ``StorageModelRoot``): (storage
    #: node hosts, pool names, volume uuids) as the source lists them, then the pools it maps
    #: to no node and the volumes it maps to no pool whatever their names say; None for a
    #: folded model
    given_storage_order: tuple[tuple[str, ...], ...] | None = None
    #: the same for Ironic nodes (a Watcher baremetal XML file, a ``BaremetalModelRoot``)
    given_baremetal_order: tuple[str, ...] | None = None

    # -- stamps --------------------------------------------------------------
    @property
    def position(self) -> Position:
        return self.state.position

    @property
    def recorded_at(self) -> int:
        """recorded_at (µs) of the last record folded into this model."""
        return self.state.recorded_at

    @property
    def last_snapshot(self) -> SnapshotResult | None:
        return self.state.last_snapshot

    @property
    def stale(self) -> str | None:
        """Why this model may be out of date — the log cannot be followed, or the last
        full sync failed — else None."""
        return self.log_problem or self.state.sync_error

    def describe(self) -> str:
        t = format_time(self.recorded_at) if self.recorded_at else "-"
        return f"position {self.position} (recorded {t})"

    # -- entities ------------------------------------------------------------
    def instances(self) -> immutables.Map:
        """uuid → Instance."""
        return self.state.table(INSTANCE)

    def compute_nodes(self) -> immutables.Map:
        """hypervisor hostname → ComputeNode."""
        return self.state.table(NODE)

    def services(self) -> immutables.Map:
        """``host/binary`` → ComputeService."""
        return self.state.table(SERVICE)

    def aggregates(self) -> immutables.Map:
        """uuid → Aggregate (host aggregates, with their zones and metadata)."""
        return self.state.table(AGGREGATE)

    def storage_nodes(self) -> immutables.Map:
        """``host@backend`` → StorageNode (Cinder's cinder-volume services)."""
        return self.state.table(STORAGE_NODE)

    def pools(self) -> immutables.Map:
        """``host@backend#pool`` → StoragePool."""
        return self.state.table(POOL)

    def volumes(self) -> immutables.Map:
        """uuid → Volume."""
        return self.state.table(VOLUME)

    def volume_types(self) -> immutables.Map:
        """type id → VolumeType."""
        return self.state.table(VOLUME_TYPE)

    def baremetal_nodes(self) -> immutables.Map:
        """uuid → BaremetalNode (Ironic)."""
        return self.state.table(BAREMETAL_NODE)

    def volume(self, uuid: str) -> Volume:
        try:
            return self.state.table(VOLUME)[uuid]
        except KeyError:
            raise UnknownEntity(f"no volume {uuid} at {self.describe()}") from None

    def baremetal_node(self, uuid: str) -> BaremetalNode:
        try:
            return self.state.table(BAREMETAL_NODE)[uuid]
        except KeyError:
            raise UnknownEntity(f"no baremetal node {uuid} at {self.describe()}") from None

    def table(self, kind: str) -> immutables.Map:
        return self.state.table(kind)

    def instance(self, uuid: str) -> Instance:
        try:
            return self.state.table(INSTANCE)[uuid]
        except KeyError:
            raise UnknownEntity(f"no instance {uuid} at {self.describe()}") from None

    def compute_node(self, name: str) -> ComputeNode:
        try:
            return self.state.table(NODE)[name]
        except KeyError:
            raise UnknownEntity(f"no compute node {name} at {self.describe()}") from None

    def service(self, host: str, binary: str = "nova-compute") -> ComputeService | None:
        return self.state.table(SERVICE).get(service_key(host, binary))

    def node_instances(self, node: str) -> Iterator[Instance]:
        """The instances whose hypervisor is ``node``."""
        table = self.state.table(INSTANCE)
        for uuid in self.state.by_node.get(node, EMPTY):
            yield table[uuid]

    def node_instance_count(self, node: str) -> int:
        return len(self.state.by_node.get(node, EMPTY))

    def instance_node(self, uuid: str) -> ComputeNode | None:
        """The compute node an instance lives on (None while unplaced or offloaded)."""
        inst = self.instance(uuid)
        return self.state.table(NODE).get(inst.node) if inst.node else None

    def node_service(self, node: str) -> ComputeService | None:
        n = self.compute_node(node)
        return self.service(n.host) if n.host else None

    def aggregates_by_host(self) -> dict[str, list[Aggregate]]:
        """host → the aggregates holding it, sorted by name (one pass; for bulk reads)."""
        out: dict[str, list[Aggregate]] = {}
        for agg in sorted(self.aggregates().values(), key=lambda a: (a.name, a.uuid)):
            for host in agg.hosts:
                out.setdefault(host, []).append(agg)
        return out

    def host_aggregates(self, host: str) -> list[Aggregate]:
        """The aggregates holding ``host``, sorted by name."""
        return sorted((a for a in self.aggregates().values() if host in a.hosts), key=lambda a: (a.name, a.uuid))

    def node_status(self, node: str, by_host: dict[str, list[Aggregate]] | None = None) -> NodeStatus:
        """The node's status, reason, liveness, zone and aggregates (see :class:`NodeStatus`);
        pass :meth:`aggregates_by_host` when asking for many nodes."""
        n = self.compute_node(node)
        svc = self.service(n.host) if n.host else None
        aggs = (by_host.get(n.host, []) if by_host is not None else self.host_aggregates(n.host)) if n.host else []
        # Nova derives a host's zone from its zone aggregate, else its default zone; the
        # aggregates follow notifications, a service's zone only full syncs (Nova's
        # service.update often carries null), so the aggregate comes first.
        zone = next((a.availability_zone for a in aggs if a.availability_zone), None)
        if zone is None and svc is not None:
            zone = svc.availability_zone
        if svc is not None:
            disabled, reason, up = svc.disabled, svc.disabled_reason, svc.up and not svc.forced_down
        else:
            disabled, reason, up = n.disabled, n.disabled_reason, True
        return NodeStatus(disabled, reason, up and n.state == "up", zone, tuple(a.name for a in aggs))

    # -- resources -----------------------------------------------------------
    def node_used(self, node: str) -> Resources:
        """What the node's instances use (summed in plain numbers: no object per instance)."""
        vcpus = memory = disk = 0
        for inst in self.node_instances(node):
            f = inst.flavor
            vcpus += f.vcpus
            memory += f.memory_mb
            disk += f.root_gb + f.ephemeral_gb
        return Resources(vcpus, memory, disk)

    def used_by_node(self) -> dict[str, Resources]:
        """node → what its instances use, for every node with instances, in one pass over
        the instances table (for bulk reads; cheaper than :meth:`node_used` per node)."""
        acc: dict[str, list[int]] = {}
        for inst in self.instances().values():
            if inst.node is None:
                continue
            f = inst.flavor
            a = acc.get(inst.node)
            if a is None:
                a = acc[inst.node] = [0, 0, 0]
            a[0] += f.vcpus
            a[1] += f.memory_mb
            a[2] += f.root_gb + f.ephemeral_gb
        return {node: Resources(*a) for node, a in acc.items()}

    def node_capacity(self, node: str) -> Resources:
        return node_capacity(self.compute_node(node))

    def node_free(self, node: str) -> Resources:
        return self.node_capacity(node) - self.node_used(node)

    # -- what-if -------------------------------------------------------------
    def migrate(self, uuid: str, node: str, host: str | None = None) -> ClusterModel:
        """A hypothetical model where ``uuid`` lives on ``node``; this model is unchanged."""
        inst = self.instance(uuid)
        target = self.compute_node(node)
        moved = attrs.evolve(inst, node=node, host=host or target.host or node)
        s = self.state
        by_node = s.by_node.mutate()
        if inst.node is not None:
            rest = by_node.get(inst.node, EMPTY).delete(uuid)
            if len(rest):
                by_node[inst.node] = rest
            else:
                del by_node[inst.node]
        by_node[node] = by_node.get(node, EMPTY).set(uuid, None)
        tables = s.tables.set(INSTANCE, s.table(INSTANCE).set(uuid, moved))
        return ClusterModel(attrs.evolve(s, tables=tables, by_node=by_node.finish()), hypothetical=True)

    # -- whole-model helpers ---------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {kind: len(t) for kind, t in self.state.tables.items()}
