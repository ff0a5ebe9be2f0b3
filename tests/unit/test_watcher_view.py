"""The Watcher view and conversions against Watcher's own ModelRoot (python-watcher 17).

Properties, over random clouds: the view reads exactly what Watcher's ``ModelRoot``
built from the same snapshot reads (elements equal by Watcher's own ``==``, same order,
same resources, same ``to_xml`` bytes); changes go to the view only and cost O(changes);
snapshot -> ModelRoot -> snapshot keeps everything Watcher shows; XML -> snapshot -> XML
agrees with Watcher's reader (``ModelRoot.from_xml``, compared with its ``is_isomorphic``).
"""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.events import ComputeNode, ComputeService, Flavor, Instance
from projections.export import from_entities
from projections.model import ClusterModel

warnings.filterwarnings("ignore", category=DeprecationWarning)

from watcher.common import exception
from watcher.decision_engine.model import element
from watcher.decision_engine.model.model_root import ModelRoot

from projections.watcher.convert import (
    WatcherXmlError,
    from_model_root,
    model_to_xml,
    read_xml_file,
    to_model_root,
    xml_to_model,
)
from projections.watcher.view import WatcherMissing, WatcherView

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "watcher-scenarios"
COMPUTE_SCENARIOS = sorted(p for p in SCENARIOS.glob("scenario_*.xml"))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------
# random clouds
# ---------------------------------------------------------------------------

HEX = "0123456789abcdef"
uuids = st.text(HEX, min_size=8, max_size=8).map(lambda s: f"{s}-0000-4000-8000-000000000000")
instance_uuids = st.text(HEX, min_size=8, max_size=8).map(lambda s: f"{s}-1111-4000-9000-000000000000")
texts = st.text("abcxyz -_", max_size=6)
specs = st.dictionaries(st.sampled_from(["hw:cpu_policy", "trait:CUSTOM_X", "k"]), texts, max_size=2)


@st.composite
def clouds(draw: Any) -> ClusterModel:
    n_nodes = draw(st.integers(0, 6))
    node_uuids = draw(st.lists(uuids, min_size=n_nodes, max_size=n_nodes, unique=True))
    nodes, services = [], []
    for k, u in enumerate(node_uuids):
        host = f"host-{k}"
        name = draw(st.sampled_from([host, f"{host}.example.org"]))
        nodes.append(ComputeNode(
            name=name, version=1, host=host, uuid=draw(st.sampled_from([u, u, None])),
            vcpus=draw(st.integers(1, 64)), memory_mb=draw(st.integers(512, 65536)), disk_gb=draw(st.integers(0, 500)),
            vcpus_reserved=draw(st.integers(0, 1)), memory_mb_reserved=draw(st.sampled_from([0, 512])),
            disk_gb_reserved=draw(st.integers(0, 2)),
            cpu_allocation_ratio=draw(st.sampled_from([1.0, 4.0, 16.0])),
            ram_allocation_ratio=draw(st.sampled_from([1.0, 1.5])), disk_allocation_ratio=1.0,
            hypervisor_type=draw(st.sampled_from(["QEMU", "QEMU", "QEMU", "ironic"])),
            state=draw(st.sampled_from(["up", "up", "down"])),
            disabled=draw(st.booleans()), disabled_reason=draw(st.sampled_from([None, "hw"])),
        ))
        if draw(st.integers(0, 4)):
            services.append(ComputeService(
                host=host, binary="nova-compute", version=1, disabled=draw(st.booleans()),
                disabled_reason=draw(st.sampled_from([None, "maintenance"])), forced_down=draw(st.booleans()),
                up=draw(st.booleans())))
    names = [n.name for n in nodes] + ["gone-node", None]
    n_inst = draw(st.integers(0, 25))
    inst_uuids = draw(st.lists(instance_uuids, min_size=n_inst, max_size=n_inst, unique=True))
    instances = []
    for u in inst_uuids:
        node = draw(st.sampled_from(names))
        host = next((n.host for n in nodes if n.name == node), None) if node else None
        instances.append(Instance(
            uuid=u, version=1, host=host if node != "gone-node" else "gone", node=node,
            vm_state=draw(st.sampled_from(["active", "active", "stopped", "paused", "deleted", "error"])),
            flavor=Flavor(name="f", vcpus=draw(st.integers(1, 16)), memory_mb=draw(st.integers(64, 8192)),
                          root_gb=draw(st.integers(0, 40)), ephemeral_gb=draw(st.integers(0, 2)),
                          swap_mb=draw(st.sampled_from([0, 512, 1024, 1500])), extra_specs=draw(specs)),
            project_id=draw(st.sampled_from(["", "ab12cd34ef56ab12cd34ef56ab12cd34"])),
            name=draw(texts), locked=draw(st.booleans()),
            metadata=draw(st.dictionaries(st.sampled_from(["optimize", "role"]), texts, max_size=2)),
            created_at=draw(st.sampled_from([None, 1_700_000_000_000_000, 1_700_000_001_000_000,
                                             1_700_000_001_123_456])),
        ))
    return from_entities(instances, nodes, services)


