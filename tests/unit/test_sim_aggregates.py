"""The simulated cloud's aggregates, zones, server metadata, flavor extra specs and node
status: in the ground truth, in the listings and in Nova-format notifications."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.clock import parse_time
from eventmodel.events import LOWEST_VERSION, Aggregate
from eventmodel.sim import DEFAULT_ZONE, Faults, OperationError, SimCloud, diff_truth
from eventmodel.sim.notifications import unwrap

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AGGREGATE_OPS = ("create", "delete", "add_host", "remove_host", "update_metadata", "update_prop")
#: a mix of aggregate operations only (zone moves included)
AGGREGATES_ONLY = {k: 0 for k in (
    "boot", "delete", "live_migrate", "cold_migrate", "resize", "state_away", "state_back", "lock", "unlock",
    "instance_metadata", "service_disable", "service_enable", "service_force_down", "service_force_up",
)} | {"aggregate_zone": 1}  # fmt: skip


def events(msgs: list[bytes]) -> list[dict]:
    return [unwrap(m) for m in msgs]


def data(msg: dict) -> dict:
    return msg["payload"]["nova_object.data"]


def aggregate_from_payload(d: dict) -> Aggregate:
    md = d["metadata"] or {}
    return Aggregate(d["uuid"], LOWEST_VERSION, d["id"], d["name"], md.get("availability_zone") or None,
                     tuple(sorted(d["hosts"] or ())), md)  # fmt: skip


def fold_aggregates(start: dict[str, Aggregate], msgs: list[dict]) -> dict[str, Aggregate]:
    """What aggregate.*.end notifications say, in order (they carry no time)."""
    out = dict(start)
    for m in msgs:
        et = m["event_type"]
        if not (et.startswith("aggregate.") and et.endswith(".end")):
            continue
        agg = aggregate_from_payload(data(m))
        if et == "aggregate.delete.end":
            out.pop(agg.uuid, None)
        else:
            out[agg.uuid] = agg
    return out


def zones_from_aggregates(aggs: dict[str, Aggregate]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a in aggs.values():
        if a.availability_zone:
            for h in a.hosts:
                out.setdefault(h, set()).add(a.availability_zone)
    return out


# ---------------------------------------------------------------------------
# The cloud as it starts
# ---------------------------------------------------------------------------


def test_initial_aggregates_zones_and_metadata():
    sim = SimCloud(10, 200, seed=4)
    truth = sim.truth()
    aggs = sim.list_aggregates()
    assert aggs == sorted(truth.aggregates.values(), key=lambda a: a.id)
    assert all(a.version == LOWEST_VERSION and isinstance(a.id, int) for a in aggs)
    by_name = {a.name: a for a in aggs}
    assert by_name["zone-az1"].availability_zone == "az1" == by_name["zone-az1"].metadata["availability_zone"]
    assert by_name["zone-az2"].availability_zone == "az2"
    assert by_name["ssd-hosts"].availability_zone is None and by_name["ssd-hosts"].metadata == {"ssd": "true"}
    assert by_name["zone-az1"].hosts and by_name["ssd-hosts"].hosts
    zones = zones_from_aggregates(truth.aggregates)
    assert any(h not in zones for h in sim.hosts), "some hosts stay in the default zone"
    for host, svc in truth.services.items():
        want = zones.get(host, {DEFAULT_ZONE})
        assert len(want) == 1 and svc.availability_zone == next(iter(want)) == sim.zone_of(host)
    for inst in truth.instances.values():
        assert inst.availability_zone == truth.services[inst.host].availability_zone
        assert inst.created_at is not None and inst.created_at % 1_000_000 == 0
    with_md = [i for i in truth.instances.values() if i.metadata]
    assert 0 < len(with_md) < len(truth.instances)
    assert {"optimize", "watcher-exclude"} <= {k for i in with_md for k in i.metadata}
    specs = {i.flavor.name: i.flavor.extra_specs for i in truth.instances.values()}
    assert specs.get("c1.dedicated") == {"hw:cpu_policy": "dedicated"}
    assert all(v == {} for k, v in specs.items() if k != "c1.dedicated")


def test_aggregates_do_not_change_with_faults_and_are_deterministic():
    a = SimCloud(6, 40, seed=8, weights={"aggregate_create": 20, "aggregate_add_host": 20, "aggregate_zone": 5})
    b = SimCloud(6, 40, seed=8, weights={"aggregate_create": 20, "aggregate_add_host": 20, "aggregate_zone": 5},
                 faults=Faults.nova_like(drop=0.3))  # fmt: skip
    a.step(150)
    b.step(150)
    assert a.truth().aggregates == b.truth().aggregates
    assert a.truth().services == b.truth().services
    assert a.counters["aggregate_create"] > 0


# ---------------------------------------------------------------------------
# Explicit aggregate operations and their notifications
# ---------------------------------------------------------------------------


def test_aggregate_lifecycle_emits_nova_payloads(samples_dir: Path):
    sim = SimCloud(4, 10, seed=2)
    host = sim.hosts[1]
    msgs = events(sim.create_aggregate("fast-net", metadata={"sriov": "true"}))
    uuid = sim.last_op.uuid
    assert sim.last_op.kind == "aggregate_create" and sim.last_op.name == "fast-net"
    msgs += events(sim.add_aggregate_host(uuid, host))
    msgs += events(sim.set_aggregate_metadata(uuid, {"sriov": None, "nic": "100g"}))
    msgs += events(sim.rename_aggregate(uuid, "fast-net-b"))
    agg = sim.aggregate(uuid)
    assert (agg.name, agg.hosts, agg.metadata, agg.availability_zone) == ("fast-net-b", (host,), {"nic": "100g"}, None)
    msgs += events(sim.remove_aggregate_host(uuid, host))
    msgs += events(sim.delete_aggregate(uuid))
    assert uuid not in sim.truth().aggregates
    assert [m["event_type"] for m in msgs] == [f"aggregate.{op}.{p}" for op in (
        "create", "add_host", "update_metadata", "update_prop", "remove_host", "delete") for p in ("start", "end")]
    for m in msgs:
        sample = json.loads((samples_dir / f"{m['event_type'].replace('.', '-')}.json").read_text())
        assert m["payload"]["nova_object.name"] == sample["payload"]["nova_object.name"] == "AggregatePayload"
        assert m["payload"]["nova_object.version"] == sample["payload"]["nova_object.version"]
        assert set(data(m)) == set(sample["payload"]["nova_object.data"])
        assert m["publisher_id"].startswith("nova-api:") and m["_context_is_admin"] is True
        assert data(m)["uuid"] == uuid
    start, end = data(msgs[0]), data(msgs[1])
    assert start["id"] is None and start["hosts"] is None  # not in the database yet, as in Nova
    assert end["id"] == agg.id and end["hosts"] == [] and end["metadata"] == {"sriov": "true"}
    assert data(msgs[2])["hosts"] == [] and data(msgs[3])["hosts"] == [host]  # start: before, end: after
    assert data(msgs[5])["metadata"] == {"nic": "100g"}
    assert data(msgs[6])["name"] == "fast-net" and data(msgs[7])["name"] == "fast-net-b"
    assert data(msgs[11])["hosts"] == []
    # a reference fold of the .end payloads gives the truth back
    assert fold_aggregates({}, msgs) == {}


def test_zone_changes_follow_the_aggregates_silently():
    sim = SimCloud(5, 0, seed=3)
    host = next(h for h in sim.hosts if sim.zone_of(h) == DEFAULT_ZONE)
    msgs = events(sim.create_aggregate("rack-9", availability_zone="az9"))
    uuid = sim.last_op.uuid
    assert data(msgs[1])["metadata"] == {"availability_zone": "az9"}
    msgs += events(sim.add_aggregate_host(uuid, host))
    assert sim.zone_of(host) == "az9" == sim.truth().services[host].availability_zone
    # Nova sends no service.update when a host changes zone: only the API shows it
    assert [m for m in msgs if m["event_type"] == "service.update"] == []
    assert [s.availability_zone for s in sim.list_services() if s.host == host] == ["az9"]
    boot = events(sim.boot(host=host))
    booted = sim.last_op.uuid
    assert data(boot[-1])["availability_zone"] == "az9" == sim.instance(booted).availability_zone
    # the zone is the aggregate's availability_zone metadata: renaming it moves the host;
    # an instance keeps the zone it was given when scheduled (Nova does not update it)
    moved = events(sim.set_aggregate_zone(uuid, "az10"))
    assert [m["event_type"] for m in moved] == ["aggregate.update_metadata.start", "aggregate.update_metadata.end"]
    assert sim.zone_of(host) == "az10" and sim.instance(booted).availability_zone == "az9"
    # as Nova's, the service's next service.update does not carry its zone (null: not
    # loaded); the services listing of the API shows the new one
    (upd,) = events(sim.disable_service(host, "maintenance"))
    assert data(upd)["availability_zone"] is None
    assert [s.availability_zone for s in sim.list_services() if s.host == host] == ["az10"]
    events(sim.set_aggregate_zone(uuid, None))
    assert sim.zone_of(host) == DEFAULT_ZONE and sim.aggregate(uuid).availability_zone is None


def test_aggregate_rules_as_in_nova():
    sim = SimCloud(5, 0, seed=1)
    az1 = sim.aggregate_named("zone-az1")
    az2 = sim.aggregate_named("zone-az2")
    h1 = az1.hosts[0]
    with pytest.raises(OperationError, match="zone az1"):
        sim.add_aggregate_host(az2.uuid, h1)  # one zone per host
    with pytest.raises(OperationError, match="already in"):
        sim.add_aggregate_host(az1.uuid, h1)
    with pytest.raises(OperationError, match="not in"):
        sim.remove_aggregate_host(az2.uuid, h1)
    with pytest.raises(OperationError, match="not empty"):
        sim.delete_aggregate(az1.uuid)
    with pytest.raises(OperationError, match="exists"):
        sim.create_aggregate("zone-az2")
    with pytest.raises(OperationError, match="zone needs a name"):
        sim.create_aggregate("x", availability_zone="")
    with pytest.raises(OperationError, match="zone az1"):
        sim.set_aggregate_zone(sim.aggregate_named("ssd-hosts").uuid, "az2")  # it holds a host of az1
    with pytest.raises(OperationError, match="no aggregate"):
        sim.delete_aggregate("0" * 32)
    with pytest.raises(OperationError, match="no compute host"):
        sim.add_aggregate_host(az1.uuid, "ghost")
    # a refused operation changes nothing and sends nothing
    assert sim.counters["notifications"] == 0 and sim.aggregate(az1.uuid) == az1


@FAST
@given(seed=st.integers(0, 10_000), hosts=st.integers(1, 8), steps=st.integers(1, 80))
def test_random_aggregate_operations_keep_the_truth_whole(seed, hosts, steps):
    """Whatever the mix does: one zone per host, services report it, ids and names are
    unique, and the .end notifications folded in order give the truth's aggregates."""
    sim = SimCloud(hosts, 3 * hosts, seed=seed, weights=AGGREGATES_ONLY | {
        "aggregate_create": 2, "aggregate_delete": 1, "aggregate_add_host": 3, "aggregate_remove_host": 2,
        "aggregate_metadata": 2, "aggregate_rename": 1, "aggregate_zone": 2})  # fmt: skip
    start = sim.truth().aggregates
    msgs = events(sim.step(steps))
    truth = sim.truth()
    assert fold_aggregates(start, msgs) == truth.aggregates
    assert [m for m in msgs if not m["event_type"].startswith("aggregate.")] == []
    assert len({a.id for a in truth.aggregates.values()}) == len(truth.aggregates)
    assert len({a.name for a in truth.aggregates.values()}) == len(truth.aggregates)
    zones = zones_from_aggregates(truth.aggregates)
    for host, svc in truth.services.items():
        assert len(zones.get(host, ())) <= 1
        assert svc.availability_zone == next(iter(zones.get(host, {DEFAULT_ZONE})))
    for a in truth.aggregates.values():
        assert a.availability_zone == (a.metadata.get("availability_zone") or None)
        assert a.hosts == tuple(sorted(set(a.hosts))) and set(a.hosts) <= set(sim.hosts)
    ops = sum(sim.counters[f"aggregate_{op}"] for op in AGGREGATE_OPS)
    assert len(msgs) == 2 * ops  # a start and an end each


