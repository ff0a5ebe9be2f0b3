"""The simulated Ironic: its operations keep the nodes consistent (a deployed node is
active with an instance, maintenance has a reason), nodes are enrolled and deleted as
Ironic does it, its notifications are Ironic's
versioned ones field for field and normalize, through the default normalizer, to the
nodes it holds; they go through the same delivery faults as Nova's, and a cloud without
bare-metal nodes is the cloud it was before."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.sim import Faults, OperationError, SimCloud
from eventmodel.sim.notifications import unwrap
from eventmodel.sources.plugins import CompositeNormalizer

#: ``NodePayload`` 1.17's fields (research notes §5), the ``*_interface`` ones included
NODE_PAYLOAD = {
    "uuid", "name", "power_state", "target_power_state", "provision_state", "target_provision_state",
    "provision_updated_at", "maintenance", "maintenance_reason", "fault", "extra", "instance_uuid", "resource_class",
    "properties", "traits", "created_at", "updated_at", "driver", "conductor_group", "console_enabled", "clean_step",
    "deploy_step", "description", "disable_power_off", "boot_mode", "secure_boot", "inspection_started_at",
    "inspection_finished_at", "last_error", "owner", "lessee", "protected", "protected_reason", "retired",
    "retired_reason", *(f"{i}_interface" for i in ("bios", "boot", "console", "deploy", "firmware", "inspect",
                                                    "management", "network", "power", "raid", "rescue", "storage",
                                                    "vendor")),
}
EXTRA = {"power_set": {"to_power"},
         "provision_set": {"instance_info", "driver_internal_info", "event", "previous_provision_state",
                           "previous_target_provision_state"},
         "maintenance_set": set(), "create": {"chassis_uuid", "instance_info", "driver_info"},
         "delete": {"chassis_uuid", "instance_info", "driver_info"}}
ISOTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def baremetal(raw: list[bytes]) -> list[dict]:
    return [m for m in (unwrap(r) for r in raw) if m["event_type"].startswith("baremetal.")]


def check_nodes(sim: SimCloud) -> None:
    for n in sim.ironic.nodes.values():
        assert (n.provision_state == "active") == (n.instance_uuid is not None), n
        assert n.maintenance == (n.maintenance_reason is not None), n
        row = sim.ironic.rows[n.uuid]
        assert n.version % 1_000_000 == 0 and n.version == (row.updated_at or row.created_at)
        assert (n.power_state is None) == (n.provision_state == "enroll"), n


def test_a_cloud_without_bare_metal_nodes_has_no_ironic_and_the_same_operations() -> None:
    plain, with_bm = SimCloud(3, 20, seed=4), SimCloud(3, 20, seed=4, baremetal=3)
    assert plain.ironic is None and plain.baremetal_truth() == {}
    nova = [m for m in map(unwrap, plain.step(30))]
    mixed = [m for m in map(unwrap, with_bm.step(30)) if not m["event_type"].startswith("baremetal.")]
    assert [m["event_type"] for m in nova] == [m["event_type"] for m in mixed]
    with pytest.raises(ValueError):
        SimCloud(1, 0, baremetal=-1)


def test_the_nodes_the_cloud_starts_with() -> None:
    sim = SimCloud(2, 5, seed=3, baremetal=6, baremetal_churn=0)
    nodes = sim.baremetal_truth()
    assert len(nodes) == 6 and [n.name for n in nodes.values()] == [f"bm-{i:02d}" for i in range(1, 7)]
    check_nodes(sim)
    assert all(n.provision_state in ("available", "manageable") for n in nodes.values())


def test_node_notifications_have_ironics_exact_fields_and_formats() -> None:
    sim = SimCloud(2, 5, seed=5, faults=Faults.kind(), baremetal=4, baremetal_rate=1.0, baremetal_churn=0.2)
    msgs = baremetal(sim.step(80))
    kinds = {m["event_type"] for m in msgs}
    assert {"baremetal.node.power_set.start", "baremetal.node.power_set.end", "baremetal.node.provision_set.start",
            "baremetal.node.provision_set.end", "baremetal.node.maintenance_set.end", "baremetal.node.create.end",
            "baremetal.node.delete.end"} <= kinds
    for m in msgs:
        family = m["event_type"].split(".")[2]
        p = m["payload"]
        assert set(p) == {"ironic_object.name", "ironic_object.namespace", "ironic_object.version",
                          "ironic_object.data"}
        assert p["ironic_object.namespace"] == "ironic"
        assert (p["ironic_object.name"], p["ironic_object.version"]) == {
            "power_set": ("NodeSetPowerStatePayload", "1.17"), "provision_set": ("NodeSetProvisionStatePayload", "1.18"),
            "maintenance_set": ("NodePayload", "1.17"), "create": ("NodeCRUDPayload", "1.15"),
            "delete": ("NodeCRUDPayload", "1.15")}[family]
        data = p["ironic_object.data"]
        assert set(data) == NODE_PAYLOAD | EXTRA[family], set(data) ^ (NODE_PAYLOAD | EXTRA[family])
        assert ISOTIME.match(data["created_at"]) and (data["updated_at"] is None or ISOTIME.match(data["updated_at"]))
        assert m["priority"] == "INFO"
        host = m["publisher_id"].split(".", 1)
        api = family in ("maintenance_set", "create", "delete")
        assert host[0] == ("ironic-api" if api else "ironic-conductor") and host[1]


def test_a_node_deployed_powered_put_in_maintenance_and_undeployed() -> None:
    sim = SimCloud(2, 5, seed=6, faults=Faults.kind(), baremetal=2, baremetal_rate=0, baremetal_churn=0)
    ironic = sim.ironic
    u = next(n.uuid for n in ironic.nodes.values() if n.provision_state == "available")
    raw = sim.baremetal_op("deploy", u, "11111111-2222-4333-8444-555555555555")
    n = ironic.nodes[u]
    assert (n.provision_state, n.power_state, n.instance_uuid) == (
        "active", "power on", "11111111-2222-4333-8444-555555555555")
    with pytest.raises(OperationError):
        sim.baremetal_op("deploy", u, "11111111-2222-4333-8444-555555555556")
    raw += sim.baremetal_op("power", u, False)
    raw += sim.baremetal_op("set_maintenance", u, "BMC firmware upgrade")
    assert ironic.nodes[u].maintenance_reason == "BMC firmware upgrade" and ironic.nodes[u].power_state == "power off"
    raw += sim.baremetal_op("set_maintenance", u, None)
    raw += sim.baremetal_op("undeploy", u)
    assert (ironic.nodes[u].provision_state, ironic.nodes[u].instance_uuid) == ("available", None)
    with pytest.raises(OperationError):
        sim.baremetal_op("reboot", u)
    msgs = baremetal(raw)
    assert len(msgs) == 10
    end = [m for m in msgs if m["event_type"] == "baremetal.node.provision_set.end"][0]["payload"]["ironic_object.data"]
    assert (end["event"], end["previous_provision_state"], end["provision_state"]) == ("deploy", "available", "active")
    power = [m for m in msgs if m["event_type"] == "baremetal.node.power_set.start"][0]["payload"]["ironic_object.data"]
    assert power["to_power"] == power["target_power_state"] == "power off" and power["power_state"] == "power on"
    check_nodes(sim)


def test_the_normalized_notifications_of_a_kind_cloud_fold_to_its_nodes() -> None:
    sim = SimCloud(2, 5, seed=8, faults=Faults.kind(), baremetal=5, baremetal_rate=0.5)
    normalizer = CompositeNormalizer()
    seen: dict[str, ev.BaremetalNode] = {}
    deleted: set[str] = set()
    raw = sim.step(100) + sim.flush()
    for r in raw:
        if b"baremetal." not in r:
            continue
        out = normalizer.normalize(r, recorded_at=sim.clock_us)
        assert out.ok, out.reason
        for e in out.events:
            node = e.payload.baremetal_node
            if isinstance(e.payload, ev.BaremetalNodeDeleted):
                seen.pop(node.uuid, None)
                deleted.add(node.uuid)
            else:
                seen[node.uuid] = node
    touched = {u: n for u, n in sim.baremetal_truth().items() if u in seen}
    assert touched and seen == touched
    assert sim.counters["enroll"] and sim.counters["node_delete"]
    assert deleted and not deleted & set(sim.baremetal_truth())


def test_ironic_notifications_go_through_the_same_delivery_faults() -> None:
    sim = SimCloud(2, 5, seed=9, faults=Faults(drop=0.5), baremetal=4, baremetal_rate=1.0)
    sent = baremetal(sim.step(100) + sim.flush())
    assert sim.counters["baremetal_ops"] > 0 and sim.counters["dropped"] > 0
    assert len(sent) < 2 * sim.counters["baremetal_ops"]


def test_listing_pages_follow_ironics_order_and_an_unknown_marker_is_refused() -> None:
    sim = SimCloud(1, 0, seed=1, baremetal=7, baremetal_churn=0)
    order = sim.ironic.ordered()
    assert [n.uuid for n in sim.list_baremetal_nodes(limit=3)] == order[:3]
    assert [n.uuid for n in sim.list_baremetal_nodes(limit=3, marker=order[2])] == order[3:6]
    assert sim.get_baremetal_node(order[0]) == sim.ironic.nodes[order[0]]
    assert sim.get_baremetal_node("nope") is None
    with pytest.raises(OperationError):
        sim.list_baremetal_nodes(marker="nope")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 60), nodes=st.integers(1, 6))
def test_any_run_keeps_the_nodes_consistent(seed: int, steps: int, nodes: int) -> None:
    sim = SimCloud(2, 5, seed=seed, baremetal=nodes, baremetal_rate=1.0)
    sim.step(steps)
    check_nodes(sim)


def test_a_node_enrolled_managed_provided_and_deleted() -> None:
    sim = SimCloud(1, 0, seed=2, faults=Faults.kind(), baremetal=1, baremetal_rate=0, baremetal_churn=0)
    ironic = sim.ironic
    raw = sim.baremetal_op("enroll")
    u = ironic.places[-1]
    n = ironic.nodes[u]
    assert (n.provision_state, n.power_state, n.maintenance, n.instance_uuid) == ("enroll", None, False, None)
    assert ironic.rows[u].updated_at is None and n.version == ironic.rows[u].created_at
    msgs = baremetal(raw)
    assert [m["event_type"] for m in msgs] == ["baremetal.node.create.start", "baremetal.node.create.end"]
    assert msgs[1]["payload"]["ironic_object.data"]["updated_at"] is None
    ironic.step(4)
    check_nodes(sim)
    active = next(x for x in ironic.nodes if x != u)
    if ironic.nodes[active].provision_state != "active":
        sim.baremetal_op("deploy", active, "11111111-2222-4333-8444-555555555555")
    if ironic.nodes[u].provision_state == "active":
        sim.baremetal_op("undeploy", u)
    with pytest.raises(OperationError):
        sim.baremetal_op("delete", active)
    raw = sim.baremetal_op("delete", u)
    assert u not in ironic.nodes and u not in sim.baremetal_truth() and sim.get_baremetal_node(u) is None
    msgs = baremetal(raw)
    assert [m["event_type"] for m in msgs[-2:]] == ["baremetal.node.delete.start", "baremetal.node.delete.end"]
    assert msgs[-1]["payload"]["ironic_object.data"]["uuid"] == u
    out = CompositeNormalizer().normalize(sim.baremetal_op("enroll")[-1], recorded_at=sim.clock_us)
    assert out.ok and isinstance(out.events[0].payload, ev.BaremetalNodeChanged)


def test_a_listing_marker_whose_node_was_deleted_meanwhile_is_refused_as_ironic_does() -> None:
    sim = SimCloud(1, 0, seed=1, baremetal=5, baremetal_churn=0)
    order = sim.ironic.ordered()
    sim.baremetal_op("delete", order[1])
    with pytest.raises(OperationError):
        sim.list_baremetal_nodes(limit=2, marker=order[1])
    assert [n.uuid for n in sim.list_baremetal_nodes(limit=2, marker=order[0])] == order[2:4]


@settings(max_examples=40, deadline=None)
@given(nodes=st.integers(1, 12), limit=st.integers(1, 5), gone=st.lists(st.integers(0, 11), max_size=8))
def test_a_baremetal_listing_goes_on_when_its_marker_node_is_deleted_between_pages(
        nodes: int, limit: int, gone: list[int]) -> None:
    """Each page deletes a node — often the one the next page's marker names (Ironic's
    404): the listing steps back to an earlier node, lists every node that survived, each once."""
    from tests.unit.sim_readers import SimBaremetalReader

    sim = SimCloud(1, 0, seed=nodes, baremetal=nodes, baremetal_churn=0)
    order = sim.ironic.ordered()
    victims = [order[i % nodes] for i in gone]
    listed: list[str] = []

    def delete_one() -> None:
        if victims:
            u = victims.pop(0)
            if u in sim.ironic.nodes and sim.ironic.nodes[u].provision_state != "active":
                sim.ironic.delete(u)
        elif listed and listed[-1] in sim.ironic.nodes:  # then the marker node itself
            sim.ironic.delete(listed[-1])

    sim.during_listing = delete_one
    for page in SimBaremetalReader(sim).baremetal_pages(limit):
        listed.extend(n.uuid for n in page)
    sim.during_listing = None
    assert len(listed) == len(set(listed))
    assert set(sim.ironic.nodes) <= set(listed) <= set(order)
