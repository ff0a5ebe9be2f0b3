"""The StorageModelRoot- and BaremetalModelRoot-compatible views, their conversions and
Watcher's storage/baremetal XML, checked against Watcher's own models (ADR 0019)."""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

warnings.filterwarnings("ignore", category=DeprecationWarning)

from watcher.common import exception
from watcher.common import utils
from watcher.decision_engine.model import element
from watcher.decision_engine.model.model_root import BaremetalModelRoot, StorageModelRoot
from watcher.decision_engine.scope.baremetal import BaremetalScope
from watcher.decision_engine.scope.storage import StorageScope

from projections.watcher import storage as storage_mod
from projections.watcher.baremetal import BaremetalView
from projections.watcher.storage import StorageView, created_text, storage_index
from projections.watcher.storage_convert import (
    baremetal_xml_to_model, from_baremetal_model_root, from_storage_model_root, read_storage_xml_file,
    storage_xml_to_model, to_baremetal_model_root, to_storage_model_root,
)
from projections.watcher.storage_xml import StorageXmlError
from tests.fixtures.storage import PROJECTS, T0, baremetal_cluster, storage_cluster

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "watcher-scenarios"


def _fields(el: Any) -> dict[str, Any]:
    return {f: getattr(el, f) for f in el.fields if el.obj_attr_is_set(f)}


def _shape(m: Any) -> dict[str, Any]:
    """Everything a strategy can read from a storage model, in its order."""
    nodes = m.get_all_storage_nodes()
    vols = m.get_all_volumes()
    out: dict[str, Any] = {
        "nodes": [(k, _fields(n)) for k, n in nodes.items()],
        "volumes": [(k, _fields(v)) for k, v in vols.items()],
        "node_pools": {k: [(p.name, _fields(p)) for p in m.get_node_pools(n)] for k, n in nodes.items()},
        "xml": m.to_xml(),
    }
    pools = {p.name: p for ps in (m.get_node_pools(n) for n in nodes.values()) for p in ps}
    out["pool_volumes"] = {k: [v.uuid for v in m.get_pool_volumes(p)] for k, p in pools.items()}
    where = {}
    for k, v in vols.items():
        try:
            where[k] = m.get_pool_by_volume(v).name
        except exception.PoolNotFound:
            where[k] = None
    out["pool_of"] = where
    return out


# ---------------------------------------------------------------------------
# The view against Watcher's StorageModelRoot of the same model
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_view_reads_as_the_storage_model_root_of_the_same_model(seed: int) -> None:
    model = storage_cluster(seed)
    view, root = StorageView(model), to_storage_model_root(model)
    assert _shape(view) == _shape(root)
    assert view.to_xml() == root.to_xml()  # byte for byte, Watcher's own to_xml
    assert view.to_string() == root.to_string()
    # elements are Watcher's classes and compare equal to Watcher's
    for k, v in root.get_all_volumes().items():
        mine = view.get_volume_by_uuid(k)
        assert isinstance(mine, element.Volume) and type(mine).__name__ == "Volume" and mine == v
    for k, n in root.get_all_storage_nodes().items():
        assert view.get_node_by_name(k) == n and type(view.get_node_by_name(k)) is element.StorageNode
    for n in root.get_all_storage_nodes().values():
        for p in root.get_node_pools(n):
            assert view.get_pool_by_pool_name(p.name) == p
            assert type(view.get_pool_by_pool_name(p.name)) is element.Pool
    assert len(view.get_all_volumes()) == len(model.volumes())


