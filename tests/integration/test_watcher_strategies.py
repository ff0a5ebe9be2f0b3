"""Watcher's real strategies, unmodified, on the view and on Watcher's own ModelRoot.

Each strategy runs twice on the same cluster — once on a :class:`WatcherView` of the
snapshot, once on a ``ModelRoot`` built by Watcher's own constructors (for simulated
clouds) or read by Watcher's own ``ModelRoot.from_xml`` (for Watcher's XML scenarios) —
and the two solutions (actions, efficacy indicators, global efficacy) must be equal.
Metrics-driven strategies read a fixed datasource (tests/fixtures/watcher.py).
"""

from __future__ import annotations

import copy
import random
import warnings
from pathlib import Path
from typing import Any

import attrs
import pytest

from eventmodel.sim.cloud import HostSpec, SimCloud
from projections.export import from_entities
from projections.model import ClusterModel

warnings.filterwarnings("ignore", category=DeprecationWarning)

from watcher.common import utils
from watcher.decision_engine.model.model_root import ModelRoot
from watcher.decision_engine.scope.compute import ComputeScope

from projections.watcher.convert import (
    missing_node_fields, model_to_xml, read_xml_file, to_model_root, xml_to_model,
)
from projections.watcher.view import WatcherView
from tests.fixtures.watcher import FixedMetrics, model_of, run_strategy

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "watcher-scenarios"


def _operated(hosts: int, instances: int, seed: int, ops: int, spec: HostSpec | None = None) -> ClusterModel:
    """A simulated cloud after ``ops`` operations (migrations, resizes, stops, shelves,
    service disables ...), with some services disabled or down."""
    sim = SimCloud(hosts, instances, seed=seed, host_spec=spec)
    sim.step(ops)
    t = sim.truth()
    services = list(t.services.values())
    services = [attrs.evolve(s, disabled=True, disabled_reason="maintenance") if k % 5 == 1 else
                attrs.evolve(s, forced_down=True) if k % 7 == 3 else s for k, s in enumerate(services)]
    return from_entities(list(t.instances.values()), list(t.nodes.values()), services)


CLOUDS = {
    "small-dense": lambda: model_of(SimCloud(6, 110, seed=1, host_spec=HostSpec(vcpus=16, memory_mb=65_536))),
    "sparse-many-hosts": lambda: model_of(SimCloud(40, 60, seed=2)),
    "operated-with-disabled-and-down": lambda: _operated(15, 200, seed=3, ops=400),
    "busy-small-hosts": lambda: _operated(10, 150, seed=4, ops=150, spec=HostSpec(vcpus=24, memory_mb=98_304)),
}


def _maintenance_params(model: ClusterModel) -> list[dict[str, Any]]:
    hosts = sorted({n.host for n in model.compute_nodes().values()})
    if not hosts:
        return []
    busiest = max(hosts, key=lambda h: sum(1 for i in model.instances().values() if i.host == h))
    other = [h for h in hosts if h != busiest]
    return [{"maintenance_node": busiest}, {"maintenance_node": hosts[-1], "disable_live_migration": True}] + \
        ([{"maintenance_node": busiest, "backup_node": other[0]}] if other else [])


CASES = [
    ("host_maintenance", None),
    ("node_resource_consolidation", {"host_choice": "auto"}),
    ("node_resource_consolidation", {"host_choice": "specify"}),
    ("basic", {}),
    ("basic", {"migration_attempts": 2}),
    ("vm_workload_consolidation", {}),
]


@pytest.mark.parametrize("shape", sorted(CLOUDS))
def test_strategies_decide_the_same_on_the_view_as_on_model_root(shape: str) -> None:
    model = CLOUDS[shape]()
    metrics = FixedMetrics()
    decided = 0
    for name, params in CASES:
        for p in _maintenance_params(model) if params is None else [params]:
            on_view = run_strategy(name, WatcherView(model), p, metrics)
            on_root = run_strategy(name, to_model_root(model), p, metrics)
            assert on_view == on_root, (shape, name, p)
            decided += len(on_view.actions)
    assert decided > 0


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("scenario_*.xml")), ids=lambda p: p.name)
def test_strategies_on_watcher_scenarios(path: Path) -> None:
    """Watcher's own scenario, imported; the reference is Watcher reading our export."""
    model = read_xml_file(path)
    theirs = ModelRoot.from_xml(model_to_xml(model))
    for node in theirs.get_all_compute_nodes().values():
        if not node.obj_attr_is_set("disabled_reason"):
            node.disabled_reason = None  # the collector always sets it; XML cannot say None
    metrics = FixedMetrics()
    for name, params in CASES:
        for p in _maintenance_params(model) if params is None else [params]:
            view = WatcherView(model, order="uuid", unplaced=True, extended=True)
            on_view = run_strategy(name, view, p, metrics)
            on_root = run_strategy(name, copy.deepcopy(theirs), p, metrics)
            assert on_view == on_root, (path.name, name, p)


