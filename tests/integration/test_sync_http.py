"""Full syncs through openstacksdk over real HTTP (loopback) against the simulated
cloud's API: the model equals the truth, the requests stay within their bound, every
fault in the middle of a sync aborts it and leaves the model as it was, and the
periodic syncer (a real ``eventmodel sync`` process) syncs on demand and survives faults.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventmodel.cli.main import app
from eventmodel.log import open_log
from eventmodel.sim import Faults, SimCloud, diff_truth
from eventmodel.sim.http_faults import HttpFault
from eventmodel.sim.server import SimServer
from eventmodel.sources.openstack import OpenStackReader
from eventmodel.sources.sync import Snapshotter
from projections.model import ClusterModel
from projections.projection import Projection, catch_up
from tests.fixtures.polling import wait_until

HOSTS, SERVERS, PAGE = 6, 150, 40


def model_of(log) -> ClusterModel:
    p = Projection()
    catch_up(p, log)
    return p.latest()


def differences(sim: SimCloud, m: ClusterModel) -> list[str]:
    truth = sim.truth()
    return diff_truth(truth, m.instances(), m.compute_nodes(), m.services(), m.table("aggregate"))


@pytest.fixture
def cloud():
    sim = SimCloud(HOSTS, SERVERS, seed=11)
    with SimServer(sim) as srv:
        with srv.lock:
            sim.step(40)  # migrations, resizes, disabled services... (their notifications are not used)
        yield sim, srv


def reader(srv: SimServer, timeout: float = 10.0) -> OpenStackReader:
    return OpenStackReader.connect(None, timeout=timeout, **srv.auth_args())


def sync(srv: SimServer, log, timeout: float = 10.0):
    return Snapshotter(reader(srv, timeout), log, page_size=PAGE).run_once()


def test_a_full_sync_over_http_gives_the_truth_within_the_request_bound(cloud, tmp_path) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    srv.api.reset_stats()
    with sim.quiescent():
        result = sync(srv, log)
    assert result.ok, result.error
    m = model_of(log)
    assert differences(sim, m) == []
    n = sim.instance_count
    assert result.counts["instance"] == n and result.counts["node"] == HOSTS
    assert result.counts["aggregate"] == len(sim.truth().aggregates) > 0
    # what the client counted is what the server served, service by service
    served = srv.api.stats()
    assert result.requests == {s: served[s] for s in ("identity", "compute", "placement") if served[s]}
    pages = n // PAGE + 1  # the last page is short: nothing requested after it
    assert result.pages == math.ceil(n / PAGE) and result.requests["compute"] == pages + 4  # + discovery,
    # services, hypervisors, aggregates
    assert result.requests["placement"] == HOSTS + 1  # one inventory per host + discovery
    assert sum(result.requests.values()) <= math.ceil(n / PAGE) + HOSTS + 8
    assert served["by_route"]["GET /compute/v2.1/servers/detail"] == pages


FAULTS = {
    "500 on a server page": (HttpFault("error", service="compute", path="servers/detail", after=2), "answered 500"),
    "503 on an inventory": (HttpFault("error", service="placement", path="inventories", after=3, status=503),
                            "answered 503"),
    # a connection that fails or times out is tried once more (a stale keep-alive
    # connection must not fail a sync): these faults last for both tries
    "timeout on a server page": (HttpFault("timeout", service="compute", path="servers/detail", after=1,
                                           stall_s=3, times=2), "timed out"),
    "reset on a server page": (HttpFault("reset", service="compute", path="servers/detail", after=2, times=2),
                               "onnect"),
    "reset on an inventory": ("reset-inventory", "onnect"),
    "identity down when the token expires": (None, "HTTP 500"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_mid_sync_aborts_it_and_the_next_sync_succeeds(cloud, tmp_path, name: str) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    with sim.quiescent():
        first = sync(srv, log)
    assert first.ok, first.error
    before = model_of(log)
    # the cloud changes without notifications: an aborted sync must not delete what it did not see
    with srv.lock:
        sim.step(30)
    fault, words = FAULTS[name]
    if fault == "reset-inventory":  # one provider's inventory, both tries (others run alongside)
        node = max(sim.truth().nodes.values(), key=lambda n: n.name)
        srv.api.arm(HttpFault("reset", service="placement", path=f"{node.uuid}/inventories", times=2))
    elif fault is not None:
        srv.api.arm(fault)
    else:  # every token expires mid-sync and Keystone fails the re-authentication
        srv.api.arm(HttpFault("expired_token", service="compute", path="servers/detail", after=1),
                    HttpFault("error", service="identity", path="auth/tokens", after=1))
    with sim.quiescent():
        bad = sync(srv, log, timeout=1.0)
    assert not bad.ok and words in bad.error, bad.error
    after = model_of(log)
    assert after.last_snapshot.snapshot_id == first.snapshot_id
    assert not after.state.open_snapshots
    assert after.stale is not None and bad.snapshot_id in after.stale and words in after.stale
    assert set(before.instances()) <= set(after.instances())  # nothing deleted
    with sim.quiescent():
        good = sync(srv, log)
    assert good.ok, good.error
    final = model_of(log)
    assert final.stale is None and differences(sim, final) == []


def test_an_expired_token_is_renewed_transparently(cloud, tmp_path) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    with sim.quiescent():
        base = sync(srv, log)
        srv.api.arm(HttpFault("expired_token", service="compute", path="servers/detail", after=2))
        renewed = sync(srv, log)
    assert base.ok and renewed.ok, renewed.error
    # keystoneauth got a 401, authenticated once more and repeated the request
    assert renewed.requests["identity"] == base.requests["identity"] + 1
    assert renewed.requests["compute"] == base.requests["compute"] + 1
    assert srv.api.stats()["status"].get("401") == 1
    assert differences(sim, model_of(log)) == []


def test_a_single_connection_failure_is_retried_once(cloud, tmp_path) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    with sim.quiescent():
        base = sync(srv, log)
        srv.api.arm(HttpFault("reset", service="compute", path="servers/detail", after=1))
        retried = sync(srv, log)
    assert base.ok and retried.ok, retried.error
    assert retried.requests["compute"] == base.requests["compute"] + 1
    assert srv.api.stats()["faults_fired"] == 1
    assert differences(sim, model_of(log)) == []


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), ops=st.integers(0, 60), page=st.integers(7, 60))
def test_a_quiescent_sync_over_http_makes_any_drifted_model_the_truth(tmp_path, seed: int, ops: int,
                                                                      page: int) -> None:
    """Whatever the cloud did since the last sync (no notifications seen), one quiescent
    sync over HTTP makes the model equal the truth, whatever the page size."""
    sim = SimCloud(4, 60, seed=seed)
    log = open_log(f"sqlite:///{tmp_path}/e-{seed}-{ops}-{page}.db")
    with SimServer(sim) as srv:
        with sim.quiescent():
            assert Snapshotter(reader(srv), log, page_size=page).run_once().ok
        with srv.lock:
            sim.step(ops)
        with sim.quiescent():
            result = Snapshotter(reader(srv), log, page_size=page).run_once()
    assert result.ok, result.error
    assert differences(sim, model_of(log)) == []


def test_a_down_cells_minimal_records_change_nothing(tmp_path) -> None:
    sim = SimCloud(HOSTS, SERVERS, seed=5, faults=Faults(down_cell=1.0, cells=3))
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    with SimServer(sim) as srv:
        with sim.quiescent():
            assert sync(srv, log).ok
        with srv.lock:
            sim.step(20)
        with sim.quiescent():
            assert sync(srv, log).ok  # the model is the truth now
        down = sync(srv, log)  # one cell in three is down for this listing
    assert down.ok, down.error
    assert 0 < down.counts["partial"] == len(sim.minimal_last_listing) < down.counts["instance"]
    m = model_of(log)
    assert differences(sim, m) == []  # nothing deleted, nothing changed by the minimal records
    assert m.last_snapshot.snapshot_id == down.snapshot_id


def test_sync_once_prints_the_report_and_fails_with_the_sync(cloud, tmp_path: Path) -> None:
    sim, srv = cloud
    clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "COLUMNS": "200"}
    args = ["sync", "--once", "--cloud", "sim", "--log", f"sqlite:///{tmp_path}/e.db", "--page-size", str(PAGE)]
    with sim.quiescent():
        ok = CliRunner().invoke(app, args, env=env)
        srv.api.arm(HttpFault("error", service="compute", path="os-services"))
        bad = CliRunner().invoke(app, args, env=env)
    assert ok.exit_code == 0, ok.output
    assert "completed" in ok.output and f"instance {sim.instance_count}" in ok.output and "placement" in ok.output
    assert bad.exit_code == 1 and "failed" in bad.output and "answered 500" in bad.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(port: int, line_start: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_the_periodic_syncer_syncs_on_demand_and_survives_a_fault(cloud, tmp_path: Path) -> None:
    sim, srv = cloud
    clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
    url = f"sqlite:///{tmp_path}/e.db"
    pid_file, port = tmp_path / "sync.pid", _free_port()
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)}
    env.pop("OS_CLOUD", None)
    cmd = [sys.executable, "-m", "eventmodel", "sync", "--log", url, "--cloud", "sim", "--period", "3600",
           "--pid-file", str(pid_file), "--metrics-port", str(port), "--page-size", str(PAGE)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        projection, logs = Projection(), []

        def model() -> ClusterModel | None:
            if not logs:
                try:
                    logs.append(open_log(url))
                except Exception:  # noqa: BLE001 - not created yet
                    return None
            return catch_up(projection, logs[0])

        def done(check) -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            m = model()
            return m is not None and check(m)

        with sim.quiescent():
            wait_until(lambda: done(lambda m: m.last_snapshot is not None), 60, "the sync at start-up")
        first = model().last_snapshot.snapshot_id
        assert pid_file.read_text().strip() == str(proc.pid)
        # a fault in the next sync, asked for with `eventmodel sync --now`
        srv.api.arm(HttpFault("error", service="compute", path="servers/detail", after=1))
        asked = CliRunner().invoke(app, ["sync", "--now", "--pid-file", str(pid_file)])
        assert asked.exit_code == 0 and str(proc.pid) in asked.output, asked.output
        with sim.quiescent():
            wait_until(lambda: done(lambda m: m.stale is not None and "answered 500" in m.stale), 60,
                       "the failed sync")
            assert model().last_snapshot.snapshot_id == first
            with srv.lock:
                sim.step(20)
            os.kill(proc.pid, signal.SIGUSR1)  # the syncer is still there: sync again
            wait_until(lambda: done(lambda m: m.stale is None and m.last_snapshot.snapshot_id != first), 60,
                       "a good sync after the fault")
        assert differences(sim, model()) == []
        assert _metric(port, 'eventmodel_sync_runs_total{outcome="ok"}') == 2
        assert _metric(port, 'eventmodel_sync_runs_total{outcome="failed"}') == 1
        assert (_metric(port, 'eventmodel_sync_requests_total{service="placement"}') or 0) >= 2 * HOSTS
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "completed" in out and "FAILED" in out and "stopped after 3 syncs" in out
        assert not pid_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