def test_field_values_and_the_differences_from_watchers_collector() -> None:
    model = storage_cluster(0)
    view = StorageView(model)
    node = view.get_node_by_name("st1@be1")
    assert (node.status, node.state, node.zone) == ("disabled", "up", "az1")
    assert view.get_node_by_name("st2@be2").state == "down"
    # every type selecting the backend, private ones too (Watcher's collector: public only)
    assert node.volume_type == ["gold1", "private1"]
    pool = view.get_pool_by_pool_name("st0@be0#pool0")
    assert (pool.total_capacity_gb, pool.free_capacity_gb, pool.provisioned_capacity_gb) == (1000, 400, 600)
    assert (pool.total_volumes, pool.virtual_free) == (4, 350)
    assert view.get_pool_by_pool_name("st0@be0#pool1").total_volumes == 0
    for uuid, v in model.volumes().items():
        el = view.get_volume_by_uuid(uuid)
        # type name from the type table when only the id is known
        assert el.volume_type == f"gold{v.volume_type_id[1]}"
        assert el.bootable is v.bootable  # real flag (Watcher's collector: True for every volume)
        assert el.host == (v.host or "")
        assert el.name == v.name and el.size == v.size_gb
        assert el.project_id == v.project_id  # "" when unknown (set past the UUID field)
        if v.created_at is not None:
            assert el.created_at == created_text(v.created_at)
    assert created_text(T0) == "2023-11-14T22:13:20.000000"


def test_unbounded_pool_capacity_is_zero_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    model = storage_cluster(0)
    with caplog.at_level(logging.WARNING, logger="projections.watcher.storage"):
        view = StorageView(model)
        pool = view.get_pool_by_pool_name("st2@be2#pool1")
    assert (pool.total_capacity_gb, pool.free_capacity_gb, pool.virtual_free) == (0, 0, 0)
    assert "st2@be2#pool1" in caplog.text and "total_capacity_gb infinite" in caplog.text
    assert "virtual_free -3.0" in caplog.text


def test_defined_volume_order_is_cinders_listing_order() -> None:
    model = storage_cluster(1)
    order = list(StorageView(model).get_all_volumes())
    vols = model.volumes()
    keys = [(vols[u].created_at if vols[u].created_at is not None else -1, u) for u in order]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by uuid descending, no time last
    assert any(vols[u].created_at is None for u in order)


def test_lookups_and_watchers_exceptions() -> None:
    model = storage_cluster(0)
    for m in (StorageView(model), to_storage_model_root(model)):
        assert m.get_node_by_name("st0@be0#pool1").host == "st0@be0"  # '#…' dropped
        assert m.get_node_by_pool_name("st0@be0#pool1").host == "st0@be0"
        with pytest.raises(exception.StorageNodeNotFound):
            m.get_node_by_name("nope@x")
        with pytest.raises(exception.PoolNotFound):
            m.get_pool_by_pool_name("nope@x#p")
        with pytest.raises(exception.VolumeNotFound):
            m.get_volume_by_uuid("nope")
        with pytest.raises(exception.StorageNodeNotFound):
            m.get_node_by_pool_name("gone@old#p")  # a pool of no known node: unmapped
        with pytest.raises(exception.IllegalArgumentException):
            m.add_volume(element.Pool(name="x"))
        with pytest.raises(exception.IllegalArgumentException):
            m.get_node_pools(element.Volume(uuid="x"))
        assert m.get_pool_by_pool_name("gone@old#p").name == "gone@old#p"
        assert bool(m) and not m.stale


def test_stale_model_gives_a_false_view() -> None:
    model = attrs.evolve(storage_cluster(0), log_problem="records deleted")
    view = StorageView(model)
    assert view.stale and not view and view.stale_reason == "records deleted"
    root = to_storage_model_root(model)
    assert root.stale and not root
    assert BaremetalView(model).stale and not BaremetalView(model)


def test_index_is_built_once_per_model_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    model = storage_cluster(2, volumes=60)
    calls = []
    real = storage_mod.storage_index

    def counting(m: Any, order: Any = "collector") -> Any:
        calls.append(m)
        return real(m, order)

    monkeypatch.setattr(storage_mod, "storage_index", counting)
    view = StorageView(model)
    for _ in range(3):
        for p in view.get_all_pools().values():
            view.get_pool_volumes(p)
    assert len(calls) == 1
    other = StorageView(model, index=view.index)
    assert other.get_all_volumes().keys() == view.get_all_volumes().keys()
    assert len(calls) == 1


