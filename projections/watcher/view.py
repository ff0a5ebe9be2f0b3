"""A ModelRoot-compatible view of one model snapshot, for Watcher's strategies (ADR 0013).

:class:`WatcherView` answers the calls Watcher's strategies, planners and audit-scope
handlers make on their compute model (``get_all_compute_nodes``, ``get_node_by_uuid``,
``get_node_instances``, ``get_node_used_resources``, ``migrate_instance``, ``remove_node``,
``to_string``, ``stale``, ...) with Watcher's own element classes, built only when asked
for and filled in only when first read (``elements.Instance.lazy``). Creating a view is
O(1): it keeps a reference to an immutable :class:`~projections.model.ClusterModel` and
its :class:`~projections.watcher.layout.Layout` (the order and what is derived from the
snapshot alone, shareable between views of it). Changes (what-if migrations, the audit
scope removing nodes, excluding instances) go to this view's copy-on-write layer and cost
O(changes) — the scope's removal of the nodes it leaves out O(nodes removed)
(:meth:`WatcherView.remove_nodes_named`); the snapshot and every other view over it never
see them.

What is in the view, and in what order — Watcher's collector (``collector/nova.py``)
decides both, and the order changes strategies' decisions:

- nodes: every compute node except Ironic ones (``hypervisor_type == 'ironic'``).
  Watcher adds nodes as concurrent API calls return, started from a Python set, so its
  order is not defined; the view's is fixed: by hypervisor hostname (``order="collector"``)
  or by uuid (``order="uuid"``, the order ``ModelRoot.from_xml`` gives a file its
  ``to_xml`` wrote);
- a node's instances: those whose hypervisor is the node, except ``vm_state ==
  'deleted'``, in the order Nova lists servers (what the collector maps them in):
  newest ``created_at`` first, ties (and unknown times, listed last) by uuid,
  descending — Nova breaks ties by its database id, which the model does not have
  (``order="uuid"``: by uuid);
- instances on no node of the view are not in it (the collector never sees them),
  unless ``unplaced=True`` (then they are unmapped, as in a ``ModelRoot`` read from XML);
- ``get_all_instances()`` lists instances node by node in that order, then unplaced ones
  by uuid; later ``add_instance``/``add_node`` calls append, as networkx does.

Field mapping (as ``collector/nova.py`` sets them): node ``uuid`` = resource provider /
hypervisor id (else its name), ``hostname`` = compute service host, ``status``/
``disabled_reason``/``state`` from :meth:`ClusterModel.node_status` (the compute service
joined over the hypervisor listing), capacity, reserved and ratios from Placement;
instance ``state`` = ``vm_state``, ``memory``/``vcpus`` from the flavor, ``disk`` = root +
ephemeral + swap rounded up to GB (the model cannot tell a boot-from-volume server,
whose root disk Watcher leaves out), ``created`` from ``created_at``,
``flavor_extra_specs`` only with Watcher's ``[compute_model]
enable_extended_attributes``, ``pinned_az`` always ``""`` (not in the model).
"""

from __future__ import annotations

import copy
import datetime
import importlib
import logging
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from eventmodel.errors import WatcherError
from eventmodel.events import ComputeNode as ModelNode
from eventmodel.events import Instance as ModelInstance
from projections.model import ClusterModel
from projections.watcher.layout import (  # noqa: F401  (node_key, included, Order, ORDERS: this module's API too)
    ORDERS,
    Layout,
    Order,
    included,
    instance_disk_gb,
    node_key,
)
INSTALL_HINT = "pip install 'eventmodel[watcher]'"


class WatcherMissing(WatcherError, ImportError):
    """python-watcher is not installed."""


def _debug_enabled(logger: Any) -> bool:
    """Whether ``logger`` (an oslo.log adapter or a logging.Logger) would emit DEBUG;
    True when it cannot tell (then the text is built, as before)."""
    check = getattr(logger, "isEnabledFor", None)
    try:
        return bool(check(logging.DEBUG)) if check is not None else True
    except Exception:  # noqa: BLE001 - an odd logger: build the text
        return True


def load_elements() -> Any:
    """The :mod:`projections.watcher.elements` module (imports Watcher), or a clear error."""
    try:
        with warnings.catch_warnings():  # eventlet, cgi, oslo deprecations on import: not ours to act on
            warnings.simplefilter("ignore")
            elements = importlib.import_module("projections.watcher.elements")
    except ImportError as exc:  # watcher or one of its dependencies
        raise WatcherMissing(f"the Watcher integration needs python-watcher 17 ({exc}): {INSTALL_HINT}") from exc
    return elements


