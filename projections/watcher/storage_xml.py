"""Watcher's storage and baremetal XML (``StorageModelRoot``/``BaremetalModelRoot`` ``to_xml``
and their scenario files), written from a view and read into model entities (ADR 0019).

Writing is byte for byte what Watcher's ``to_xml`` writes for the same model: the
elements are Watcher's own, so are their attributes (``str()`` of every set field, in
field order); storage nodes by host, each node's pools by name, each pool's volumes by
uuid, then the volumes mapped to no pool by uuid; pools mapped to no node are not
written (nor their volumes), as in Watcher. Ironic nodes by uuid.

Reading takes both forms of one layout: Watcher's scenario files (JSON in attributes:
``metadata='{"readonly": false}'``, ``bootable="false"``, ``snapshot_id=""``) and what
``to_xml`` writes (Python reprs: ``metadata="{'readonly': False}"``,
``volume_type="['type_0']"``, ``snapshot_id="None"``). Booleans are read as the file
means them (``"false"`` is False); Watcher's own ``from_xml`` turns every non-empty
string, ``"false"`` too, into True, and cannot read ``to_xml``'s reprs back at all.
The file's order and its mapping (a volume at the root is unmapped even when its
``host`` names a pool of the file, as Watcher reads it) are kept.
"""

from __future__ import annotations

import ast
import json
from typing import TYPE_CHECKING, Any

import attrs

from projections.watcher.convert import WatcherXmlError

if TYPE_CHECKING:
    from projections.watcher.baremetal import BaremetalView
    from projections.watcher.storage import StorageView


#: the file is not a Watcher storage or baremetal scenario this version can read (the
#: compute importer's error class: one class for every Watcher file refused)
StorageXmlError = WatcherXmlError


def storage_xml(view: StorageView) -> str:
    """The view's model as ``StorageModelRoot.to_xml`` writes it."""
    from lxml import etree

    from projections.watcher.storage import NODE, POOL, VOLUME

    root = etree.Element("ModelRoot")
    for host in sorted(view._order(NODE)):
        node_el = view._element(NODE, host).as_xml_element()
        for p in sorted(view._downs(host)):
            pool_el = view._element(POOL, p).as_xml_element()
            for v in sorted(view._downs(p)):
                pool_el.append(view._element(VOLUME, v).as_xml_element())
            node_el.append(pool_el)
        root.append(node_el)
    for v in sorted(view._order(VOLUME)):
        if not view._ups(v):
            root.append(view._element(VOLUME, v).as_xml_element())
    return etree.tostring(root, pretty_print=True).decode("utf-8")


def baremetal_xml(view: BaremetalView) -> str:
    """The view's model as ``BaremetalModelRoot.to_xml`` writes it."""
    from lxml import etree

    root = etree.Element("ModelRoot")
    for u in sorted(view._order()):
        root.append(view._element(u).as_xml_element())
    return etree.tostring(root, pretty_print=True).decode("utf-8")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

@attrs.frozen
class StorageScenario:
    """What a storage file holds, in its order: element attributes as Watcher's fields
    would hold them (typed), and the parent each pool and volume is written under."""

    nodes: list[dict[str, Any]]
    pools: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    #: pool name → node host, volume uuid → pool name (None: at the root, unmapped)
    parent: dict[str, str | None]