# ---------------------------------------------------------------------------
# Copy-on-write what-ifs: the same operations on the view and on StorageModelRoot
# ---------------------------------------------------------------------------

OPS = ("remove_volume", "remove_pool", "remove_node", "add_volume", "add_pool", "add_node", "map_volume",
       "unmap_volume", "map_pool", "unmap_pool", "readd_volume")


def _apply(m: Any, op: str, pick: int) -> str:
    """One operation on ``m``; returns what happened (the exception's type if it failed)."""
    vols = list(m.get_all_volumes().values())
    nodes = list(m.get_all_storage_nodes().values())
    pools = [m.get_pool_by_pool_name(n) for n in ("st0@be0#pool0", "st0@be0#pool1", "st1@be1#pool0",
                                                  "st2@be2#pool1", "gone@old#p", "new@x#p")
             if _has_pool(m, n)]
    try:
        if op == "remove_volume" and vols:
            m.remove_volume(vols[pick % len(vols)])
        elif op == "remove_pool" and pools:
            m.remove_pool(pools[pick % len(pools)])
        elif op == "remove_node" and nodes:
            m.remove_node(nodes[pick % len(nodes)])
        elif op == "add_volume":
            m.add_volume(element.Volume(uuid=f"new-{pick}", size=pick, name="n", host="new@x#p",
                                        volume_type="t", project_id=PROJECTS[0], metadata={}, attachments=[],
                                        multiattach=False, bootable=False, snapshot_id=None, created_at="c"))
        elif op == "add_pool":
            m.add_pool(element.Pool(name="new@x#p", total_volumes=0, total_capacity_gb=1, free_capacity_gb=1,
                                    provisioned_capacity_gb=0, allocated_capacity_gb=0))
        elif op == "add_node":
            m.add_node(element.StorageNode(host="new@x", zone="z", volume_type=["t"]))
        elif op == "map_volume" and vols and pools:
            m.map_volume(vols[pick % len(vols)].uuid, pools[pick % len(pools)].name)
        elif op == "unmap_volume" and vols and pools:
            m.unmap_volume(vols[pick % len(vols)], pools[pick % len(pools)])
        elif op == "map_pool" and pools and nodes:
            m.map_pool(pools[pick % len(pools)], nodes[pick % len(nodes)].host)
        elif op == "unmap_pool" and pools and nodes:
            m.unmap_pool(pools[pick % len(pools)].name, nodes[pick % len(nodes)])
        elif op == "readd_volume" and vols:
            v = vols[pick % len(vols)]
            m.remove_volume(v)
            m.add_volume(v)
    except Exception as exc:  # noqa: BLE001 - compared between both models
        return type(exc).__name__
    return "ok"


def _has_pool(m: Any, name: str) -> bool:
    try:
        m.get_pool_by_pool_name(name)
        return True
    except exception.PoolNotFound:
        return False


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50)), max_size=12))
def test_what_ifs_act_as_on_storage_model_root_and_never_reach_the_projection(
        seed: int, ops: list[tuple[str, int]]) -> None:
    logging.getLogger("watcher").setLevel(logging.CRITICAL)  # Watcher logs every NotFound with a traceback
    model = storage_cluster(seed, volumes=12)
    before = StorageView(model).to_xml()
    view, root = StorageView(model), to_storage_model_root(model)
    for op, pick in ops:
        assert _apply(view, op, pick) == _apply(root, op, pick), (op, pick)
        assert _shape(view) == _shape(root), (op, pick)
    assert StorageView(model).to_xml() == before
    assert to_storage_model_root(model).to_xml() == before


