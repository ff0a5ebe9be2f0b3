"""Exact conversion between model snapshots and Watcher's ``ModelRoot`` / XML scenarios (ADR 0013).

- :func:`to_model_root`: a snapshot as Watcher's real ``ModelRoot`` (built with Watcher's
  own constructors, so every value goes through Watcher's field coercion), with the
  nodes, instances and order of a :class:`~projections.watcher.view.WatcherView`.
- :func:`from_model_root`: back to a snapshot. Watcher's model holds less than ours
  (no versions, power or task state, flavor names, user, zone), so the conversion is
  exact on what Watcher holds: ``to_model_root(from_model_root(r))`` is ``r`` (Watcher's
  ``is_isomorphic``) for a collector-built ``r``, and ``from_model_root(to_model_root(m))``
  keeps every field Watcher shows. A node's hypervisor hostname is its instances'
  ``hypervisor_hostname``, else its ``hostname``; its compute service is rebuilt from
  ``status``/``disabled_reason``/``state``. Fields a collector always sets but a
  hand-written scenario may leave out get the collector's value (reserved 0, ratio 1.0,
  metadata ``{}``, an instance's ``host`` from its node). Metadata and extra-spec values
  that are not strings (Nova only has strings; Watcher's test scenarios use booleans)
  become their JSON text, which Watcher's audit scope compares the same way.
  ``watcher_exclude`` (the audit scope's mark) and ``pinned_az`` are not cluster state;
  the model keeps the root's layout instead (``ClusterModel.given_order``: its nodes and
  instances in its order, and the instances it excludes), so a view of it lists them as
  the root does, unplaced instances included, and decides as Watcher does on the same
  file. Nodes without the reserved/ratio fields Watcher's strategies read are logged:
  Watcher fails on such a file (``Cannot load 'vcpu_reserved'``), the model uses defaults.
- :func:`xml_to_model` / :func:`model_to_xml`: Watcher's XML scenario files (read with
  Watcher's own ``ModelRoot.from_xml``; written so that ``from_xml`` reads them back,
  see :mod:`projections.watcher.xml`).
"""

from __future__ import annotations

import logging

import json
from pathlib import Path
from typing import Any

from eventmodel.errors import WatcherError
from eventmodel.events import ComputeNode, ComputeService, Flavor, Instance
from eventmodel.log.base import Position
from projections.model import ClusterModel
from projections.watcher.view import (
    Order,
    WatcherView,
    instance_values,
    load_elements,
    node_values,
)
from projections.watcher.xml import model_xml


_log = logging.getLogger(__name__)


class WatcherXmlError(WatcherError, ValueError):
    """The file is not a Watcher compute model scenario this version can read."""


def to_model_root(model: ClusterModel, *, order: Order = "collector", unplaced: bool = False,
                  extended: bool | None = None) -> Any:
    """``model`` as Watcher's own ``ModelRoot`` (same nodes, instances and order as a view)."""
    load_elements()
    from watcher.decision_engine.model import element, model_root

    view = WatcherView(model, order=order, unplaced=unplaced, extended=extended)
    ext = view.extended_attributes_enabled
    root = model_root.ModelRoot(stale=view.stale)
    root.extended_attributes_enabled = ext
    nodes = model.compute_nodes()
    insts = model.instances()
    real_nodes = {}
    for u in view._node_order():
        n = element.ComputeNode(**node_values(model, nodes[view._name_of[u]]))
        root.add_node(n)
        real_nodes[u] = n
    for u in view._instance_order():
        inst = element.Instance(**instance_values(insts[u], ext))
        root.add_instance(inst)
        for n in view._homes_of(u):
            root.map_instance(inst, real_nodes[n])
    return root


def _us(dt: Any) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _text_values(d: Any) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in (d or {}).items()}


def _get(el: Any, field: str, default: Any = None) -> Any:
    return getattr(el, field) if el.obj_attr_is_set(field) else default


