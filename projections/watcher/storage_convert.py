"""Conversions between model snapshots and Watcher's ``StorageModelRoot`` /
``BaremetalModelRoot`` and their XML scenario files (ADR 0019).

- :func:`to_storage_model_root` / :func:`to_baremetal_model_root`: a snapshot as Watcher's
  real models, built with Watcher's own constructors in the view's order (nodes, then
  each pool added and mapped, then each volume added and mapped, as Watcher's collector
  fills its model), so a strategy iterates both alike.
- :func:`from_storage_model_root` / :func:`from_baremetal_model_root`: back to a
  snapshot, keeping the root's order and mapping (``ClusterModel.given_storage_order``,
  ``given_baremetal_order``), so a view of the result lists and maps what the root does.
  Exact on what Watcher holds, with these rules: a volume type known only by name
  becomes a type whose id is its name, selecting the backend of the nodes that list it;
  metadata values that are not strings (Cinder only has strings; Watcher's scenario
  uses booleans) become their JSON text; a volume's ``host`` is the pool it is mapped
  to when the root leaves the field empty; ``created_at`` text becomes µs (UTC).
- :func:`storage_xml_to_model` / :func:`baremetal_xml_to_model`: Watcher's XML files
  (:mod:`projections.watcher.storage_xml`), onto a given model's compute side if one
  is passed.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import immutables

from eventmodel.events import (
    BAREMETAL_NODE, POOL, STORAGE_NODE, VOLUME, VOLUME_TYPE, BaremetalNode, StorageNode, StoragePool, Volume,
    VolumeAttachment, VolumeType,
)
from projections.model import ClusterModel
from projections.watcher.baremetal import BaremetalOrder, BaremetalView, ironic_node_values
from projections.watcher.storage import (
    StorageOrder, StorageView, pool_values, storage_node_values, volume_element, volume_values, watcher_modules,
)
from projections.watcher.storage_xml import (
    StorageScenario, StorageXmlError, read_baremetal_scenario, read_storage_scenario,
)

_log = logging.getLogger(__name__)


def empty_model() -> ClusterModel:
    """A model with nothing in it."""
    from projections.export import from_entities

    return from_entities([], [], [])


def with_storage(model: ClusterModel, *, storage_nodes: Iterable[StorageNode] = (),
                 pools: Iterable[StoragePool] = (), volumes: Iterable[Volume] = (),
                 volume_types: Iterable[VolumeType] = (), baremetal_nodes: Iterable[BaremetalNode] = ()
                 ) -> ClusterModel:
    """``model`` with exactly these storage and baremetal entities (its compute side kept)."""
    tables = model.state.tables
    for kind, items in ((STORAGE_NODE, storage_nodes), (POOL, pools), (VOLUME, volumes),
                        (VOLUME_TYPE, volume_types), (BAREMETAL_NODE, baremetal_nodes)):
        tables = tables.set(kind, immutables.Map({e.key: e for e in items}))
    return attrs.evolve(model, state=attrs.evolve(model.state, tables=tables))


# ---------------------------------------------------------------------------
# To Watcher
# ---------------------------------------------------------------------------

def to_storage_model_root(model: ClusterModel, *, order: StorageOrder | None = None) -> Any:
    """``model`` as Watcher's own ``StorageModelRoot`` (same content, order and mapping as a view)."""
    watcher_modules()
    from watcher.decision_engine.model import element, model_root

    view = StorageView(model, order=order)
    ix = view.index
    nodes, pools, vols, parents = view.layout()
    root = model_root.StorageModelRoot(stale=view.stale)
    for h in nodes:
        root.add_node(element.StorageNode(**storage_node_values(model.storage_nodes()[h], ix.by_backend)))
    for p in pools:
        root.add_pool(element.Pool(**pool_values(model.pools()[p])[0]))
        for n in parents[p]:
            root.map_pool(p, n)
    for u in vols:
        root.add_volume(volume_element(element, volume_values(model.volumes()[u], ix.type_names)))
        for p in parents[u]:
            root.map_volume(u, p)
    return root


def to_baremetal_model_root(model: ClusterModel, *, order: BaremetalOrder | None = None) -> Any:
    """``model`` as Watcher's own ``BaremetalModelRoot`` (same nodes and order as a view)."""
    watcher_modules()
    from watcher.decision_engine.model import element, model_root

    view = BaremetalView(model, order=order)
    root = model_root.BaremetalModelRoot(stale=view.stale)
    for u in view._order():
        root.add_node(element.IronicNode(**ironic_node_values(model.baremetal_nodes()[u])))
    return root