def test_copies_are_independent() -> None:
    model = storage_cluster(0)
    view = StorageView(model)
    twin = copy.deepcopy(view)
    vol = next(iter(view.get_all_volumes().values()))
    view.remove_volume(vol)
    assert vol.uuid in twin.get_all_volumes() and vol.uuid not in view.get_all_volumes()
    twin.get_volume_by_uuid(vol.uuid).status = "error"
    assert StorageView(model).get_volume_by_uuid(vol.uuid).status != "error"


def _scope_handler(cls: Any, scope: Any) -> Any:
    handler = cls.__new__(cls)  # without its Cinder client: exclude rules need none
    handler.scope = scope
    handler.config = utils.Struct()
    return handler


def test_watchers_storage_scope_excludes_on_the_view_as_on_the_root() -> None:
    model = storage_cluster(1)
    vols = sorted(model.volumes())
    scope = [{"storage": [{"exclude": [
        {"storage_pools": [{"name": "st0@be0#pool1"}]},
        {"volumes": [{"uuid": vols[3]}]},
        {"projects": [{"uuid": PROJECTS[1]}]},
    ]}]}]
    view = _scope_handler(StorageScope, scope).get_scoped_model(StorageView(model))
    root = _scope_handler(StorageScope, scope).get_scoped_model(to_storage_model_root(model))
    assert _shape(view) == _shape(root)
    assert len(view.get_all_volumes()) < len(model.volumes())
    assert len(StorageView(model).get_all_volumes()) == len(model.volumes())


# ---------------------------------------------------------------------------
# Conversions and XML, both ways
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 3])
def test_conversions_both_ways(seed: int) -> None:
    model = storage_cluster(seed, unbounded=False)
    root = to_storage_model_root(model)
    back = from_storage_model_root(root)
    assert _shape(StorageView(back)) == _shape(root)
    again = to_storage_model_root(back)
    assert StorageModelRoot.is_isomorphic(root, again)
    assert _shape(again) == _shape(root)


def test_xml_both_ways() -> None:
    model = storage_cluster(2, unbounded=False)
    text = StorageView(model).to_xml()
    back = storage_xml_to_model(text)
    assert StorageView(back).to_xml() == text
    # the file's order is kept: shuffle the document, the view lists it as Watcher would
    assert list(StorageView(back).get_all_volumes()) == \
        [v.get("uuid") for v in __import__("lxml.etree").etree.fromstring(text.encode()).iter("Volume")]


def test_watchers_storage_scenario_imports_in_its_order_and_mapping() -> None:
    path = SCENARIOS / "storage_scenario_1.xml"
    theirs = StorageModelRoot.from_xml(path.read_bytes())
    model = read_storage_xml_file(path)
    view = StorageView(model)
    assert view.order == "given"
    mine, ref = _shape(view), _shape(theirs)
    assert [k for k, _ in mine["volumes"]] == [k for k, _ in ref["volumes"]]
    assert mine["pool_of"] == ref["pool_of"]  # the root-level volume stays unmapped, host notwithstanding
    assert mine["pool_of"]["4d1c952d-95d0-4aac-82aa-c3cb509af9f3"] is None
    assert mine["pool_volumes"] == ref["pool_volumes"]
    assert mine["node_pools"] == ref["node_pools"]
    assert mine["nodes"] == ref["nodes"]
    # volumes: equal but for what the file means and Watcher's reader garbles
    for (k, a), (_, b) in zip(mine["volumes"], ref["volumes"], strict=True):
        assert (a["bootable"], b["bootable"]) == (False, True)  # bootable="false": Watcher reads True
        assert a["metadata"] == {"readonly": "false", "attached_mode": "rw"}
        assert a["created_at"].startswith(b["created_at"])
        same = {f: v for f, v in a.items() if f not in ("bootable", "metadata", "created_at")}
        assert same == {f: b[f] for f in same}, k
    # a view of the import and the StorageModelRoot converted from it agree byte for byte
    assert view.to_xml() == to_storage_model_root(model).to_xml()