options = st.fixed_dictionaries({
    "order": st.sampled_from(["collector", "uuid"]),
    "unplaced": st.booleans(),
    "extended": st.booleans(),
})


# ---------------------------------------------------------------------------
# how Watcher sees a model: everything its API returns, in its order
# ---------------------------------------------------------------------------

def _data(el: Any, drop_none: bool = False) -> dict[str, Any]:
    d = el.as_dict()
    return {k: v for k, v in d.items() if not (drop_none and v is None)}


def seen(m: Any, drop_none: bool = False) -> dict[str, Any]:
    """What a strategy can read from a compute model (view or ModelRoot), in order."""
    nodes = m.get_all_compute_nodes()
    out: dict[str, Any] = {"nodes": [], "instances": [], "stale": bool(m.stale)}
    for u, n in nodes.items():
        members = m.get_node_instances(n)
        out["nodes"].append((u, _data(n, drop_none), [i.uuid for i in members], m.get_node_used_resources(n),
                             m.get_node_free_resources(n)))
    for u, i in m.get_all_instances().items():
        try:
            home = m.get_node_by_instance_uuid(u).uuid
        except exception.ComputeResourceNotFound as exc:  # InstanceNotMapped
            home = type(exc).__name__
        out["instances"].append((u, _data(i, drop_none), home))
    return out


# ---------------------------------------------------------------------------
# the view reads what ModelRoot reads
# ---------------------------------------------------------------------------

@SETTINGS
@given(clouds(), options)
def test_view_reads_equal_model_root_reads(model: ClusterModel, opts: dict[str, Any]) -> None:
    view = WatcherView(model, **opts)
    root = to_model_root(model, **opts)
    assert seen(view) == seen(root)
    for u, n in root.get_all_compute_nodes().items():
        v = view.get_node_by_uuid(u)
        assert v == n and n == v and not v.__ne__(n)  # Watcher's own == (every field)
        assert isinstance(v, element.ComputeNode)
        assert [i for i in view.get_node_instances(v)] == root.get_node_instances(n)
        assert view.get_node_by_name(n.hostname).uuid == root.get_node_by_name(n.hostname).uuid
    for u, i in root.get_all_instances().items():
        assert view.get_instance_by_uuid(u) == i
        assert isinstance(view.get_instance_by_uuid(u), element.Instance)
    assert view.to_xml() == root.to_xml()
    assert view.to_string() == root.to_string()
    assert bool(view) == bool(root)