# ---------------------------------------------------------------------------
# Server metadata, created time, flavor extra specs
# ---------------------------------------------------------------------------


def test_server_metadata_is_one_instance_update_from_the_api():
    sim = SimCloud(3, 10, seed=5)
    inst = next(i for i in sim.truth().instances.values() if not i.metadata)
    (m,) = events(sim.set_metadata(inst.uuid, {"watcher-exclude": "true"}))
    d = data(m)
    now = sim.instance(inst.uuid)
    assert m["event_type"] == "instance.update" and m["publisher_id"].startswith("nova-api:")
    assert d["metadata"] == {"watcher-exclude": "true"} == now.metadata
    assert parse_time(d["updated_at"]) == now.version > inst.version
    assert d["state_update"]["nova_object.data"]["old_state"] == d["state"] == inst.vm_state
    assert parse_time(d["created_at"]) == now.created_at == inst.created_at
    assert attrs.evolve(now, version=inst.version, metadata={}) == inst
    sim.set_metadata(inst.uuid, {"optimize": "true"})
    assert sim.instance(inst.uuid).metadata == {"watcher-exclude": "true", "optimize": "true"}
    (m,) = events(sim.delete_metadata(inst.uuid, "watcher-exclude"))
    assert data(m)["metadata"] == {"optimize": "true"} == sim.instance(inst.uuid).metadata
    with pytest.raises(OperationError, match="no metadata key"):
        sim.delete_metadata(inst.uuid, "watcher-exclude")
    sim.lock(inst.uuid)
    with pytest.raises(OperationError, match="locked"):
        sim.set_metadata(inst.uuid, {"x": "y"})
    sim.set_metadata(inst.uuid, {"x": "y"}, admin=True)
    assert sim.instance(inst.uuid).metadata["x"] == "y"