def _structured(text: str, what: str) -> Any:
    """A JSON or Python-literal attribute value."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise StorageXmlError(f"{what}: {text!r} is neither JSON nor a Python literal") from None


def _bool(text: str, what: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no", ""):
        return False
    raise StorageXmlError(f"{what}: {text!r} is not a boolean")


def _int(text: str, what: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise StorageXmlError(f"{what}: {text!r} is not a number") from None


def _none(text: str) -> str | None:
    return None if text in ("", "None", "null") else text


def _node_attrs(el: Any) -> dict[str, Any]:
    a = dict(el.attrib)
    what = f"StorageNode {a.get('host')!r}"
    if "host" not in a:
        raise StorageXmlError("a <StorageNode> has no host")
    vt = a.get("volume_type")
    if vt is not None:
        if vt.startswith("["):
            got = _structured(vt, f"{what} volume_type")
            a["volume_type"] = [str(x) for x in got]
        else:
            a["volume_type"] = [vt] if vt else []
    return a


def _pool_attrs(el: Any) -> dict[str, Any]:
    a: dict[str, Any] = dict(el.attrib)
    if "name" not in a:
        raise StorageXmlError("a <Pool> has no name")
    for f in ("total_volumes", "total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb",
              "allocated_capacity_gb", "virtual_free"):
        if f in a:
            a[f] = _int(a[f], f"Pool {a['name']!r} {f}")
    return a


def _volume_attrs(el: Any) -> dict[str, Any]:
    a: dict[str, Any] = dict(el.attrib)
    if not a.get("uuid"):
        raise StorageXmlError("a <Volume> has no uuid")
    what = f"Volume {a['uuid']!r}"
    if "size" in a:
        a["size"] = _int(a["size"], f"{what} size")
    for f in ("multiattach", "bootable"):
        if f in a:
            a[f] = _bool(a[f], f"{what} {f}")
    if "attachments" in a:
        got = _structured(a["attachments"], f"{what} attachments") if a["attachments"] else []
        if not isinstance(got, list) or not all(isinstance(x, dict) for x in got):
            raise StorageXmlError(f"{what}: attachments must be a list of objects")
        a["attachments"] = got
    if "metadata" in a:
        got = _structured(a["metadata"], f"{what} metadata") if a["metadata"] else {}
        if not isinstance(got, dict):
            raise StorageXmlError(f"{what}: metadata must be an object")
        a["metadata"] = got
    for f in ("snapshot_id", "project_id", "created_at", "host"):
        if f in a:
            a[f] = _none(a[f])
    return a


def _root(text: str | bytes, source: str) -> Any:
    from lxml import etree

    if isinstance(text, str):
        text = text.encode("utf-8")
    try:
        tree = etree.fromstring(text)
    except etree.XMLSyntaxError as exc:
        raise StorageXmlError(f"{source}: not XML: {exc}") from None
    if tree.tag != "ModelRoot":
        raise StorageXmlError(f"{source}: root element is <{tree.tag}>, expected <ModelRoot>")
    return tree


def read_storage_scenario(text: str | bytes, *, source: str = "XML") -> StorageScenario:
    """A Watcher storage file (scenario or ``to_xml`` form), in its order (see module doc)."""
    tree = _root(text, source)
    if len(tree) and tree.find(".//StorageNode") is None and tree.find(".//Pool") is None \
            and tree.find(".//Volume") is None:
        found = sorted({el.tag for el in tree})
        raise StorageXmlError(f"{source}: no <StorageNode>, <Pool> or <Volume> (found {found}); "
                              "not a storage scenario")
    try:
        nodes = [_node_attrs(el) for el in tree.iter("StorageNode")]
        pools, parent = [], {}
        for el in tree.iter("Pool"):
            a = _pool_attrs(el)
            pools.append(a)
            up = el.getparent()
            parent[a["name"]] = up.get("host") if up.tag == "StorageNode" else None
        volumes = []
        for el in tree.iter("Volume"):
            a = _volume_attrs(el)
            volumes.append(a)
            up = el.getparent()
            parent[a["uuid"]] = up.get("name") if up.tag == "Pool" else None
    except StorageXmlError as exc:
        raise StorageXmlError(f"{source}: {exc}") from None
    return StorageScenario(nodes=nodes, pools=pools, volumes=volumes, parent=parent)


def read_baremetal_scenario(text: str | bytes, *, source: str = "XML") -> list[dict[str, Any]]:
    """A Watcher baremetal file's Ironic nodes, in its order. ``maintenance`` as the file
    means it; ``maintenance_reason`` ``null``/``None`` is None; ``extra`` from an ``extra``
    attribute (JSON or repr) or, as Watcher's scenario file writes it, from ``<extra>``
    children (their text, stripped) — Watcher's ``from_xml`` ignores those children."""
    tree = _root(text, source)
    if len(tree) and tree.find(".//IronicNode") is None:
        found = sorted({el.tag for el in tree})
        raise StorageXmlError(f"{source}: no <IronicNode> (found {found}); not a baremetal scenario")
    out = []
    for el in tree.iter("IronicNode"):
        a: dict[str, Any] = dict(el.attrib)
        if not a.get("uuid"):
            raise StorageXmlError(f"{source}: an <IronicNode> has no uuid")
        what = f"{source}: IronicNode {a['uuid']!r}"
        if "maintenance" in a:
            try:
                a["maintenance"] = _bool(a["maintenance"], what)
            except StorageXmlError as exc:
                raise StorageXmlError(str(exc)) from None
        if "maintenance_reason" in a:
            a["maintenance_reason"] = _none(a["maintenance_reason"])
        extra: dict[str, Any] = {}
        if "extra" in a:
            got = _structured(a["extra"], f"{what} extra") if a["extra"] else {}
            if not isinstance(got, dict):
                raise StorageXmlError(f"{what}: extra must be an object")
            extra = got
        for child in el.findall("extra"):
            for item in child:
                extra[item.tag] = (item.text or "").strip()
        a["extra"] = extra
        out.append(a)
    return out