def test_bad_storage_files_are_refused_clearly() -> None:
    with pytest.raises(StorageXmlError, match="not XML"):
        storage_xml_to_model(b"<ModelRoot>", source="f.xml")
    with pytest.raises(StorageXmlError, match="not a storage scenario"):
        storage_xml_to_model((SCENARIOS / "scenario_1.xml").read_bytes())
    with pytest.raises(StorageXmlError, match="size"):
        storage_xml_to_model(b'<ModelRoot><Volume uuid="a" size="big"/></ModelRoot>')
    with pytest.raises(StorageXmlError, match="under pool"):
        storage_xml_to_model(b'<ModelRoot><StorageNode host="h@b"><Pool name="h@b#p">'
                             b'<Volume uuid="a" host="x@y#z"/></Pool></StorageNode></ModelRoot>')
    with pytest.raises(StorageXmlError, match="No such file"):
        read_storage_xml_file("/nonexistent/storage.xml")


# ---------------------------------------------------------------------------
# Baremetal
# ---------------------------------------------------------------------------

def test_baremetal_view_reads_as_the_baremetal_model_root() -> None:
    model = baremetal_cluster(7)
    view, root = BaremetalView(model), to_baremetal_model_root(model)
    assert view.to_xml() == root.to_xml()
    assert [(k, _fields(n)) for k, n in view.get_all_ironic_nodes().items()] == \
        [(k, _fields(n)) for k, n in root.get_all_ironic_nodes().items()]
    for u, n in model.baremetal_nodes().items():
        el = view.get_node_by_uuid(u)
        assert el == root.get_node_by_uuid(u) and type(el) is element.IronicNode
        assert el.maintenance_reason == (n.maintenance_reason or "")  # None is "" (Watcher refuses None)
        assert el.extra == n.extra  # verbatim, nested values too
        assert el.maintenance is n.maintenance
    with pytest.raises(exception.IronicNodeNotFound):
        view.get_node_by_uuid("nope")
    # the audit scope's exclude: copy-on-write
    victim = sorted(model.baremetal_nodes())[2]
    scope = [{"baremetal": [{"exclude": [{"ironic_nodes": [{"uuid": victim}]}]}]}]
    scoped = BaremetalScope(scope, None).get_scoped_model(view)
    BaremetalScope(scope, None).get_scoped_model(root)
    assert victim not in scoped.get_all_ironic_nodes()
    assert scoped.to_xml() == root.to_xml()
    assert victim in BaremetalView(model).get_all_ironic_nodes()
    with pytest.raises(exception.IronicNodeNotFound):
        view.remove_node(element.IronicNode(uuid=victim, power_state="", maintenance=False,
                                            maintenance_reason="", extra={}))


def test_baremetal_conversions_and_watchers_scenario() -> None:
    model = baremetal_cluster(5, seed=3)
    root = to_baremetal_model_root(model)
    back = from_baremetal_model_root(root)
    assert BaremetalView(back).to_xml() == root.to_xml()
    assert list(BaremetalView(back).get_all_ironic_nodes()) == list(root.get_all_ironic_nodes())
    text = (SCENARIOS / "ironic_scenario_1.xml").read_bytes()
    theirs = BaremetalModelRoot.from_xml(text)
    mine = BaremetalView(baremetal_xml_to_model(text))
    assert list(mine.get_all_ironic_nodes()) == list(theirs.get_all_ironic_nodes())
    for u, n in theirs.get_all_ironic_nodes().items():
        el = mine.get_node_by_uuid(u)
        assert el.power_state == n.power_state
        assert (el.maintenance, n.maintenance) == (False, True)  # maintenance="false": Watcher reads True
        assert (el.maintenance_reason, n.maintenance_reason) == ("", "null")
        assert not n.obj_attr_is_set("extra") and el.extra["compute_node_id"] in ("1", "2")
    with pytest.raises(StorageXmlError, match="not a baremetal scenario"):
        baremetal_xml_to_model((SCENARIOS / "storage_scenario_1.xml").read_bytes())