@SETTINGS
@given(clouds())
def test_missing_things_raise_as_in_watcher(model: ClusterModel) -> None:
    view, root = WatcherView(model), to_model_root(model)
    for m in (view, root):
        with pytest.raises(exception.ComputeNodeNotFound):
            m.get_node_by_uuid("no-such-node")
        with pytest.raises(exception.InstanceNotFound):
            m.get_instance_by_uuid("no-such-instance")
        with pytest.raises(exception.ComputeNodeNotFound):
            m.get_node_by_name("no-such-host")
        with pytest.raises(exception.ComputeResourceNotFound):
            m.get_node_by_instance_uuid("no-such-instance")


def test_node_and_instance_order_is_defined() -> None:
    nodes = [ComputeNode(name=f"b{k}", version=1, host=f"b{k}", uuid=u) for k, u in enumerate(["u3", "u1", "u2"])]
    t = 1_700_000_000_000_000
    insts = [Instance(uuid=u, version=1, host="b0", node="b0", vm_state="active", flavor=Flavor("f", 1, 1),
                      created_at=c)
             for u, c in [("i1", t), ("i2", t + 5), ("i3", None), ("i4", t + 5), ("i5", t - 1)]]
    model = from_entities(insts, nodes, [])
    view = WatcherView(model)
    # nodes by hypervisor hostname; a node's instances as Nova lists servers: newest first
    assert list(view.get_all_compute_nodes()) == ["u3", "u1", "u2"]
    assert [i.uuid for i in view.get_node_instances(view.get_node_by_uuid("u3"))] == ["i4", "i2", "i1", "i5", "i3"]
    by_uuid = WatcherView(model, order="uuid")
    assert list(by_uuid.get_all_compute_nodes()) == ["u1", "u2", "u3"]
    assert [i.uuid for i in by_uuid.get_node_instances(by_uuid.get_node_by_uuid("u3"))] == ["i1", "i2", "i3", "i4",
                                                                                               "i5"]


def test_creating_a_view_reads_nothing() -> None:
    model = from_entities([], [ComputeNode(name="n", version=1, host="n", uuid="u")], [])
    view = WatcherView(model)
    assert view._base is None and not view._nodes and not view._insts
    assert view.get_node_by_uuid("u").hostname == "n"


# ---------------------------------------------------------------------------
# copy-on-write
# ---------------------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["migrate", "unmap_map", "remove_node", "remove_instance",
                                          "add_instance", "status", "exclude", "scope_remove"]),
                         st.integers(0, 1000), st.integers(0, 1000)), max_size=12)


def _apply(m: Any, op: str, a: int, b: int) -> None:
    nodes = list(m.get_all_compute_nodes().values())
    insts = list(m.get_all_instances().values())
    if op == "add_instance":
        new = element.Instance(uuid=f"new-{a}-{b}", name="new", vcpus=1, memory=1, disk=1, metadata={})
        if f"new-{a}-{b}" not in m.get_all_instances():
            m.add_instance(new)
            if nodes:
                m.map_instance(new, nodes[b % len(nodes)])
        return
    if not nodes:
        return
    if op == "remove_node":
        m.remove_node(nodes[a % len(nodes)])
        return
    if op == "scope_remove":  # an audit scope leaving nodes out: Watcher's loop on a ModelRoot, one call on a view
        from projections.watcher.collector import ProjectionScope

        names = {n.hostname for k, n in enumerate(nodes) if (a >> k) & 1}
        ProjectionScope([], None, None).remove_nodes_from_model(names, m)  # type: ignore[arg-type]
        return
    if op == "status":
        nodes[a % len(nodes)].status = "disabled"
        return
    mapped = [(i, m.get_node_by_instance_uuid(i.uuid)) for i in insts
              if not isinstance(_home(m, i.uuid), str)]
    if not mapped:
        return
    inst, src = mapped[a % len(mapped)]
    if op == "migrate":
        assert m.migrate_instance(inst, src, nodes[b % len(nodes)]) == (src.uuid != nodes[b % len(nodes)].uuid)
    elif op == "unmap_map":
        m.unmap_instance(inst, src)
        m.map_instance(inst, nodes[b % len(nodes)])
    elif op == "exclude":  # what Watcher's audit scope does to an excluded instance
        m.unmap_instance(inst, src)
        inst.update({"watcher_exclude": True})
        m.map_instance(inst, src)
    elif op == "remove_instance":
        m.delete_instance(inst, src)


