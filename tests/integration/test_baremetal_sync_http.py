"""Baremetal full syncs through openstacksdk over real HTTP against the simulated Ironic:
openstacksdk's own baremetal proxy reads the sim's Bare Metal API, the baremetal sync
equals the sim's nodes with paging, a node gone while the sync read is settled by a
follow-up ``GET /v1/nodes/{uuid}`` (404), and ``eventmodel sync --services`` takes
``baremetal`` (and says in one line when the catalog has none)."""

from __future__ import annotations

import math
from pathlib import Path

import openstack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventmodel import events as ev
from eventmodel.cli.main import app
from eventmodel.log import open_log
from eventmodel.sim import SimCloud
from eventmodel.sim.server import SimServer
from eventmodel.sources.baremetal_sync import IronicReader
from eventmodel.sources.openstack import OpenStackReader
from eventmodel.sources.sync import Snapshotter
from projections.projection import Projection, catch_up

PAGE = 3


def model_of(log):
    p = Projection()
    catch_up(p, log)
    return p.latest()


@pytest.fixture
def cloud():
    sim = SimCloud(3, 10, seed=7, baremetal=8, baremetal_churn=0)  # eight nodes throughout
    with SimServer(sim) as srv:
        with srv.lock:
            sim.step(60)  # power, deploy, maintenance... (their notifications are not used)
        yield sim, srv


def ironic_reader(srv: SimServer) -> IronicReader:
    return IronicReader(OpenStackReader.connect(None, timeout=10, **srv.auth_args()))


def test_openstacksdk_reads_the_simulated_ironic(cloud) -> None:
    sim, srv = cloud
    conn = openstack.connect(**srv.auth_args())
    nodes = {n.id: n for n in conn.baremetal.nodes(details=True)}
    truth = sim.baremetal_truth()
    assert set(nodes) == set(truth)
    for u, n in nodes.items():
        t = truth[u]
        assert (n.name, n.power_state, n.provision_state, n.is_maintenance, n.instance_id, n.resource_class) == \
            (t.name, t.power_state, t.provision_state, t.maintenance, t.instance_uuid, t.resource_class)
    one = conn.baremetal.get_node(next(iter(truth)))
    assert one.id == next(iter(truth))


def test_the_bare_metal_api_pages_echoes_its_microversion_and_answers_404_as_ironic(cloud) -> None:
    sim, srv = cloud
    conn = openstack.connect(**srv.auth_args())
    session, base = conn.session, srv.url + "/baremetal/v1"
    r = session.get(base + "/nodes/detail", params={"limit": 5}, headers={"X-OpenStack-Ironic-API-Version": "1.50"},
                    raise_exc=False)
    body = r.json()
    assert r.status_code == 200 and len(body["nodes"]) == 5 and "marker=" in body["next"]
    assert r.headers["X-OpenStack-Ironic-API-Version"] == "1.50" and "owner" in body["nodes"][0]
    assert "lessee" not in body["nodes"][0]  # 1.65
    rest = session.get(body["next"], headers={"OpenStack-API-Version": "baremetal 1.50"}).json()
    assert [n["uuid"] for n in body["nodes"] + rest["nodes"]] == list(sim.baremetal_truth())
    assert "next" not in rest
    same = session.get(base + "/nodes", params={"detail": "True"},
                       headers={"X-OpenStack-Ironic-API-Version": "1.50"}).json()
    assert same["nodes"] == body["nodes"] + rest["nodes"]
    missing = session.get(base + "/nodes/00000000-0000-4000-8000-000000000000", raise_exc=False)
    assert missing.status_code == 404 and "could not be found" in missing.json()["error_message"]
    too_new = session.get(base + "/nodes", headers={"X-OpenStack-Ironic-API-Version": "1.999"}, raise_exc=False)
    assert too_new.status_code == 406


def test_a_baremetal_sync_over_http_gives_the_nodes_of_the_sim(cloud, tmp_path) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    reader = ironic_reader(srv)
    srv.api.reset_stats()
    with sim.quiescent():
        result = Snapshotter(reader, log, page_size=PAGE, service="baremetal").run_once()
    assert result.ok, result.error
    m = model_of(log)
    assert dict(m.baremetal_nodes()) == sim.baremetal_truth()
    assert result.counts == {"baremetal_node": 8}
    routes = srv.api.stats()["by_route"]
    assert routes["GET /baremetal/v1/nodes/detail"] == result.pages == math.ceil(8 / PAGE)
    assert result.requests["baremetal"] == srv.api.stats()["baremetal"]
    # the compute model was not touched by a baremetal sync
    assert len(m.instances()) == 0 and m.last_snapshot.snapshot_id == result.snapshot_id


