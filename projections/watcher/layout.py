"""What a Watcher view of one snapshot lists, and in what order: derived from the
snapshot alone, built when first asked, shared by every view of that snapshot (ADR 0013).

A :class:`Layout` is a pure function of an immutable :class:`~projections.model.ClusterModel`,
an order and whether unplaced instances are in: the nodes in order, each node's instances
in order, what they use, the instances on no node. Views over it keep their own changes
beside it (:mod:`projections.watcher.view`); the Watcher collector hands one layout to
every audit at the same model version, so the sorting and summing over 50,000 instances
is done once per version, not once per audit. Building parts of it from two threads at
once is harmless: both build the same value and one of them is kept.

No Watcher import here.
"""

from __future__ import annotations

import math
from typing import Literal

from eventmodel.events import ComputeNode as ModelNode
from eventmodel.events import Instance as ModelInstance
from projections.model import ClusterModel

Order = Literal["collector", "uuid", "given"]
ORDERS: tuple[str, ...] = ("collector", "uuid", "given")


def node_key(node: ModelNode) -> str:
    """The node's uuid in Watcher's model: its resource provider uuid, else its name."""
    return node.uuid or node.name


def included(inst: ModelInstance) -> bool:
    """Watcher's collector skips deleted instances."""
    return inst.vm_state != "deleted"


def listing_key(inst: ModelInstance) -> tuple[int, str]:
    """Nova's server listing order, ascending (newest ``created_at`` last, unknown first)."""
    return (inst.created_at if inst.created_at is not None else -1, inst.uuid)


def instance_disk_gb(inst: ModelInstance) -> int:
    """Watcher's ``disk``: root + ephemeral + swap in GB rounded up."""
    f = inst.flavor
    return f.root_gb + f.ephemeral_gb + (math.ceil(f.swap_mb / 1024) if f.swap_mb else 0)


class Layout:
    """The nodes and instances of views of ``model`` in ``order`` (see module doc)."""

    def __init__(self, model: ClusterModel, order: Order, unplaced: bool) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
        self.model = model
        self.order: Order = order
        self.unplaced = unplaced
        self.instances = model.instances()  # uuid -> Instance (the snapshot's table)
        self.nodes: list[str] | None = None  # node uuids in order, set by build_nodes()
        self.name_of: dict[str, str] = {}  # node uuid -> model node name
        self.uuid_of: dict[str, str] = {}  # model node name -> node uuid
        self.members: dict[str, tuple[str, ...]] = {}  # node uuid -> its instance uuids, in order
        self.used: dict[str, tuple[int, int, int]] = {}  # node uuid -> (vcpus, memory MB, disk GB) of members
        self._given: list[dict[str, int] | None] = [None, None, None]
        self._given_instances: list[str] | None = None
        self._unplaced: list[str] | None = None

    def fits(self, model: ClusterModel) -> bool:
        """Whether this is also ``model``'s layout: the same snapshot, or one with the same
        entity tables (a later position that folded only records that change no entity,
        such as audits' own records)."""
        return model is self.model or (model.state.tables is self.model.state.tables
                                       and model.given_order == self.model.given_order)

    def build_nodes(self) -> list[str]:
        """The node uuids in order (Ironic nodes left out; of two with one uuid, the first)."""
        got = self.nodes
        if got is None:
            nodes = [n for n in self.model.compute_nodes().values() if n.hypervisor_type != "ironic"]
            if self.order == "uuid":
                nodes.sort(key=node_key)
            elif self.order == "given":
                at = self.given_index(0)
                nodes.sort(key=lambda n: (at.get(node_key(n), len(at)), n.name))
            else:
                nodes.sort(key=lambda n: n.name)
            got, name_of, uuid_of = [], {}, {}
            for n in nodes:
                u = node_key(n)
                if u in name_of:
                    continue
                name_of[u] = n.name
                uuid_of[n.name] = u
                got.append(u)
            self.name_of.update(name_of)
            self.uuid_of.update(uuid_of)
            self.nodes = got
        return got

    def given_index(self, which: int) -> dict[str, int]:
        """Position of each node (0), instance (1) or excluded instance (2) uuid in the
        model's given layout (empty for a folded model)."""
        got = self._given[which]
        if got is None:
            order = self.model.given_order[which] if self.model.given_order is not None else ()
            got = self._given[which] = {u: k for k, u in enumerate(order)}
        return got

    def base_node_of(self, inst: ModelInstance) -> str | None:
        """The node uuid ``inst`` is on in the snapshot, if that node is listed."""
        self.build_nodes()
        return self.uuid_of.get(inst.node) if inst.node is not None else None

    def instance(self, uuid: str) -> ModelInstance | None:
        """The snapshot's instance if views list it."""
        inst = self.instances.get(uuid)
        if inst is None or not included(inst):
            return None
        if self.unplaced or self.base_node_of(inst) is not None:
            return inst
        return None

    def node_members(self, node_uuid: str) -> tuple[str, ...]:
        """The node's instances in order."""
        got = self.members.get(node_uuid)
        if got is None:
            self.build_nodes()
            name = self.name_of.get(node_uuid)
            insts = [i for i in self.model.node_instances(name) if included(i)] if name is not None else []
            if self.order == "uuid":
                insts.sort(key=lambda i: i.uuid)
            elif self.order == "given":
                at = self.given_index(1)
                insts.sort(key=lambda i: (at.get(i.uuid, len(at)), i.uuid))
            else:
                insts.sort(key=listing_key, reverse=True)
            vcpus = memory = disk = 0
            for i in insts:  # what they use, in the same pass (the instances are at hand)
                vcpus += i.flavor.vcpus
                memory += i.flavor.memory_mb
                disk += instance_disk_gb(i)
            self.used.setdefault(node_uuid, (vcpus, memory, disk))
            got = self.members[node_uuid] = tuple(i.uuid for i in insts)
        return got

    def node_used(self, node_uuid: str) -> tuple[int, int, int]:
        """What the node's instances (:meth:`node_members`) use: vcpus, memory MB, disk GB."""
        got = self.used.get(node_uuid)
        if got is None:
            self.node_members(node_uuid)  # sums them too
            got = self.used[node_uuid]
        return got

    def given_instances(self) -> list[str]:
        """Every listed instance in the given order (others after it, by uuid)."""
        got = self._given_instances
        if got is None:
            at = self.given_index(1)
            got = [u for u in self.instances if self.instance(u) is not None]
            got.sort(key=lambda u: (at.get(u, len(at)), u))
            self._given_instances = got
        return got

    def unplaced_instances(self) -> list[str]:
        """Listed instances on no listed node, by uuid (none unless ``unplaced``)."""
        got = self._unplaced
        if got is None:
            self.build_nodes()
            uuid_of = self.uuid_of
            got = sorted(i.uuid for i in self.instances.values()
                         if included(i) and (i.node is None or i.node not in uuid_of)) if self.unplaced else []
            self._unplaced = got
        return got