def _scope(model: ClusterModel) -> list[dict[str, Any]]:
    hosts = sorted({n.host for n in model.compute_nodes().values()})
    insts = sorted(model.instances())
    projects = sorted({i.project_id for i in model.instances().values()})
    return [{"compute": [{"exclude": [
        {"compute_nodes": [{"name": hosts[1]}]},
        {"instances": [{"uuid": insts[0]}, {"uuid": insts[5]}]},
        {"projects": [{"uuid": projects[0]}]},
        {"instance_metadata": [{"optimize": "false"}]},
    ]}]}]


def _scope_handler(scope: Any) -> ComputeScope:
    """Watcher's compute audit-scope handler, without its Nova client (exclude rules
    need none)."""
    handler = ComputeScope.__new__(ComputeScope)
    handler.scope = scope
    handler.config = utils.Struct(check_optimize_metadata=True)
    return handler


def test_audit_scope_then_strategy_on_the_view() -> None:
    """Watcher's scope handler removes a node and marks excluded instances on the view
    (copy-on-write) exactly as on ModelRoot, and the strategy after it decides the same."""
    sim = SimCloud(12, 180, seed=9)
    truth = sim.truth()
    instances = [attrs.evolve(i, metadata={"optimize": "false"}) if k % 9 == 0 else i
                 for k, i in enumerate(sorted(truth.instances.values(), key=lambda i: i.uuid))]
    model = from_entities(instances, list(truth.nodes.values()), list(truth.services.values()))
    scope = _scope(model)
    view = _scope_handler(scope).get_scoped_model(WatcherView(model))
    root = _scope_handler(scope).get_scoped_model(to_model_root(model))
    assert view.to_xml() == root.to_xml()
    excluded = [i for i in view.get_all_instances().values() if i.watcher_exclude]
    assert len(view.get_all_compute_nodes()) == 11 and excluded
    assert WatcherView(model).get_all_instances().keys() == to_model_root(model).get_all_instances().keys()
    assert not any(i.watcher_exclude for i in WatcherView(model).get_all_instances().values())
    metrics = FixedMetrics()
    for name, params in [("basic", {}), ("node_resource_consolidation", {"host_choice": "specify"})]:
        assert run_strategy(name, copy.deepcopy(view), params, metrics) == \
            run_strategy(name, copy.deepcopy(root), params, metrics)


def test_order_matters_and_the_view_defines_it() -> None:
    """The same data inserted in another order makes Watcher decide differently; the
    view's order is fixed, so two views of one snapshot always agree."""
    model = model_of(SimCloud(12, 150, seed=5))
    name, params = "node_resource_consolidation", {"host_choice": "specify"}
    reference = run_strategy(name, WatcherView(model), params)
    assert run_strategy(name, WatcherView(model), params) == reference
    by_uuid = run_strategy(name, WatcherView(model, order="uuid"), params)
    assert by_uuid == run_strategy(name, to_model_root(model, order="uuid"), params)
    assert by_uuid.actions != reference.actions


def _shuffled(text: bytes, seed: int) -> bytes:
    """The same scenario with its nodes, and each node's instances, in another order."""
    from lxml import etree

    rng = random.Random(seed)
    root = etree.fromstring(text)
    for parent in [root, *root.iter("ComputeNode")]:
        kids = list(parent)
        rng.shuffle(kids)
        for k in kids:
            parent.remove(k)
        parent.extend(kids)
    return etree.tostring(root)


@pytest.mark.parametrize("seed", [None, 1, 2], ids=lambda s: "file" if s is None else f"shuffled-{s}")
@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("scenario_*.xml")), ids=lambda p: p.name)
def test_a_view_of_an_xml_file_decides_as_model_root_from_xml(path: Path, seed: int | None) -> None:
    """Issue 16 finding 4: a view of a Watcher XML file keeps the file's order (nodes,
    each node's instances, all instances) and its unplaced instances, so every strategy
    decides as on ``ModelRoot.from_xml`` of the same file."""
    text = path.read_bytes() if seed is None else _shuffled(path.read_bytes(), seed)
    root = ModelRoot.from_xml(text)
    for node in root.get_all_compute_nodes().values():
        if not node.obj_attr_is_set("disabled_reason"):
            node.disabled_reason = None  # what the view says for a reason the file does not give
    model = xml_to_model(text)
    view = WatcherView(model)
    assert list(view.get_all_compute_nodes()) == list(root.get_all_compute_nodes())
    assert list(view.get_all_instances()) == list(root.get_all_instances())
    for u, node in root.get_all_compute_nodes().items():
        assert [i.uuid for i in view.get_node_instances(view.get_node_by_uuid(u))] == \
            [i.uuid for i in root.get_node_instances(node)]
    gaps = missing_node_fields(root)
    metrics = FixedMetrics()
    for name, params in CASES:
        for p in _maintenance_params(model) if params is None else [params]:
            on_view = run_strategy(name, WatcherView(model), p, metrics)
            on_root = run_strategy(name, copy.deepcopy(root), p, metrics)
            if on_root.error and "Cannot load" in on_root.error:
                # Watcher fails on the file itself: the import says which fields are missing
                field = on_root.error.split("'")[1]
                assert any(field in fs for fs in gaps.values()), (path.name, on_root.error, gaps)
                continue
            assert on_view == on_root, (path.name, seed, name, p)