# ---------------------------------------------------------------------------
# Field mapping (pure: no Watcher import)
# ---------------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def created_time(us: int) -> datetime.datetime:
    """``created_at`` (µs) as the aware datetime Watcher's DateTimeField holds."""
    return _EPOCH + datetime.timedelta(microseconds=us)


def node_values(model: ClusterModel, node: ModelNode) -> dict[str, Any]:
    """Watcher ``ComputeNode`` field values for ``node`` (typed as Watcher's fields hold them)."""
    st = model.node_status(node.name, {})
    return {
        "uuid": node_key(node),
        "hostname": node.host or node.name,
        "status": st.status,
        "disabled_reason": st.disabled_reason,
        "state": "up" if st.up else "down",
        "memory": int(node.memory_mb),
        "memory_mb_reserved": int(node.memory_mb_reserved),
        "disk": int(node.disk_gb),
        "disk_gb_reserved": int(node.disk_gb_reserved),
        "vcpus": int(node.vcpus),
        "vcpu_reserved": int(node.vcpus_reserved),
        "memory_ratio": float(node.ram_allocation_ratio),
        "vcpu_ratio": float(node.cpu_allocation_ratio),
        "disk_ratio": float(node.disk_allocation_ratio),
    }


def instance_values(inst: ModelInstance, extended: bool) -> dict[str, Any]:
    """Watcher ``Instance`` field values for ``inst``; fields the model does not know are unset."""
    f = inst.flavor
    v: dict[str, Any] = {
        "watcher_exclude": False,
        "uuid": inst.uuid,
        "name": inst.name,
        "state": inst.vm_state,
        "memory": int(f.memory_mb),
        "disk": instance_disk_gb(inst),
        "vcpus": int(f.vcpus),
        "metadata": dict(inst.metadata),
        "locked": bool(inst.locked),
        "pinned_az": "",
        "flavor_extra_specs": dict(f.extra_specs) if extended else {},
    }
    if inst.project_id:
        v["project_id"] = inst.project_id
    if inst.host is not None:
        v["host"] = inst.host
    if inst.node is not None:
        v["hypervisor_hostname"] = inst.node
    if inst.created_at is not None:
        v["created"] = created_time(inst.created_at)
    return v


def _element_values(inst: ModelInstance, extended: bool, excluded: bool) -> dict[str, Any]:
    """A lazy element's values: :func:`instance_values`, ``watcher_exclude`` as the source said."""
    v = instance_values(inst, extended)
    if excluded:
        v["watcher_exclude"] = True
    return v


# ---------------------------------------------------------------------------
# The view
# ---------------------------------------------------------------------------