def test_a_node_gone_while_the_sync_reads_is_settled_by_a_404_follow_up(cloud, tmp_path) -> None:
    """A record of a node's deletion reaches the log while the sync reads, after the
    listing listed it (Ironic deleted it): the follow-up reads it by uuid, gets 404,
    and the model drops it."""
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    reader = ironic_reader(srv)
    victim = sim.ironic.ordered()[0]
    calls = {"n": 0}

    def during() -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first page was read
            node = sim.ironic.nodes.pop(victim)
            log.append([ev.envelope(ev.BaremetalNodeDeleted(node), source="test", message_id="del-1",
                                    occurred_at=sim.clock_us, recorded_at=sim.clock_us)])

    with sim.quiescent():
        sim.during_listing = during
        result = Snapshotter(reader, log, page_size=PAGE, service="baremetal").run_once()
        sim.during_listing = None
    assert result.ok and result.rounds >= 1 and result.rechecked >= 1
    assert srv.api.stats()["status"].get("404", 0) >= 1
    m = model_of(log)
    assert victim not in m.baremetal_nodes()
    assert dict(m.baremetal_nodes()) == sim.baremetal_truth()


def test_sync_services_baremetal_syncs_ironic(cloud, tmp_path: Path) -> None:
    sim, srv = cloud
    clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "COLUMNS": "200"}
    url = f"sqlite:///{tmp_path}/e.db"
    with sim.quiescent():
        out = CliRunner().invoke(app, ["sync", "--once", "--cloud", "sim", "--log", url,
                                       "--services", "baremetal"], env=env)
    assert out.exit_code == 0, out.output
    assert "baremetal_node 8" in out.output
    log = open_log(url)
    try:
        m = model_of(log)
        assert dict(m.baremetal_nodes()) == sim.baremetal_truth() and len(m.instances()) == 0
    finally:
        log.close()


def test_sync_without_ironic_skips_it_in_one_line(tmp_path: Path) -> None:
    sim = SimCloud(3, 10, seed=2)
    with SimServer(sim) as srv:
        clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
        env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "COLUMNS": "200"}
        args = ["sync", "--once", "--cloud", "sim", "--log", f"sqlite:///{tmp_path}/e.db"]
        auto = CliRunner().invoke(app, args, env=env)
        named = CliRunner().invoke(app, [*args, "--services", "compute,baremetal"], env=env)
    assert auto.exit_code == 0, auto.output
    assert auto.output.count("no baremetal service") == 1
    assert named.exit_code != 0 and "no baremetal" in named.output


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1_000), page=st.integers(1, 10), ops=st.integers(0, 4), nodes=st.integers(1, 12))
def test_any_cloud_busy_or_not_is_equal_after_a_quiescent_baremetal_sync(tmp_path_factory, seed: int, page: int,
                                                                         ops: int, nodes: int) -> None:
    """Operations (nodes powered, deployed, put in maintenance, enrolled, deleted — a page's
    marker node too, which Ironic answers with a 404) run between the API reads of a first
    baremetal sync; a quiescent one leaves the model equal to the sim's nodes."""
    sim = SimCloud(2, 8, seed=seed, baremetal=nodes, baremetal_rate=1.0)
    log = open_log(f"sqlite:///{tmp_path_factory.mktemp('prop')}/e.db")
    with SimServer(sim) as srv:
        snap = Snapshotter(ironic_reader(srv), log, page_size=page, service="baremetal")
        sim.during_listing = (lambda: sim.step(ops)) if ops else None
        busy = snap.run_once()
        with sim.quiescent():
            quiet = snap.run_once()
    assert busy.ok and quiet.ok
    assert dict(model_of(log).baremetal_nodes()) == sim.baremetal_truth()
    now = len(sim.baremetal_truth())
    assert quiet.counts.get("baremetal_node", 0) == now and quiet.pages == math.ceil(now / page)


def test_sim_serve_with_baremetal_serves_ironic_in_its_own_process() -> None:
    from eventmodel.sim.server import SimProcess

    with SimProcess(2, 6, seed=4, args=("--baremetal", "5")) as proc:
        conn = openstack.connect(**proc.auth_args())
        assert len(list(conn.baremetal.nodes(details=True))) == 5
        assert proc.control.stats()["by_route"]["GET /baremetal/v1/nodes/detail"] == 1
        proc.stop()
        out = proc.output()
    assert "5 bare-metal nodes" in out