# ---------------------------------------------------------------------------
# From Watcher
# ---------------------------------------------------------------------------

def _text_values(d: Any) -> dict[str, str]:
    if isinstance(d, list):  # Watcher's notification path keeps Cinder's [{"key", "value"}] list
        d = {x.get("key"): x.get("value") for x in d if isinstance(x, dict)}
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in (d or {}).items()}


def created_us(text: str | None) -> int | None:
    """An ISO time (Cinder's API form, naive = UTC) as µs; None when absent or unreadable."""
    if not text:
        return None
    try:
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _log.warning("created_at %r is not an ISO time: left out", text)
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _storage_entities(scenario: StorageScenario) -> tuple[list[StorageNode], list[StoragePool], list[Volume],
                                                         list[VolumeType]]:
    nodes, types, backend_of = [], {}, {}
    for a in scenario.nodes:
        host = a["host"]
        backend = host.partition("@")[2]
        for t in a.get("volume_type") or []:
            if backend_of.setdefault(t, backend) != backend:
                _log.warning("volume type %r is listed by nodes of backends %r and %r: kept for %r",
                             t, backend_of[t], backend, backend_of[t])
        nodes.append(StorageNode(host=host, zone=a.get("zone") or None, disabled=a.get("status") == "disabled",
                                 up=a.get("state", "up") != "down"))
    pools = []
    for a in scenario.pools:
        def gb(f: str, a: dict[str, Any] = a) -> float | None:
            return float(a[f]) if f in a else None

        pools.append(StoragePool(
            name=a["name"], total_capacity_gb=gb("total_capacity_gb"), free_capacity_gb=gb("free_capacity_gb"),
            provisioned_capacity_gb=gb("provisioned_capacity_gb"),
            allocated_capacity_gb=gb("allocated_capacity_gb"), virtual_free_gb=gb("virtual_free"),
            total_volumes=a.get("total_volumes")))
    vols = []
    for a in scenario.volumes:
        tname = a.get("volume_type") or None
        if tname is not None:
            backend_of.setdefault(tname, None)
        created = created_us(a.get("created_at"))
        vols.append(Volume(
            uuid=a["uuid"], version=created or 0, host=a.get("host") or scenario.parent.get(a["uuid"]),
            size_gb=a.get("size", 0), status=a.get("status", "available"), name=a.get("name") or "",
            project_id=a.get("project_id") or "", volume_type_id=tname, volume_type=tname,
            attachments=tuple(VolumeAttachment(server_id=str(x.get("server_id", "")),
                                               attachment_id=str(x.get("attachment_id", "")))
                              for x in a.get("attachments") or []),
            multiattach=bool(a.get("multiattach", False)), bootable=bool(a.get("bootable", False)),
            snapshot_id=a.get("snapshot_id") or None, metadata=_text_values(a.get("metadata")),
            created_at=created))
    vtypes = [VolumeType(id=t, name=t, backend_name=b or None,
                         extra_specs={"volume_backend_name": b} if b else {}) for t, b in backend_of.items()]
    return nodes, pools, vols, vtypes


def _layout(scenario: StorageScenario, pools: list[StoragePool], vols: list[Volume],
            hosts: set[str]) -> tuple[tuple[str, ...], ...]:
    """given_storage_order: the order, and the pools/volumes the source leaves unmapped
    although their names would map them."""
    names = {p.name for p in pools}
    no_node = tuple(p.name for p in pools if scenario.parent.get(p.name) is None and p.node in hosts)
    no_pool = tuple(v.uuid for v in vols if scenario.parent.get(v.uuid) is None and v.host in names)
    return (tuple(a["host"] for a in scenario.nodes), tuple(p.name for p in pools), tuple(v.uuid for v in vols),
            no_node, no_pool)


def _check_parents(scenario: StorageScenario, pools: list[StoragePool], vols: list[Volume]) -> None:
    """A pool under another node than its name says, or a volume under another pool than
    its host says, cannot be held (the model maps by name): refused."""
    for p in pools:
        up = scenario.parent.get(p.name)
        if up is not None and up != p.node:
            raise StorageXmlError(f"pool {p.name!r} is under node {up!r}, not the node its name names")
    for v in vols:
        up = scenario.parent.get(v.uuid)
        if up is not None and up != v.host:
            raise StorageXmlError(f"volume {v.uuid!r} (host {v.host!r}) is under pool {up!r}")


