"""A BaremetalModelRoot-compatible view of one model snapshot (ADR 0019).

Watcher's baremetal model is a set of Ironic nodes (no edges). :class:`BaremetalView`
answers ``get_all_ironic_nodes``, ``get_node_by_uuid``, ``add_node``, ``remove_node``
(the audit scope's ``exclude`` rule), ``to_xml``/``to_string`` and ``stale`` with Watcher's
own ``IronicNode`` class, built when asked for; removals and additions stay in the view.

Order: by uuid (Watcher's collector keeps Ironic's listing order, by its database id,
which the model does not have); ``order="given"`` for a model read from a Watcher file
or a ``BaremetalModelRoot``. Values: ``power_state`` (``""`` when Ironic has none yet),
``maintenance``, ``maintenance_reason`` (``""`` for None: Watcher's field refuses None,
so its own collector fails on any node out of maintenance), ``extra`` verbatim (Watcher's
collector keeps only ``extra.compute_node_id`` and reads it as an attribute of a dict).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Literal

from eventmodel.events import BaremetalNode
from projections.model import ClusterModel
from projections.watcher.storage import watcher_modules

BaremetalOrder = Literal["uuid", "given"]
BAREMETAL_ORDERS: tuple[str, ...] = ("uuid", "given")


def ironic_node_values(node: BaremetalNode) -> dict[str, Any]:
    """Watcher ``IronicNode`` field values for ``node``."""
    return {
        "uuid": node.uuid,
        "power_state": node.power_state or "",
        "maintenance": bool(node.maintenance),
        "maintenance_reason": node.maintenance_reason or "",
        "extra": dict(node.extra),
        "human_id": "",
    }


def baremetal_order(model: ClusterModel, order: BaremetalOrder) -> tuple[str, ...]:
    """The node uuids of ``model`` in ``order``."""
    table = model.baremetal_nodes()
    rest = sorted(table)
    given = model.given_baremetal_order
    if order == "given" and given is not None:
        first = dict.fromkeys(u for u in given if u in table)
        return tuple(first) + tuple(u for u in rest if u not in first)
    return tuple(rest)


def ironic_compute_nodes(model: ClusterModel) -> dict[str, str]:
    """Ironic node uuid → the name of Nova's compute node for it (Nova's Ironic driver
    names the hypervisor after the Ironic node's uuid), for the nodes that have one."""
    bm = model.baremetal_nodes()
    return {n.name: n.name for n in model.compute_nodes().values() if n.name in bm}


class BaremetalView:
    """A ``BaremetalModelRoot``-compatible model over one immutable snapshot (module doc)."""

    def __init__(self, model: ClusterModel, *, order: BaremetalOrder | None = None) -> None:
        if order is None:
            order = "given" if model.given_baremetal_order is not None else "uuid"
        if order not in BAREMETAL_ORDERS:
            raise ValueError(f"order must be one of {BAREMETAL_ORDERS}, not {order!r}")
        self._E, self._X, _ = watcher_modules()
        self.model = model
        self.order: BaremetalOrder = order
        self.stale: bool = bool(model.stale)
        self.stale_reason: str | None = model.stale
        self.changes = 0
        self._base: tuple[str, ...] | None = None
        self._els: dict[str, Any] = {}
        self._gone: set[str] = set()
        self._tail: dict[str, None] = {}

    def __bool__(self) -> bool:
        return not self.stale

    def _base_order(self) -> tuple[str, ...]:
        if self._base is None:
            self._base = baremetal_order(self.model, self.order)
        return self._base

    def _has(self, uuid: str) -> bool:
        if uuid in self._tail:
            return True
        return uuid not in self._gone and uuid in self.model.baremetal_nodes()

    def _order(self) -> Iterator[str]:
        for u in self._base_order():
            if u not in self._gone and u not in self._tail:
                yield u
        yield from self._tail

    def _element(self, uuid: str) -> Any:
        el = self._els.get(uuid)
        if el is None:
            from projections.watcher.storage_elements import build

            el = self._els[uuid] = build(self._E.IronicNode, ironic_node_values(self.model.baremetal_nodes()[uuid]))
        return el

    def assert_node(self, obj: Any) -> None:
        if not isinstance(obj, self._E.IronicNode):
            raise self._X.IllegalArgumentException(message=f"'obj' argument type is not valid: {type(obj)}")

    def get_all_ironic_nodes(self) -> dict[str, Any]:
        return {u: self._element(u) for u in self._order()}

    def get_node_by_uuid(self, uuid: str) -> Any:
        if not self._has(uuid):
            raise self._X.IronicNodeNotFound(uuid=uuid)
        return self._element(uuid)

    def add_node(self, node: Any) -> None:
        self.assert_node(node)
        self.changes += 1
        if not self._has(node.uuid):
            self._tail[node.uuid] = None
        self._els[node.uuid] = node

    def remove_node(self, node: Any) -> None:
        self.assert_node(node)
        if not self._has(node.uuid):
            raise self._X.IronicNodeNotFound(uuid=node.uuid)
        self.changes += 1
        if node.uuid in self._tail:
            del self._tail[node.uuid]
        else:
            self._gone.add(node.uuid)
        self._els.pop(node.uuid, None)

    def to_xml(self) -> str:
        """The model as ``BaremetalModelRoot.to_xml`` writes it, byte for byte."""
        from projections.watcher.storage_xml import baremetal_xml

        return baremetal_xml(self)

    def to_string(self) -> str:
        return self.to_xml()

    def copy(self) -> BaremetalView:
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> BaremetalView:
        new = object.__new__(BaremetalView)
        memo[id(self)] = new
        shared = {"model", "_base", "_E", "_X"}
        for k, v in self.__dict__.items():
            setattr(new, k, v if k in shared else copy.deepcopy(v, memo))
        return new

    def __repr__(self) -> str:
        return f"<BaremetalView of {self.model.describe()}, {self.changes} changes>"