def _present(m: Any, model: ClusterModel) -> dict[str, Any]:
    """For every instance and node of the snapshot: its node in ``m``, or the error asking gives."""
    out: dict[str, Any] = {}
    for u in [*model.instances(), *(n.uuid for n in model.compute_nodes().values())]:
        try:
            el = m.get_instance_by_uuid(u) if u in model.instances() else m.get_node_by_uuid(u)
            out[u] = _home(m, u).uuid if u in model.instances() and not isinstance(_home(m, u), str) else el.uuid
        except exception.ComputeResourceNotFound as exc:
            out[u] = type(exc).__name__
    return out


def _home(m: Any, uuid: str) -> Any:
    try:
        return m.get_node_by_instance_uuid(uuid)
    except exception.ComputeResourceNotFound:
        return "unmapped"


@SETTINGS
@given(clouds(), ops, st.booleans())
def test_changes_go_to_the_view_only_and_match_model_root(model: ClusterModel, steps: list, unplaced: bool) -> None:
    before = seen(to_model_root(model, unplaced=unplaced))
    tables = dict(model.state.tables.items())
    view = WatcherView(model, unplaced=unplaced)
    other = WatcherView(model, unplaced=unplaced)
    seen(other)  # another view over the same snapshot, already read
    root = to_model_root(model, unplaced=unplaced)
    for op, a, b in steps:
        _apply(view, op, a, b)
        _apply(root, op, a, b)
        assert seen(view) == seen(root)
        assert view.to_xml() == root.to_xml()
        assert _present(view, model) == _present(root, model)  # gone ones, asked for by uuid
    assert dict(model.state.tables.items()) == tables  # the snapshot is untouched
    assert seen(other) == before  # and so is every other view of it
    assert seen(WatcherView(model, unplaced=unplaced)) == before


def test_changes_cost_o_changes() -> None:
    nodes = [ComputeNode(name=f"n{k:03d}", version=1, host=f"n{k:03d}", uuid=f"u{k:03d}", vcpus=64,
                         memory_mb=1 << 20, disk_gb=10_000) for k in range(200)]
    insts = [Instance(uuid=f"i{k:05d}", version=1, host=f"n{k % 200:03d}", node=f"n{k % 200:03d}",
                      vm_state="active", flavor=Flavor("f", 1, 512, 1)) for k in range(4000)]
    model = from_entities(insts, nodes, [])
    view = WatcherView(model)
    for k in range(5):
        src = view.get_node_by_uuid(f"u{k:03d}")
        dst = view.get_node_by_uuid(f"u{k + 100:03d}")
        view.migrate_instance(view.get_node_instances(src)[0], src, dst)
    # built: the touched nodes' elements and their instances (20 each), nothing else
    assert len(view._nodes) == 10
    assert len(view._insts) == 5 * 20
    assert len(view._homes) == 5 and len(view._members) == 10
    assert view.changes == 5


def test_a_scope_removing_nodes_lists_none_of_their_instances() -> None:
    """The audit scope's removal of the nodes it leaves out costs O(nodes removed): no
    element of their instances is built, none of them is listed; they are gone."""
    nodes = [ComputeNode(name=f"n{k:03d}", version=1, host=f"h{k:03d}", uuid=f"u{k:03d}") for k in range(100)]
    insts = [Instance(uuid=f"i{k:05d}", version=1, host=f"h{k % 100:03d}", node=f"n{k % 100:03d}",
                      vm_state="active", flavor=Flavor("f", 1, 512, 1)) for k in range(2000)]
    view = WatcherView(from_entities(insts, nodes, []))
    view.remove_nodes_named({f"h{k:03d}" for k in range(60)})
    assert not view._insts and not view._base_members and view.changes == 60
    assert list(view.get_all_compute_nodes()) == [f"u{k:03d}" for k in range(60, 100)]
    assert len(view.get_all_instances()) == 800
    with pytest.raises(exception.InstanceNotFound):
        view.get_instance_by_uuid("i00000")
    with pytest.raises(exception.ComputeNodeNotFound):
        view.get_node_by_name("h000")
    with pytest.raises(exception.ComputeNodeNotFound):
        view.remove_nodes_named(["h000"])