def storage_scenario_to_model(scenario: StorageScenario, model: ClusterModel | None = None) -> ClusterModel:
    """A snapshot holding the scenario's storage entities (onto ``model``'s compute side)."""
    nodes, pools, vols, vtypes = _storage_entities(scenario)
    _check_parents(scenario, pools, vols)
    base = model if model is not None else empty_model()
    out = with_storage(base, storage_nodes=nodes, pools=pools, volumes=vols, volume_types=vtypes,
                       baremetal_nodes=base.baremetal_nodes().values())
    return attrs.evolve(out, given_storage_order=_layout(scenario, pools, vols, {n.host for n in nodes}))


def _fields(el: Any) -> dict[str, Any]:
    return {f: getattr(el, f) for f in el.fields if el.obj_attr_is_set(f)}


def from_storage_model_root(root: Any, model: ClusterModel | None = None) -> ClusterModel:
    """A snapshot holding what Watcher's ``root`` holds, in its order (see module doc)."""
    nodes = [_fields(n) for n in root.get_all_storage_nodes().values()]
    pools, vols, parent = [], [], {}
    for name, data in root.nodes(data=True):
        el = data.get("attr")
        if el is None:
            continue
        if type(el).__name__ == "Pool":
            pools.append(_fields(el))
            parent[name] = next((n for n in root.successors(name)), None)
        elif type(el).__name__ == "Volume":
            vols.append(_fields(el))
            parent[name] = next((p for p in root.successors(name)), None)
    scenario = StorageScenario(nodes=nodes, pools=pools, volumes=vols, parent=parent)
    out = storage_scenario_to_model(scenario, model)
    if not root:
        out = attrs.evolve(out, log_problem="the Watcher storage model was stale")
    return out


def storage_xml_to_model(text: str | bytes, model: ClusterModel | None = None, *,
                         source: str = "XML") -> ClusterModel:
    """A Watcher storage scenario (file or ``to_xml`` form) as a snapshot, in the file's order."""
    try:
        return storage_scenario_to_model(read_storage_scenario(text, source=source), model)
    except StorageXmlError as exc:
        if str(exc).startswith(source):
            raise
        raise StorageXmlError(f"{source}: {exc}") from None


def read_storage_xml_file(path: str | Path, model: ClusterModel | None = None) -> ClusterModel:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise StorageXmlError(f"{p}: {exc.strerror or exc}") from None
    return storage_xml_to_model(data, model, source=str(p))


def _baremetal_nodes(items: list[dict[str, Any]]) -> list[BaremetalNode]:
    return [BaremetalNode(uuid=a["uuid"], version=0, power_state=a.get("power_state") or None,
                          maintenance=bool(a.get("maintenance", False)),
                          maintenance_reason=a.get("maintenance_reason") or None, extra=dict(a.get("extra") or {}))
            for a in items]


def _with_baremetal(items: list[dict[str, Any]], model: ClusterModel | None) -> ClusterModel:
    base = model if model is not None else empty_model()
    nodes = _baremetal_nodes(items)
    out = with_storage(base, storage_nodes=base.storage_nodes().values(), pools=base.pools().values(),
                       volumes=base.volumes().values(), volume_types=base.volume_types().values(),
                       baremetal_nodes=nodes)
    return attrs.evolve(out, given_baremetal_order=tuple(n.uuid for n in nodes))


def from_baremetal_model_root(root: Any, model: ClusterModel | None = None) -> ClusterModel:
    """A snapshot holding the Ironic nodes of Watcher's ``root``, in its order."""
    out = _with_baremetal([_fields(n) for n in root.get_all_ironic_nodes().values()], model)
    if not root:
        out = attrs.evolve(out, log_problem="the Watcher baremetal model was stale")
    return out


def baremetal_xml_to_model(text: str | bytes, model: ClusterModel | None = None, *,
                           source: str = "XML") -> ClusterModel:
    """A Watcher baremetal scenario as a snapshot, in the file's order."""
    return _with_baremetal(read_baremetal_scenario(text, source=source), model)


__all__ = [
    "baremetal_xml_to_model", "created_us", "empty_model", "from_baremetal_model_root",
    "from_storage_model_root", "read_storage_xml_file", "storage_scenario_to_model", "storage_xml_to_model",
    "to_baremetal_model_root", "to_storage_model_root", "with_storage",
]