def test_storage_and_baremetal_land_on_a_compute_model() -> None:
    from tests.fixtures.watcher import model_of
    from eventmodel.sim.cloud import SimCloud

    compute = model_of(SimCloud(3, 10, seed=1))
    model = baremetal_cluster(3, base=storage_cluster(0, base=compute))
    assert len(model.instances()) == 10 and len(model.volumes()) == 30 and len(model.baremetal_nodes()) == 3
    imported = storage_xml_to_model((SCENARIOS / "storage_scenario_1.xml").read_bytes(), compute)
    assert len(imported.instances()) == 10 and len(imported.volumes()) == 9
    assert storage_index(imported, "given").volumes[-1] == "4d1c952d-95d0-4aac-82aa-c3cb509af9f3"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(0, 20), st.booleans())
def test_xml_export_import_round_trip(seed: int, volumes: int, unbounded: bool) -> None:
    """Import of the export is the same model as Watcher shows it (byte-identical export),
    for any cluster, unusable capacities included (shown, and so re-imported, as 0)."""
    model = storage_cluster(seed, volumes=volumes, unbounded=unbounded)
    text = StorageView(model).to_xml()
    assert to_storage_model_root(model).to_xml() == text
    again = StorageView(storage_xml_to_model(text)).to_xml()
    assert again == text


def test_a_shuffled_root_converts_in_its_own_order() -> None:
    """A StorageModelRoot filled in another order converts to a model whose view lists and
    maps as that root does (order="given")."""
    import random

    model = storage_cluster(3)
    view = StorageView(model)
    nodes, pools, vols, _ = view.layout()
    rng = random.Random(4)
    rng.shuffle(vols)
    rng.shuffle(pools)
    shuffled = attrs.evolve(model, given_storage_order=(tuple(nodes), tuple(pools), tuple(vols), (), ()))
    root = to_storage_model_root(shuffled, order="given")
    assert list(root.get_all_volumes()) == vols != list(view.get_all_volumes())
    back = from_storage_model_root(root)
    assert _shape(StorageView(back)) == _shape(root)


def pre_execute(view: StorageView) -> str:
    """Named as zone_migration's method that logs the model at DEBUG."""
    return view.to_string()


LOG = logging.getLogger("tests.watcher_storage.pre_execute")


def test_to_string_is_not_built_for_a_debug_line_nobody_reads() -> None:
    view = StorageView(storage_cluster(0))
    LOG.setLevel(logging.INFO)
    assert "not rendered" in pre_execute(view)
    LOG.setLevel(logging.DEBUG)
    assert pre_execute(view) == view.to_xml()
    assert view.to_string() == view.to_xml()


def test_ironic_nodes_link_to_novas_compute_nodes_by_uuid() -> None:
    from eventmodel.events import ComputeNode
    from projections.export import from_entities
    from projections.watcher.baremetal import ironic_compute_nodes

    bare = baremetal_cluster(3)
    uuids = sorted(bare.baremetal_nodes())
    nodes = [ComputeNode(name=uuids[0], version=1, host="ironic-conductor", hypervisor_type="ironic"),
             ComputeNode(name="kvm-1", version=1, host="kvm-1")]
    model = baremetal_cluster(3, base=from_entities([], nodes, []))
    assert ironic_compute_nodes(model) == {uuids[0]: uuids[0]}


def test_views_and_roots_deep_copy_with_unknown_projects() -> None:
    """Watcher deep-copies models (its collectors, strategies' tests): a volume whose
    project is unknown ("") survives it, on the view and on the root."""
    model = storage_cluster(0)
    assert any(not v.project_id for v in model.volumes().values())
    view = StorageView(model)
    view.get_all_volumes()
    for m in (view, to_storage_model_root(model)):
        twin = copy.deepcopy(m)
        assert _shape(twin) == _shape(m)
        assert {v.project_id for v in twin.get_all_volumes().values()} >= {""}