@SETTINGS
@given(clouds(), ops, options)
def test_views_sharing_a_layout_read_as_separate_ones(model: ClusterModel, steps: list,
                                                       opts: dict[str, Any]) -> None:
    """Views of one snapshot sharing its Layout (as the collector's audits at one model
    version do) read as views with their own, whatever one of them changed; the second
    one's walk adds nothing to the layout."""
    from projections.watcher.layout import Layout

    layout = Layout(model, opts["order"], opts["unplaced"])
    first = WatcherView(model, layout=layout, extended=opts["extended"])
    alone = WatcherView(model, **opts)
    for op, a, b in steps:
        _apply(first, op, a, b)
        _apply(alone, op, a, b)
    assert seen(first) == seen(alone)
    second = WatcherView(model, layout=layout, extended=opts["extended"])
    built = (dict(layout.members), dict(layout.used))
    assert seen(second) == seen(WatcherView(model, **opts))
    if not steps:
        assert (layout.members, layout.used) == built
    with pytest.raises(ValueError):
        WatcherView(model, layout=layout, order="given")
    # a later snapshot whose records changed no entity (an audit's record) has the same layout
    import attrs

    from eventmodel.log.base import Position

    later = attrs.evolve(model, state=attrs.evolve(model.state, position=Position((7,))))
    assert layout.fits(later)
    assert seen(WatcherView(later, layout=layout, extended=opts["extended"])) == seen(WatcherView(later, **opts))
    changed = from_entities([], list(model.compute_nodes().values()), [])
    assert not layout.fits(changed)


def test_lazy_elements_are_watchers_elements_once_read() -> None:
    """A view's elements hold their uuid (a node also its hostname) until something else
    is read; then they are what Watcher's constructor makes. A field set first keeps its
    value; a copy of an unread element reads the same."""
    model = from_entities(
        [Instance(uuid="i1", version=1, host="a", node="a", vm_state="active", flavor=Flavor("f", 2, 64, 3),
                  name="one", metadata={"k": "v"}, created_at=1_700_000_000_000_000)],
        [ComputeNode(name="a", version=1, host="ha", uuid="ua", vcpus=8)], [])
    root = to_model_root(model)
    view = WatcherView(model)
    node, inst = view.get_node_by_uuid("ua"), view.get_instance_by_uuid("i1")
    assert "_lazy" in node.__dict__ and "_lazy" in inst.__dict__
    assert node.hostname == "ha" and "_lazy" in node.__dict__  # read without filling in
    copied = copy.deepcopy(inst)
    assert "_lazy" in copied.__dict__ and copied is not inst
    inst.name = "renamed"  # a setter first: the values are filled in before it
    assert inst.name == "renamed" and inst.vcpus == 2 and inst.obj_what_changed() >= {"name", "vcpus"}
    assert copied.name == "one" and copied == root.get_instance_by_uuid("i1")
    assert node.obj_to_primitive() == root.get_node_by_uuid("ua").obj_to_primitive()
    with pytest.raises(AttributeError):
        node.no_such_attribute  # noqa: B018