def test_boot_carries_metadata_created_at_and_extra_specs():
    sim = SimCloud(3, 0, seed=6)
    msgs = events(sim.boot(flavor="c1.dedicated", metadata={"optimize": "true"}))
    inst = sim.instance(sim.last_op.uuid)
    assert inst.created_at is not None and inst.metadata == {"optimize": "true"}
    assert inst.flavor.extra_specs == {"hw:cpu_policy": "dedicated"}
    for m in msgs:
        d = data(m)
        assert d["metadata"] == {"optimize": "true"}
        assert parse_time(d["created_at"]) == inst.created_at
        assert d["flavor"]["nova_object.data"]["extra_specs"] == {"hw:cpu_policy": "dedicated"}
    (listed,) = [i for i in sim.list_servers() if i.uuid == inst.uuid]
    assert listed == inst


def test_random_mix_changes_server_metadata():
    sim = SimCloud(4, 40, seed=9, weights={"instance_metadata": 200})
    before = {u: i.metadata for u, i in sim.truth().instances.items()}
    msgs = events(sim.step(40))
    after = sim.truth().instances
    changed = {u for u, md in before.items() if u in after and after[u].metadata != md}
    assert changed and sim.counters["instance_metadata"] >= len(changed)
    updates = {data(m)["uuid"]: data(m)["metadata"] for m in msgs if m["event_type"] == "instance.update"}
    for u in changed:
        assert updates[u] == after[u].metadata


