"""What an audit scope filters on: aggregates, zones, node status, metadata — through the
fold, the model's joins and the export file."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log.base import Position, Record
from eventmodel.sources.nova import NovaNormalizer
from projections.export import FORMAT, export_snapshot, from_entities, load_snapshot, to_document
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState

FLAVOR = ev.Flavor("m1", 2, 2048, 20, extra_specs={"hw:cpu_policy": "dedicated"})


def _records(payloads: list[object]) -> list[Record]:
    out = []
    for i, p in enumerate(payloads):
        env = ev.envelope(p, source="test", message_id=str(i), occurred_at=i, recorded_at=i)
        out.append(Record(0, i, env))
    return out


def _model(payloads: list[object]) -> ClusterModel:
    return ClusterModel(fold(ClusterState.empty(1), _records(payloads)))


def _agg(uuid: str, name: str, hosts: tuple[str, ...], zone: str | None = None, **meta: str) -> ev.Aggregate:
    md = dict(meta)
    if zone:
        md["availability_zone"] = zone
    return ev.Aggregate(uuid, 0, 1, name, zone, hosts, md)


def test_aggregate_notifications_fold_in_log_order(samples_dir: Path) -> None:
    n = NovaNormalizer()
    names = ["create", "add_host", "update_metadata", "update_prop", "remove_host"]
    envs = [n.normalize((samples_dir / f"aggregate-{a}-end.json").read_bytes(), recorded_at=i + 1).events[0]
            for i, a in enumerate(names)]
    state = ClusterState.empty(1)
    for i, env in enumerate(envs):
        state = fold(state, [Record(0, i, env)])
    (agg,) = ClusterModel(state).aggregates().values()
    # the last record wins (every aggregate record has the lowest version)
    assert agg == envs[-1].payload.aggregate
    upto_prop = ClusterModel(fold(ClusterState.empty(1), [Record(0, i, e) for i, e in enumerate(envs[:4])]))
    assert [a.name for a in upto_prop.aggregates().values()] == ["my-new-aggregate"]
    after_add = ClusterModel(fold(ClusterState.empty(1), [Record(0, i, e) for i, e in enumerate(envs[:2])]))
    assert [a.name for a in after_add.host_aggregates("compute")] == ["my-aggregate"]
    deleted = n.normalize((samples_dir / "aggregate-delete-end.json").read_bytes(), recorded_at=9).events[0]
    state = fold(state, [Record(0, len(envs), deleted)])
    assert len(ClusterModel(state).aggregates()) == 0
    # a duplicate of an earlier change at any distance changes nothing
    assert fold(state, [Record(0, len(envs) + 1, envs[1])]).table(ev.AGGREGATE) == state.table(ev.AGGREGATE)


def test_a_sync_reconciles_aggregates_it_lists() -> None:
    a, b = _agg("a", "zone1", ("h1",), "az1"), _agg("b", "ssd", ("h1", "h2"), ssd="true")
    sid = "s1"
    model = _model([
        ev.AggregateChanged(a), ev.AggregateChanged(b),
        ev.SnapshotStarted(sid, ev.KINDS, 1), ev.AggregateObserved(sid, _agg("a", "zone1", ("h1", "h3"), "az1")),
        ev.SnapshotCompleted(sid, {}, 0),
    ])
    assert list(model.aggregates()) == ["a"] and model.aggregates()["a"].hosts == ("h1", "h3")
    # a sync whose scope has no aggregates (an older reader) leaves them alone
    kept = _model([ev.AggregateChanged(b), ev.SnapshotStarted("s2", (ev.INSTANCE, ev.NODE, ev.SERVICE), 1),
                   ev.SnapshotCompleted("s2", {}, 0)])
    assert list(kept.aggregates()) == ["b"]


def test_node_status_prefers_the_service_and_finds_the_zone() -> None:
    node = ev.ComputeNode("n1", 0, host="h1", vcpus=8, disabled=False)
    svc = ev.ComputeService("h1", "nova-compute", 5, disabled=True, disabled_reason="maint", availability_zone=None)
    m = _model([ev.ComputeNodeObserved("x", node), ev.ComputeServiceChanged(svc),
                ev.AggregateChanged(_agg("a", "zone1", ("h1",), "az1")),
                ev.AggregateChanged(_agg("b", "fast", ("h1",), ssd="true"))])
    st_ = m.node_status("n1")
    assert (st_.disabled, st_.disabled_reason, st_.status, st_.zone, st_.aggregates) == (
        True, "maint", "disabled", "az1", ("fast", "zone1"))
    forced = _model([ev.ComputeNodeObserved("x", node),
                     ev.ComputeServiceChanged(ev.ComputeService("h1", "nova-compute", 5, forced_down=True, up=False))])
    assert forced.node_status("n1").up is False
    alone = _model([ev.ComputeNodeObserved("x", ev.ComputeNode("n2", 0, host="h9", disabled=True, disabled_reason="r"))])
    assert (alone.node_status("n2").disabled, alone.node_status("n2").zone) == (True, None)


texts = st.text("abcxyz:-_ ", max_size=6)
dicts = st.dictionaries(texts, texts, max_size=3)


@st.composite
def models(draw: st.DrawFn) -> ClusterModel:
    hosts = draw(st.lists(st.sampled_from(["h1", "h2", "h3", "h4"]), unique=True, min_size=1))
    nodes = [ev.ComputeNode(f"{h}.node", 0, host=h, uuid=f"rp-{h}", vcpus=draw(st.integers(1, 64)),
                            disabled=draw(st.booleans()), disabled_reason=draw(st.none() | texts)) for h in hosts]
    services = [ev.ComputeService(h, "nova-compute", draw(st.integers(0, 10**15)), disabled=draw(st.booleans()),
                                  availability_zone=draw(st.none() | texts))
                for h in hosts if draw(st.booleans())]
    instances = [ev.Instance(f"00000000-0000-0000-0000-{i:012d}", draw(st.integers(0, 10**15)), h, f"{h}.node",
                             "active", ev.Flavor("f", 1, 512, 1, extra_specs=draw(dicts)), metadata=draw(dicts),
                             created_at=draw(st.none() | st.integers(0, 10**15)))
                 for i, h in enumerate(draw(st.lists(st.sampled_from(hosts), max_size=6)))]
    aggs = [ev.Aggregate(f"agg{i}", 0, i, f"name{i}", z, tuple(sorted(set(hs))),
                         {**draw(dicts), **({"availability_zone": z} if z else {})})
            for i, (z, hs) in enumerate(draw(st.lists(st.tuples(st.none() | texts.filter(bool),
                                                              st.lists(st.sampled_from(hosts))), max_size=3)))]
    return from_entities(instances, nodes, services, aggs, position=Position((7,)), recorded_at=10**15)


@settings(max_examples=60, deadline=None)
@given(models())
def test_export_round_trips_every_field(tmp_path_factory, model: ClusterModel) -> None:
    path = tmp_path_factory.mktemp("x") / "snap.json"
    export_snapshot(model, path, exported_at=10**15)
    loaded = load_snapshot(path)
    assert dict(loaded.instances()) == dict(model.instances())
    assert dict(loaded.aggregates()) == dict(model.aggregates())
    assert dict(loaded.services()) == dict(model.services())
    for name in model.compute_nodes():
        assert loaded.node_status(name) == model.node_status(name)
    # deterministic: the same model and time give the same bytes
    again = tmp_path_factory.mktemp("y") / "snap.json"
    assert export_snapshot(loaded, again, exported_at=10**15).read_bytes() == path.read_bytes()


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    inst = ev.Instance("u1", 5, "h1", "n1", "active", ev.Flavor("f", 1, 512, 1))
    doc = to_document(from_entities([inst], [ev.ComputeNode("n1", 0, host="h1")], []))
    old = {"format": FORMAT, "version": 1, "position": doc["position"],
           "compute_nodes": [{"name": "n1", "version": 0, "host": "h1"}],
           "instances": [{"uuid": "u1", "version": 5, "host": "h1", "node": "n1", "vm_state": "active",
                          "flavor": {"name": "f", "vcpus": 1, "memory_mb": 512, "root_gb": 1}}]}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    loaded = load_snapshot(path)
    assert loaded.instance("u1") == inst and len(loaded.aggregates()) == 0