def test_deepcopy_of_a_view_is_independent() -> None:
    model = from_entities(
        [Instance(uuid="i1", version=1, host="a", node="a", vm_state="active", flavor=Flavor("f", 1, 1))],
        [ComputeNode(name="a", version=1, host="a", uuid="ua"), ComputeNode(name="b", version=1, host="b", uuid="ub")],
        [])
    view = WatcherView(model)
    inst = view.get_instance_by_uuid("i1")
    copied = copy.deepcopy(view)
    a, b = copied.get_node_by_uuid("ua"), copied.get_node_by_uuid("ub")
    assert copied.migrate_instance(copied.get_instance_by_uuid("i1"), a, b)
    copied.get_instance_by_uuid("i1").name = "renamed"
    assert view.get_node_by_instance_uuid("i1").uuid == "ua"
    assert copied.get_node_by_instance_uuid("i1").uuid == "ub"
    assert inst.name == "" and view.get_instance_by_uuid("i1") is inst


# ---------------------------------------------------------------------------
# snapshot <-> ModelRoot
# ---------------------------------------------------------------------------

@SETTINGS
@given(clouds(), st.booleans())
def test_snapshot_to_model_root_and_back_keeps_what_watcher_shows(model: ClusterModel, extended: bool) -> None:
    opts = {"order": "uuid", "unplaced": True, "extended": extended}
    root = to_model_root(model, **opts)
    back = from_model_root(root)
    assert seen(to_model_root(back, **opts)) == seen(root)
    # and the second trip changes nothing at all
    again = from_model_root(to_model_root(back, **opts))
    assert dict(again.instances().items()) == dict(back.instances().items())
    assert dict(again.compute_nodes().items()) == dict(back.compute_nodes().items())
    assert dict(again.services().items()) == dict(back.services().items())


def test_model_root_to_snapshot_is_exact_for_a_collector_built_model() -> None:
    root = ModelRoot()
    n = element.ComputeNode(uuid="11111111-2222-4333-8444-555555555555", hostname="cmp1", status="disabled",
                            disabled_reason="maintenance", state="down", memory=4096, memory_mb_reserved=512,
                            disk=100, disk_gb_reserved=1, vcpus=8, vcpu_reserved=1, memory_ratio=1.5, vcpu_ratio=4.0,
                            disk_ratio=1.0)
    i = element.Instance(uuid="aaaaaaaa-2222-4333-8444-555555555555", name="vm1", state="stopped", memory=512,
                         disk=2, vcpus=1, metadata={"optimize": "true"}, project_id="ab12cd34ef56ab12cd34ef56ab12cd34",
                         locked=True, host="cmp1", hypervisor_hostname="cmp1.example.org",
                         created="2026-02-09T18:55:13Z", flavor_extra_specs={"hw:cpu_policy": "dedicated"})
    root.add_node(n)
    root.add_instance(i)
    root.map_instance(i, n)
    model = from_model_root(root)
    assert model.compute_node("cmp1.example.org").host == "cmp1"
    assert model.node_status("cmp1.example.org").disabled_reason == "maintenance"
    assert model.instance(i.uuid).created_at == 1_770_663_313_000_000
    assert ModelRoot.is_isomorphic(to_model_root(model, extended=True), root)


# ---------------------------------------------------------------------------
# Watcher's XML scenarios
# ---------------------------------------------------------------------------

def _complete(root: Any) -> Any:
    """Watcher's own reading of a scenario, with what a collector always sets filled in as
    the importer documents (reserved 0, ratios 1.0, metadata {}, host from the node, JSON
    text for non-string metadata; the file's watcher_exclude is kept)."""
    for n in root.get_all_compute_nodes().values():
        for f, v in (("vcpu_reserved", 0), ("memory_mb_reserved", 0), ("disk_gb_reserved", 0),
                     ("vcpu_ratio", 1.0), ("memory_ratio", 1.0), ("disk_ratio", 1.0)):
            if not n.obj_attr_is_set(f):
                setattr(n, f, v)
        members = root.get_node_instances(n)
        name = next((i.hypervisor_hostname for i in members if i.obj_attr_is_set("hypervisor_hostname")),
                    n.hostname)
        for i in members:
            if not i.obj_attr_is_set("host"):
                i.host = n.hostname
            if not i.obj_attr_is_set("hypervisor_hostname"):
                i.hypervisor_hostname = name
    for i in root.get_all_instances().values():
        meta = i.metadata if i.obj_attr_is_set("metadata") else {}
        i.metadata = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}
    return root