# ---------------------------------------------------------------------------
# Node status mirrors the service, as Nova's hypervisor listing shows it
# ---------------------------------------------------------------------------


def test_node_status_mirrors_its_service():
    sim = SimCloud(3, 0, seed=2)
    host = sim.hosts[0]
    node = sim.node_of(host)
    sim.disable_service(host, "kernel upgrade")
    n = {x.name: x for x in sim.list_nodes()}[node]
    assert (n.disabled, n.disabled_reason, n.state) == (True, "kernel upgrade", "up")
    sim.force_down(host)
    assert sim.truth().nodes[node].state == "down"
    sim.unforce_down(host)
    sim.enable_service(host)
    n = sim.truth().nodes[node]
    assert (n.disabled, n.disabled_reason, n.state) == (False, None, "up")
    others = [x for x in sim.list_nodes() if x.name != node]
    assert all(not x.disabled and x.state == "up" for x in others)


def test_diff_truth_compares_the_new_fields():
    sim = SimCloud(3, 6, seed=1)
    t = sim.truth()
    inst, svcs, nodes, aggs = dict(t.instances), dict(t.services), dict(t.nodes), dict(t.aggregates)
    assert diff_truth(t, inst, nodes, svcs, aggs) == []
    u = next(iter(inst))
    inst[u] = attrs.evolve(inst[u], metadata={"optimize": "true"}, created_at=None)
    agg = next(iter(aggs))
    aggs[agg] = attrs.evolve(aggs[agg], hosts=(), metadata={})
    host = sim.hosts[0]
    svcs[host] = attrs.evolve(svcs[host], availability_zone="elsewhere")
    diffs = diff_truth(t, inst, nodes, svcs, aggs)
    assert any("metadata differs" in d for d in diffs) and any("created_at differs" in d for d in diffs)
    assert any(d.startswith(f"aggregate {agg}: hosts differs") for d in diffs)
    assert any(d.startswith(f"service {host}/nova-compute: availability_zone differs") for d in diffs)
    assert diff_truth(t, t.instances, nodes, t.services) == []  # aggregates only when given
    # a node's own status counts only where the model lacks its service
    node = sim.node_of(host)
    nodes[node] = attrs.evolve(nodes[node], disabled=True, disabled_reason="x")
    assert diff_truth(t, t.instances, nodes, t.services) == []
    lacking = {k: s for k, s in t.services.items() if k != host}
    assert f"node {node}: disabled differs: truth=False model=True" in diff_truth(t, t.instances, nodes, lacking)
