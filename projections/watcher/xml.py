"""Watcher's XML scenario format (``ModelRoot.to_xml`` / ``ModelRoot.from_xml``), written from a view.

Two flavours of one layout (``<ModelRoot>``, a ``<ComputeNode>`` per node with its
``<Instance>`` children, then unmapped instances; nodes and instances by uuid; one
attribute per set field, in Watcher's field order):

- ``readable=False`` is byte for byte what ``ModelRoot.to_xml`` writes (``str()`` of
  every value) — what a view's ``to_xml``/``to_string`` return;
- ``readable=True`` is what export files hold: Watcher's ``from_xml`` reads it back to
  the same values. ``ModelRoot.to_xml`` output does not round-trip through ``from_xml``:
  dict fields are written as Python reprs (``{'a': True}``), which the JSON field cannot
  parse, ``locked="False"`` reads back as True (the field coerces with ``bool()``), and
  a ``None`` reason reads back as the string ``"None"``. The readable form writes dict
  fields as JSON, leaves ``locked`` out when False and ``None`` values out altogether.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.watcher.view import WatcherView

_JSON_FIELDS = frozenset({"metadata", "flavor_extra_specs"})


def _attrs(values: dict[str, Any], fields: tuple[str, ...], readable: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in fields:
        if f not in values:
            continue
        v = values[f]
        if readable:
            if v is None or (f == "locked" and not v):
                continue
            if f in _JSON_FIELDS:
                out[f] = json.dumps(v, sort_keys=True)
                continue
        out[f] = str(v)
    return out


def element_values(el: Any) -> dict[str, Any]:
    """The set fields of a Watcher element."""
    return {f: getattr(el, f) for f in el.fields if el.obj_attr_is_set(f)}


def model_xml(view: WatcherView, *, readable: bool) -> str:
    """The view's model in Watcher's XML layout (see module doc)."""
    from lxml import etree

    from projections.watcher import elements
    from projections.watcher.view import instance_values

    ext = view.extended_attributes_enabled
    table = view.model.instances()

    def inst_el(uuid: str) -> Any:
        el = view._insts.get(uuid)
        if el is None and view.model.given_order is not None:
            el = view._instance_element(uuid)  # with what the source said (watcher_exclude)
        values = element_values(el) if el is not None else instance_values(table[uuid], ext)
        return etree.Element("Instance", attrib=_attrs(values, elements.INSTANCE_FIELDS, readable))

    root = etree.Element("ModelRoot")
    for u in sorted(view._node_order()):
        node = view._node_element(u)
        node_el = etree.Element("ComputeNode", attrib=_attrs(element_values(node), elements.NODE_FIELDS, readable))
        for i in sorted(view._members_of(u)):
            node_el.append(inst_el(i))
        root.append(node_el)
    for i in sorted(view._instance_order()):
        if not view._homes_of(i):
            root.append(inst_el(i))
    return etree.tostring(root, pretty_print=True).decode("utf-8")