@pytest.mark.parametrize("path", COMPUTE_SCENARIOS, ids=lambda p: p.name)
def test_watcher_scenarios_round_trip(path: Path) -> None:
    model = read_xml_file(path)
    exported = model_to_xml(model)
    assert model_to_xml(xml_to_model(exported)) == exported  # a fixed point
    theirs = _complete(ModelRoot.from_xml(path.read_text()))
    ours = ModelRoot.from_xml(exported)
    assert ModelRoot.is_isomorphic(theirs, ours)
    assert len(ours.get_all_instances()) == len(theirs.get_all_instances()) > 0 or "no_instance" in path.name


@SETTINGS
@given(clouds())
def test_exported_xml_reads_back_in_watcher(model: ClusterModel) -> None:
    exported = model_to_xml(model)
    read = ModelRoot.from_xml(exported)  # Watcher's own reader
    assert seen(read, drop_none=True) == seen(to_model_root(model, order="uuid", unplaced=True, extended=True),
                                               drop_none=True)
    assert model_to_xml(xml_to_model(exported)) == exported


def test_bad_xml_is_refused_clearly() -> None:
    with pytest.raises(WatcherXmlError, match="not XML"):
        xml_to_model("<ModelRoot><oops")
    with pytest.raises(WatcherXmlError, match="expected <ModelRoot>"):
        xml_to_model("<Other/>")
    with pytest.raises(WatcherXmlError, match="only compute scenarios"):
        read_xml_file(SCENARIOS / "storage_scenario_1.xml")
    with pytest.raises(WatcherXmlError, match="Watcher could not read it"):
        xml_to_model('<ModelRoot><ComputeNode uuid="x" vcpus="-3"/></ModelRoot>')
    with pytest.raises(WatcherXmlError, match="missing.xml"):
        read_xml_file(SCENARIOS / "missing.xml")


def test_without_watcher_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "projections.watcher.elements", None)
    model = from_entities([], [], [])
    with pytest.raises(WatcherMissing, match=r"pip install 'eventmodel\[watcher\]'"):
        WatcherView(model)


def test_watchers_pre_execute_builds_the_xml_only_when_its_logger_would_emit_it(monkeypatch) -> None:
    """Issue 16 finding 5: ``BaseStrategy._pre_execute`` passes ``to_string()`` to
    ``LOG.debug`` on every audit; the view builds it only at DEBUG."""
    import logging

    from watcher.common import utils
    from watcher.decision_engine.strategy import strategies

    nodes = [ComputeNode(name="b0", version=1, host="b0", uuid="u0", vcpus=8, memory_mb=8192, disk_gb=80)]
    view = WatcherView(from_entities([], nodes, []))
    built: list[int] = []
    real = WatcherView.to_xml
    monkeypatch.setattr(WatcherView, "to_xml", lambda self: built.append(1) or real(self))
    strategy = strategies.NodeResourceConsolidation(config=utils.Struct(datasources=None))
    strategy._compute_model = view
    base_log = logging.getLogger("watcher.decision_engine.strategy.strategies.base")
    old = base_log.level
    try:
        base_log.setLevel(logging.INFO)
        strategy._pre_execute()
        assert built == []
        xml = view.to_string()  # anyone else who asks gets the XML
        assert built == [1] and xml.startswith("<ModelRoot")
        base_log.setLevel(logging.DEBUG)
        built.clear()
        strategy._pre_execute()
        assert built == [1]
    finally:
        base_log.setLevel(old)