def from_model_root(root: Any, *, position: Position | None = None) -> ClusterModel:
    """A snapshot holding what Watcher's ``root`` holds (see module doc)."""
    from projections.export import from_entities

    nodes: list[ComputeNode] = []
    services: dict[str, ComputeService] = {}
    instances: list[Instance] = []
    home: dict[str, tuple[str, str]] = {}  # instance uuid -> (node name, hostname)
    taken: set[str] = set()
    for u, cn in root.get_all_compute_nodes().items():
        members = root.get_node_instances(cn)
        hostname = _get(cn, "hostname") or u
        name = next((i.hypervisor_hostname for i in members if _get(i, "hypervisor_hostname")), hostname)
        if name in taken:
            name = u
        taken.add(name)
        disabled = _get(cn, "status", "enabled") == "disabled"
        reason = _get(cn, "disabled_reason")
        up = _get(cn, "state", "up") == "up"
        nodes.append(ComputeNode(
            name=name, version=0, host=hostname, uuid=u,
            vcpus=_get(cn, "vcpus", 0), memory_mb=_get(cn, "memory", 0), disk_gb=_get(cn, "disk", 0),
            vcpus_reserved=_get(cn, "vcpu_reserved", 0), memory_mb_reserved=_get(cn, "memory_mb_reserved", 0),
            disk_gb_reserved=_get(cn, "disk_gb_reserved", 0),
            cpu_allocation_ratio=_get(cn, "vcpu_ratio", 1.0), ram_allocation_ratio=_get(cn, "memory_ratio", 1.0),
            disk_allocation_ratio=_get(cn, "disk_ratio", 1.0),
            state="up" if up else "down", disabled=disabled, disabled_reason=reason,
        ))
        services.setdefault(hostname, ComputeService(
            host=hostname, binary="nova-compute", version=0, disabled=disabled, disabled_reason=reason, up=up))
        for i in members:
            home.setdefault(i.uuid, (name, hostname))
    for u, i in root.get_all_instances().items():
        where = home.get(u)
        if where is not None:
            node, host = where[0], _get(i, "host", where[1])
        else:
            hh = _get(i, "hypervisor_hostname")
            node, host = (hh if hh not in taken else None), _get(i, "host")
        created = _get(i, "created")
        created_us = _us(created) if created is not None else None
        instances.append(Instance(
            uuid=u, version=created_us or 0, host=host, node=node, vm_state=_get(i, "state", "active"),
            flavor=Flavor(name="", vcpus=_get(i, "vcpus", 0), memory_mb=_get(i, "memory", 0),
                          root_gb=_get(i, "disk", 0), extra_specs=_text_values(_get(i, "flavor_extra_specs"))),
            project_id=_get(i, "project_id", "") or "", name=_get(i, "name", ""), locked=bool(_get(i, "locked", False)),
            metadata=_text_values(_get(i, "metadata")), created_at=created_us,
        ))
    model = from_entities(instances, nodes, list(services.values()), position=position)
    import attrs

    # the root's own order (a file's, for ModelRoot.from_xml): a view of the model keeps it
    excluded = tuple(u for u, i in root.get_all_instances().items() if _get(i, "watcher_exclude", False))
    model = attrs.evolve(model, given_order=(tuple(root.get_all_compute_nodes()), tuple(root.get_all_instances()),
                                             excluded))
    if not root:  # a stale ModelRoot
        model = attrs.evolve(model, log_problem="the Watcher model was stale")
    return model


#: node fields Watcher's strategies read that a scenario file may leave out: Watcher's own
#: elements then raise ``Cannot load '<field>'``, the model holds its default
NODE_FIELDS_READ = ("vcpu_reserved", "memory_mb_reserved", "disk_gb_reserved", "vcpu_ratio", "memory_ratio",
                    "disk_ratio")


def missing_node_fields(root: Any) -> dict[str, list[str]]:
    """Per node uuid of a ``ModelRoot``, the fields of :data:`NODE_FIELDS_READ` it does not
    set: where Watcher fails on the file and the model (and a view of it) uses defaults."""
    out: dict[str, list[str]] = {}
    for u, cn in root.get_all_compute_nodes().items():
        gone = [f for f in NODE_FIELDS_READ if not cn.obj_attr_is_set(f)]
        if gone:
            out[u] = gone
    return out


def xml_to_model(text: str | bytes, *, source: str = "XML") -> ClusterModel:
    """A Watcher compute scenario (``ModelRoot.to_xml`` layout) as a snapshot."""
    load_elements()
    from lxml import etree
    from watcher.decision_engine.model import model_root

    if isinstance(text, str):
        text = text.encode("utf-8")
    try:
        tree = etree.fromstring(text)
    except etree.XMLSyntaxError as exc:
        raise WatcherXmlError(f"{source}: not XML: {exc}") from None
    if tree.tag != "ModelRoot":
        raise WatcherXmlError(f"{source}: root element is <{tree.tag}>, expected <ModelRoot>")
    if len(tree) and tree.find(".//ComputeNode") is None and tree.find(".//Instance") is None:
        found = sorted({el.tag for el in tree})
        raise WatcherXmlError(f"{source}: no <ComputeNode> or <Instance> (found {found}); "
                              "only compute scenarios can be imported")
    try:
        root = model_root.ModelRoot.from_xml(text)
    except Exception as exc:  # Watcher's reader: bad values, unknown parents, ...
        raise WatcherXmlError(f"{source}: Watcher could not read it: {type(exc).__name__}: {exc}") from None
    gaps = missing_node_fields(root)
    if gaps:
        fields = sorted({f for fs in gaps.values() for f in fs})
        _log.warning("%s: %d node(s) lack %s: Watcher's strategies fail on this file (Cannot load ...), "
                     "the model uses the defaults (reserved 0, ratios 1.0)", source, len(gaps), ", ".join(fields))
    return from_model_root(root)


def model_to_xml(model: ClusterModel, *, extended: bool = True) -> str:
    """The snapshot as a Watcher scenario file that ``ModelRoot.from_xml`` reads back exactly:
    every instance (unplaced ones unmapped), nodes and instances by uuid."""
    return model_xml(WatcherView(model, order="uuid", unplaced=True, extended=extended), readable=True)


def read_xml_file(path: str | Path) -> ClusterModel:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise WatcherXmlError(f"{p}: {exc.strerror or exc}") from None
    return xml_to_model(data, source=str(p))