class WatcherView:
    """A ``ModelRoot``-compatible compute model over one immutable snapshot (see module doc).

    ``extended`` mirrors Watcher's ``[compute_model] enable_extended_attributes`` (None: read
    Watcher's configuration when first needed, as ``ModelRoot`` does). ``layout``: the
    :class:`~projections.watcher.layout.Layout` of ``model`` to share with other views of
    it (the Watcher collector passes one per model version); its order and ``unplaced``
    are the view's.
    """

    def __init__(self, model: ClusterModel, *, order: Order | None = None, unplaced: bool | None = None,
                 extended: bool | None = None, layout: Layout | None = None) -> None:
        given = model.given_order is not None
        if layout is not None:
            if not layout.fits(model) or (order or layout.order) != layout.order or (
                    unplaced is not None and unplaced != layout.unplaced):
                raise ValueError("the layout is of another model, order or unplaced choice")
            order, unplaced = layout.order, layout.unplaced
        if order is None:  # a model read from a file or a ModelRoot keeps its order
            order = "given" if given else "collector"
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
        self._el = load_elements()
        self.model = model
        self.order: Order = order
        #: instances on no node are in the view (as in a ModelRoot read from XML): by
        #: default only for a model that was read from one
        self.unplaced = given if unplaced is None else unplaced
        #: the snapshot's part: nodes, their instances, in order (shared; never changed here)
        self.layout = layout if layout is not None else Layout(model, order, self.unplaced)
        #: as ModelRoot.stale: True when the snapshot may be out of date (see stale_reason)
        self.stale: bool = bool(model.stale)
        self.stale_reason: str | None = model.stale
        self._extended = extended
        # the layout's, once built (read often)
        self._base: list[str] | None = None  # node uuids, in order
        self._name_of: dict[str, str] = self.layout.name_of  # node uuid -> model node name
        self._uuid_of: dict[str, str] = self.layout.uuid_of  # model node name -> node uuid
        self._base_members: dict[str, tuple[str, ...]] = self.layout.members
        self._loaders: tuple[Any, Any] | None = None  # how lazy elements get their values
        self._read = [0]  # instance elements of this view filled in so far
        self._nodes: dict[str, Any] = {}  # built node elements (also added ones)
        self._insts: dict[str, Any] = {}  # built instance elements (also added ones)
        self._by_hostname: dict[str, str] | None = None
        self._shared_hostnames: set[str] = set()  # hostnames of more than one node
        # copy-on-write layer
        self._nodes_gone: set[str] = set()  # base nodes removed (from their base position)
        #: base nodes removed with their instances by remove_nodes_named: their base
        #: instances are gone too, without being listed (see there)
        self._dropped: set[str] = set()
        self._nodes_tail: dict[str, None] = {}  # nodes added after the base, in order
        self._insts_gone: set[str] = set()
        self._insts_tail: dict[str, None] = {}
        self._homes: dict[str, list[str]] = {}  # instance uuid -> node uuids (overrides)
        self._members: dict[str, list[str]] = {}  # node uuid -> instance uuids (overrides)
        self._node_resource_cache: dict[str, dict[str, Any]] = {}
        self.changes = 0  # mutating calls applied to this view

    # -- what ModelRoot has besides the graph ----------------------------------
    def __bool__(self) -> bool:
        return not self.stale

    @property
    def extended_attributes_enabled(self) -> bool:
        if self._extended is None:
            import watcher.conf  # noqa: F401  (registers the options)
            from oslo_config import cfg

            self._extended = bool(cfg.CONF.compute_model.enable_extended_attributes)
        return self._extended

    @extended_attributes_enabled.setter
    def extended_attributes_enabled(self, value: bool) -> None:
        self._extended = value

    def invalidate_node_resource_cache(self, node: Any) -> None:
        self._node_resource_cache.pop(node.uuid, None)

    def invalidate_resource_cache(self) -> None:
        self._node_resource_cache.clear()

    @staticmethod
    def assert_node(obj: Any) -> None:
        from projections.watcher import elements

        if not elements.is_node(obj):
            raise elements.exceptions.IllegalArgumentException(
                message=f"'obj' argument type is not valid: {type(obj)}")

    @staticmethod
    def assert_instance(obj: Any) -> None:
        from projections.watcher import elements

        if not elements.is_instance(obj):
            raise elements.exceptions.IllegalArgumentException(message="'obj' argument type is not valid")

    # -- the snapshot's part (the layout) ------------------------------------------
    def _base_nodes(self) -> list[str]:
        if self._base is None:
            self._base = self.layout.build_nodes()
        return self._base

    def _given_index(self, which: int) -> dict[str, int]:
        return self.layout.given_index(which)

    def _base_node_of(self, inst: ModelInstance) -> str | None:
        return self.layout.base_node_of(inst)

    def _members_in_base(self, node_uuid: str) -> tuple[str, ...]:
        got = self._base_members.get(node_uuid)
        return got if got is not None else self.layout.node_members(node_uuid)

    def _snapshot_instance(self, uuid: str) -> ModelInstance | None:
        """The snapshot's instance if it is in this view's base."""
        return self.layout.instance(uuid)

    # -- membership and edges (snapshot + copy-on-write) ---------------------------
    def _has_node(self, uuid: str) -> bool:
        if uuid in self._nodes_tail:
            return True
        self._base_nodes()
        return uuid in self._name_of and uuid not in self._nodes_gone

    def _has_instance(self, uuid: str) -> bool:
        if uuid in self._insts_tail:
            return True
        if uuid in self._insts_gone:
            return False
        inst = self._snapshot_instance(uuid)
        return inst is not None and not self._was_dropped(inst)

    def _was_dropped(self, inst: ModelInstance) -> bool:
        """Whether ``inst`` left with its node in :meth:`remove_nodes_named` (its base node
        is dropped and nothing moved it since)."""
        return bool(self._dropped) and inst.uuid not in self._homes and self._base_node_of(inst) in self._dropped

    def _homes_of(self, uuid: str) -> list[str]:
        got = self._homes.get(uuid)
        if got is not None:
            return got
        inst = self.model.instances().get(uuid)
        home = self._base_node_of(inst) if inst is not None and uuid not in self._insts_tail else None
        return [home] if home is not None and home not in self._dropped else []

    def _members_of(self, node_uuid: str) -> list[str] | tuple[str, ...]:
        got = self._members.get(node_uuid)
        if got is not None:
            return got
        if node_uuid in self._name_of:
            return self._members_in_base(node_uuid)
        return ()

    def _own_members(self, node_uuid: str) -> list[str]:
        got = self._members.get(node_uuid)
        if got is None:
            got = self._members[node_uuid] = list(self._members_of(node_uuid))
        return got

    def _own_homes(self, uuid: str) -> list[str]:
        got = self._homes.get(uuid)
        if got is None:
            got = self._homes[uuid] = list(self._homes_of(uuid))
        return got

    def _add_edge(self, inst_uuid: str, node_uuid: str) -> bool:
        homes = self._own_homes(inst_uuid)
        if node_uuid in homes:
            return False
        homes.append(node_uuid)
        self._own_members(node_uuid).append(inst_uuid)
        return True

    def _remove_edge(self, inst_uuid: str, node_uuid: str) -> None:
        homes = self._homes_of(inst_uuid)
        if node_uuid not in homes:
            raise self._el.NetworkXError(f"The edge {inst_uuid}-{node_uuid} is not in the graph.")
        self._own_homes(inst_uuid).remove(node_uuid)
        self._own_members(node_uuid).remove(inst_uuid)

    # -- elements -----------------------------------------------------------------
    def _element_loaders(self) -> tuple[Any, Any]:
        """(node values by uuid, instance values by uuid): what lazy elements call when
        first read; one pair per view, so an element costs no more than its own object."""
        if self._loaders is None:
            layout, extended = self.layout, self.extended_attributes_enabled
            nodes = self.model.compute_nodes()
            excluded = layout.given_index(2) if self.model.given_order is not None else {}

            def node(uuid: str) -> dict[str, Any]:
                return node_values(layout.model, nodes[layout.name_of[uuid]])

            read = self._read

            def instance(uuid: str) -> dict[str, Any]:
                read[0] += 1
                return _element_values(layout.instances[uuid], extended, uuid in excluded)

            self._loaders = (node, instance)
        return self._loaders

    def _node_element(self, uuid: str) -> Any:
        el = self._nodes.get(uuid)
        if el is None:  # uuid and hostname now, the rest when first read (elements.ComputeNode.lazy)
            node = self.model.compute_nodes()[self._name_of[uuid]]
            el = self._nodes[uuid] = self._el.ComputeNode.lazy(uuid, node.host or node.name,
                                                               self._element_loaders()[0])
        return el

    def _instance_element(self, uuid: str) -> Any:
        el = self._insts.get(uuid)
        if el is None:  # values filled in when first read (see elements.Instance.lazy)
            el = self._insts[uuid] = self._el.Instance.lazy(uuid, self._element_loaders()[1])
        return el

    def _get_by_uuid(self, uuid: str) -> Any:
        if self._has_node(uuid):
            return self._node_element(uuid)
        if self._has_instance(uuid):
            return self._instance_element(uuid)
        raise self._el.exceptions.ComputeResourceNotFound(name=uuid)

    def _node_order(self) -> Iterator[str]:
        gone = self._nodes_gone
        for u in self._base_nodes():
            if u not in gone:
                yield u
        yield from self._nodes_tail

    def _instance_order(self) -> Iterator[str]:
        gone = self._insts_gone
        tail = self._insts_tail
        if self.order == "given":
            # as the source lists them: placed and unplaced mixed (ModelRoot.from_xml: file order)
            if self._dropped:
                insts = self.model.instances()
                yield from (u for u in self.layout.given_instances()
                            if u not in gone and u not in tail and not self._was_dropped(insts[u]))
            else:
                yield from (u for u in self.layout.given_instances() if u not in gone and u not in tail)
            yield from tail
            return
        dropped = self._dropped
        for n in self._base_nodes():
            if n in dropped:  # its base instances left with it (none was moved before: see remove_nodes_named)
                continue
            for u in self._members_in_base(n):
                if u not in gone and u not in tail:
                    yield u
        for u in self.layout.unplaced_instances():
            if u not in gone and u not in tail:
                yield u
        yield from tail

    # -- reads (ModelRoot's API) ------------------------------------------------------
    def get_all_compute_nodes(self) -> dict[str, Any]:
        return {u: self._node_element(u) for u in self._node_order()}

    def get_node_by_uuid(self, uuid: str) -> Any:
        try:
            return self._get_by_uuid(uuid)
        except self._el.exceptions.ComputeResourceNotFound:
            raise self._el.exceptions.ComputeNodeNotFound(name=uuid) from None

    def get_node_by_name(self, name: str) -> Any:
        """The first node (in the view's order) whose ``hostname`` is ``name``."""
        return self._node_element(self._node_named(name))

    def _node_named(self, name: str) -> str:
        """The uuid of :meth:`get_node_by_name`'s node."""
        if self._by_hostname is None:
            index: dict[str, str] = {}
            shared: set[str] = set()
            nodes = self.model.compute_nodes()
            for u in self._node_order():
                el = self._nodes.get(u)
                host = el.hostname if el is not None else (nodes[self._name_of[u]].host or self._name_of[u])
                if index.setdefault(host, u) != u:
                    shared.add(host)
            self._by_hostname, self._shared_hostnames = index, shared
        u = self._by_hostname.get(name)
        if u is None:
            raise self._el.exceptions.ComputeNodeNotFound(name=name)
        return u

    def get_instance_by_uuid(self, uuid: str) -> Any:
        try:
            return self._get_by_uuid(uuid)
        except self._el.exceptions.ComputeResourceNotFound:
            raise self._el.exceptions.InstanceNotFound(name=uuid) from None

    def get_node_by_instance_uuid(self, instance_uuid: str) -> Any:
        self._get_by_uuid(instance_uuid)
        if self._has_instance(instance_uuid):
            for n in self._homes_of(instance_uuid):
                return self._node_element(n)
        raise self._el.exceptions.InstanceNotMapped(uuid=instance_uuid)

    def _instance_elements(self, uuids: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """(uuid, element) for each of ``uuids``: :meth:`_instance_element` inlined, for
        listings of thousands."""
        insts = self._insts
        lazy = self._el.Instance.lazy
        load = self._element_loaders()[1]
        for u in uuids:
            el = insts.get(u)
            if el is None:
                el = insts[u] = lazy(u, load)
            yield u, el

    def get_all_instances(self) -> dict[str, Any]:
        return dict(self._instance_elements(self._instance_order()))

    def get_node_instances(self, node: Any) -> list[Any]:
        self.assert_node(node)
        if not self._has_node(node.uuid):
            raise self._el.NetworkXError(f"The node {node.uuid} is not in the digraph.")
        return [el for _, el in self._instance_elements(self._members_of(node.uuid))]

    def _instance_size(self, uuid: str) -> tuple[Any, Any, Any]:
        el = self._insts.get(uuid)
        if el is not None and self._el.loaded(el):  # what the element says (a strategy may have changed it)
            return el.vcpus, el.memory, el.disk
        inst = self.model.instances()[uuid]
        return inst.flavor.vcpus, inst.flavor.memory_mb, instance_disk_gb(inst)

    def get_node_used_resources(self, node: Any) -> dict[str, Any]:
        cached = self._node_resource_cache.get(node.uuid)
        if cached is not None:
            return dict(cached)
        if not self._has_node(node.uuid):
            raise self._el.NetworkXError(f"The node {node.uuid} is not in the digraph.")
        members = self._members_of(node.uuid)
        insts, loaded = self._insts, self._el.loaded
        if node.uuid not in self._members and (not self._read[0] or not any(
                u in insts and loaded(insts[u]) for u in members)):
            vcpu, memory, disk = self.layout.node_used(node.uuid)  # the snapshot's members, unread: shared sums
        else:
            vcpu = memory = disk = 0
            for u in members:
                c, m, d = self._instance_size(u)
                vcpu += c
                memory += m
                disk += d
        result = {"vcpu": vcpu, "memory": memory, "disk": disk}
        self._node_resource_cache[node.uuid] = result
        return dict(result)

    def get_node_free_resources(self, node: Any) -> dict[str, Any]:
        used = self.get_node_used_resources(node)
        return {
            "vcpu": node.vcpu_capacity - used["vcpu"],
            "memory": node.memory_mb_capacity - used["memory"],
            "disk": node.disk_gb_capacity - used["disk"],
        }

    # -- changes (copy-on-write) ----------------------------------------------------------
    def _cache_add(self, node_uuid: str, inst: Any) -> None:
        c = self._node_resource_cache.get(node_uuid)
        if c is not None:
            c["vcpu"] += inst.vcpus
            c["memory"] += inst.memory
            c["disk"] += inst.disk

    def _cache_sub(self, node_uuid: str, inst: Any) -> None:
        c = self._node_resource_cache.get(node_uuid)
        if c is not None:
            c["vcpu"] -= inst.vcpus
            c["memory"] -= inst.memory
            c["disk"] -= inst.disk

    def add_node(self, node: Any) -> None:
        self.assert_node(node)
        self.changes += 1
        self._by_hostname = None
        if not self._has_node(node.uuid):
            self._nodes_tail[node.uuid] = None
            if node.uuid in self._name_of:  # a base node added again after its removal
                self._members.setdefault(node.uuid, [])
        self._nodes[node.uuid] = node

    def remove_node(self, node: Any) -> None:
        self.assert_node(node)
        self.invalidate_node_resource_cache(node)
        if not self._has_node(node.uuid):
            raise self._el.exceptions.ComputeNodeNotFound(name=node.uuid)
        self.changes += 1
        self._by_hostname = None
        for u in list(self._members_of(node.uuid)):
            self._own_homes(u).remove(node.uuid)
        self._members[node.uuid] = []
        if node.uuid in self._nodes_tail:
            del self._nodes_tail[node.uuid]
        else:
            self._nodes_gone.add(node.uuid)
        self._nodes.pop(node.uuid, None)

    def remove_nodes_named(self, names: Iterable[str]) -> None:
        """What Watcher's audit scope does with the nodes it leaves out
        (``ComputeScope.remove_nodes_from_model``): for each hostname, the first node with
        it (``get_node_by_name``; an unknown one raises ``ComputeNodeNotFound`` as there)
        leaves the view and every instance on it is deleted. The same result as that
        loop, at O(nodes removed): a node whose instances are as the snapshot has them is
        marked dropped and its instances are gone with it without being listed; only a
        node this view changed (instances moved, mapped, unmapped) goes the long way."""
        touched = {n for homes in self._homes.values() for n in homes}
        for name in names:
            u = self._node_named(name)
            if u in self._members or u in self._nodes_tail or u in touched:
                for i in list(self._members_of(u)):
                    self._delete_instance(i)
                self.remove_node(self._node_element(u))
                continue
            self.changes += 1
            self._node_resource_cache.pop(u, None)
            self._dropped.add(u)
            self._nodes_gone.add(u)
            self._members[u] = []
            self._nodes.pop(u, None)
            self._drop_hostname(name)

    def _drop_hostname(self, hostname: str) -> None:
        index = self._by_hostname
        if index is not None:
            index.pop(hostname, None)
            if hostname in self._shared_hostnames:  # another node has it: look again when asked
                self._by_hostname = None

    def _delete_instance(self, uuid: str) -> None:
        """``remove_instance`` by uuid, without building the element."""
        self.changes += 1
        homes = self._homes_of(uuid)
        if homes:
            c = self._node_resource_cache.get(homes[0])
            if c is not None:
                vcpus, memory, disk = self._instance_size(uuid)
                c["vcpu"] -= vcpus
                c["memory"] -= memory
                c["disk"] -= disk
        for n in list(homes):
            self._own_members(n).remove(uuid)
        self._homes[uuid] = []
        if uuid in self._insts_tail:
            del self._insts_tail[uuid]
        else:
            self._insts_gone.add(uuid)
        self._insts.pop(uuid, None)

    def add_instance(self, instance: Any) -> None:
        self.assert_instance(instance)
        self.changes += 1
        if not self._has_instance(instance.uuid):
            self._insts_tail[instance.uuid] = None
            self._homes[instance.uuid] = []
        self._insts[instance.uuid] = instance

    def remove_instance(self, instance: Any) -> None:
        self.assert_instance(instance)
        if not self._has_instance(instance.uuid):
            raise self._el.NetworkXError(f"The node {instance.uuid} is not in the graph.")
        self.changes += 1
        homes = self._homes_of(instance.uuid)
        if homes:
            self._cache_sub(homes[0], instance)
        for n in list(homes):
            self._own_members(n).remove(instance.uuid)
        self._homes[instance.uuid] = []
        if instance.uuid in self._insts_tail:
            del self._insts_tail[instance.uuid]
        else:
            self._insts_gone.add(instance.uuid)
        self._insts.pop(instance.uuid, None)

    def delete_instance(self, instance: Any, node: Any = None) -> None:
        self.assert_instance(instance)
        self.remove_instance(instance)

    def _resolve(self, instance: Any, node: Any) -> tuple[Any, Any]:
        if isinstance(instance, str):
            instance = self.get_instance_by_uuid(instance)
        if isinstance(node, str):
            node = self.get_node_by_uuid(node)
        return instance, node

    def map_instance(self, instance: Any, node: Any) -> None:
        """Map an instance (element or uuid) to a node (element or uuid)."""
        instance, node = self._resolve(instance, node)
        self.assert_node(node)
        self.assert_instance(instance)
        if not self._has_instance(instance.uuid) or not self._has_node(node.uuid):
            raise self._el.exceptions.ComputeResourceNotFound(name=f"{instance.uuid} or {node.uuid}")
        self.changes += 1
        if self._add_edge(instance.uuid, node.uuid):
            self._cache_add(node.uuid, instance)

    def unmap_instance(self, instance: Any, node: Any) -> None:
        instance, node = self._resolve(instance, node)
        self.changes += 1
        self._remove_edge(instance.uuid, node.uuid)
        self._cache_sub(node.uuid, instance)

    def migrate_instance(self, instance: Any, source_node: Any, destination_node: Any) -> bool:
        """Move ``instance`` from ``source_node`` to ``destination_node`` in this view only."""
        self.assert_instance(instance)
        self.assert_node(source_node)
        self.assert_node(destination_node)
        if source_node == destination_node:
            return False
        self.changes += 1
        self._remove_edge(instance.uuid, source_node.uuid)
        self._add_edge(instance.uuid, destination_node.uuid)
        self._cache_sub(source_node.uuid, instance)
        self._cache_add(destination_node.uuid, instance)
        return True

    # -- whole-model ------------------------------------------------------------------------
    def mapped_instances(self) -> Iterator[tuple[Any, list[Any]]]:
        """(node, its instances) for every node, in the view's order."""
        for u in self._node_order():
            yield self._node_element(u), [self._instance_element(i) for i in self._members_of(u)]

    def unmapped_instances(self) -> Iterable[Any]:
        """Instances of the view mapped to no node."""
        return [self._instance_element(u) for u in self._instance_order() if not self._homes_of(u)]

    def to_xml(self) -> str:
        """The model as ``ModelRoot.to_xml`` writes it (nodes and instances by uuid)."""
        from projections.watcher.xml import model_xml

        return model_xml(self, readable=False)

    def to_string(self) -> str:
        """As ``to_xml``. Watcher's ``BaseStrategy._pre_execute`` calls it on every audit
        only to pass it to ``LOG.debug`` (1.1 s and 84 MiB at 1,000 hosts / 20,000
        instances); when that logger would drop the line, the XML is not built."""
        caller = sys._getframe(1)
        if caller.f_code.co_name == "_pre_execute" and not _debug_enabled(caller.f_globals.get("LOG")):
            return f"<{len(self._base_nodes())} compute nodes: not rendered, Watcher's log level is above DEBUG>"
        return self.to_xml()

    def copy(self) -> WatcherView:
        """An independent view of the same snapshot with this view's changes (elements copied)."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> WatcherView:
        new = object.__new__(WatcherView)
        memo[id(self)] = new
        # the loaders count reads into _read: a copy shares both (a read in either counts for both)
        shared = {"model", "_el", "layout", "_base", "_name_of", "_uuid_of", "_base_members", "_loaders", "_read"}
        for k, v in self.__dict__.items():
            setattr(new, k, v if k in shared else copy.deepcopy(v, memo))
        return new

    def __repr__(self) -> str:
        return f"<WatcherView of {self.model.describe()}, {self.changes} changes>"
