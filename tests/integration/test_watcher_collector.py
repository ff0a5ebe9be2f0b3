"""The collector plugin, loaded by Watcher's own CollectorManager from a real watcher.conf,
over a real log the simulated cloud filled: audit scopes (zones, aggregates, excluded
nodes, instances, projects, metadata) applied from the snapshot, each read recorded
on the log; and the deployment switch (README) that makes it Watcher's ``compute``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import attrs
import pytest

from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.log import open_log
from projections.audits import list_audits
from projections.replay import model_at
from tests.integration.cloudfill import CloudFeed

ROOT = Path(__file__).resolve().parents[2]
OURS = "projections.watcher.collector:ProjectionCollector"
NOVA = "watcher.decision_engine.model.collector.nova:NovaClusterDataModelCollector"


def _probe(conf: Path, steps: list[dict]) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "tests.integration.watcher_probe", str(conf), json.dumps(steps)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)
    assert res.returncode == 0, f"probe failed ({res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def _conf(path: Path, log_url: str, ckpt: Path) -> Path:
    """watcher.conf with our options under both names the plugin is loaded by here."""
    groups = "".join(f"""
[watcher_cluster_data_model_collectors.{name}]
log_url = {log_url}
checkpoint_dir = {ckpt}
catch_up_timeout = 10
""" for name in ("eventmodel", "compute"))
    path.write_text("[DEFAULT]\ntransport_url = fake:/\n" + groups)
    return path


@pytest.fixture
def cloud_log(tmp_path: Path):
    """A log with a full sync and operations of a simulated cloud, then two aggregates
    of ours (one defining zone test-az), that zone on those hosts' services, and one
    instance whose metadata says optimize: false."""
    url = f"sqlite:///{tmp_path}/events.db"
    log = open_log(url)
    feed = CloudFeed(log, hosts=6, instances=48, seed=5)
    feed.sync()
    feed.operate(60)
    model = model_at(log)
    nodes = sorted(model.compute_nodes().values(), key=lambda n: n.name)
    h = [n.host for n in nodes]
    now = now_us()
    placed = {n.host: list(model.node_instances(n.name)) for n in nodes}
    quiet = next(i for i in placed[h[4]])
    payloads: list[object] = [
        ev.AggregateChanged(ev.Aggregate("agg-fast", 0, 9001, "test-fast", "test-az", (h[0], h[1]),
                                        {"availability_zone": "test-az"})),
        ev.AggregateChanged(ev.Aggregate("agg-slow", 0, 9002, "test-slow", None, (h[2],))),
        ev.InstanceUpdated(attrs.evolve(quiet, version=quiet.version + 1, metadata={"optimize": "False"})),
    ]
    for host in h[:2]:
        svc = model.service(host)
        payloads.append(ev.ComputeServiceChanged(attrs.evolve(svc, version=svc.version + 1, availability_zone="test-az")))
    log.append([ev.envelope(p, source="test", message_id=str(i), occurred_at=now, recorded_at=now)
                for i, p in enumerate(payloads)])
    yield url, log, {"hosts": h, "placed": {k: [i.uuid for i in v] for k, v in placed.items()},
                     "projects": {i.uuid: i.project_id for v in placed.values() for i in v}, "quiet": quiet.uuid}
    log.close()


def _watcher_dist_info() -> Path:
    return Path(metadata.distribution("python-watcher")._path)  # type: ignore[attr-defined] - a PathDistribution


def _switch_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(overlay, other): the README's switch — a copy of Watcher's distribution metadata
    whose ``compute`` line names our collector — and, to show it is needed, a second
    distribution that merely adds its own ``compute`` entry point."""
    overlay = tmp_path / "overlay"
    copied = shutil.copytree(_watcher_dist_info(), overlay / _watcher_dist_info().name)
    eps = copied / "entry_points.txt"
    text = eps.read_text()
    assert f"compute = {NOVA}" in text
    eps.write_text(text.replace(f"compute = {NOVA}", f"compute = {OURS}"))
    other = tmp_path / "other"
    info = other / "eventmodel_compute-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eventmodel-compute\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[watcher_cluster_data_model_collectors]\ncompute = {OURS}\n")
    return overlay, other


def test_the_collector_through_watchers_manager_scopes_audits_and_the_compute_switch(
        tmp_path: Path, cloud_log) -> None:
    url, log, facts = cloud_log
    h, placed, projects = facts["hosts"], facts["placed"], facts["projects"]
    end = log.end()
    excluded_instance = placed[h[1]][0]
    project = projects[placed[h[5]][0]]
    scopes = [
        [],
        [{"compute": [{"availability_zones": [{"name": "test-az"}]}]}],
        [{"compute": [{"host_aggregates": [{"id": 9002}]}]}],
        [{"compute": [{"host_aggregates": [{"name": "test-fast"}]}]}],
        [{"compute": [{"exclude": [
            {"instances": [{"uuid": excluded_instance}]},
            {"compute_nodes": [{"name": h[3]}]},
            {"projects": [{"uuid": project}]},
            {"instance_metadata": [{"optimize": "false"}]},
        ]}]}],
    ]
    # as installed, the name strategies ask for is Nova's collector, ours is "eventmodel"
    installed = {e.name: e.value for e in metadata.entry_points(group="watcher_cluster_data_model_collectors")}
    assert installed["compute"] == NOVA and installed["eventmodel"] == OURS
    overlay, other = _switch_dirs(tmp_path)
    conf = _conf(tmp_path / "watcher.conf", url, tmp_path / "ckpt")
    loaded, switched, conflict = _probe(conf, [
        {"name": "eventmodel", "scopes": scopes},
        {"name": "compute", "path": [str(overlay)], "scopes": [scopes[1]],
         "strategy": ["host_maintenance", {"maintenance_node": h[0]}, scopes[1]]},
        {"name": "compute", "path": [str(other)]},
    ])

    assert loaded["class"] == OURS and loaded["log_url"] == url
    whole, zone, by_id, by_name, excluding = loaded["scopes"]
    assert whole["type"] == "WatcherView" and not whole["stale"]
    assert whole["position"] == str(end)  # caught up with everything the cloud wrote
    assert whole["nodes"] == h
    assert {k: set(v) for k, v in whole["instances"].items()} == {k: set(v) for k, v in placed.items()}
    assert whole["excluded"] == []
    assert zone["nodes"] == h[:2]
    assert by_id["nodes"] == [h[2]]
    assert by_name["nodes"] == h[:2]
    assert excluding["nodes"] == [x for x in h if x != h[3]]
    remaining = {u for k, v in placed.items() if k != h[3] for u in v}
    expected = {excluded_instance, facts["quiet"]} | {u for u in remaining if projects[u] == project}
    assert set(excluding["excluded"]) == expected

    # the README's switch: "compute" is now ours, configured from its own group
    assert switched["class"] == OURS and switched["log_url"] == url
    assert switched["scopes"][0]["nodes"] == h[:2]
    # and a strategy, run as the decision engine runs it, reads its model from the plugin
    ran = switched["strategy"]
    assert ran["model"] == "WatcherView" and ran["audit_id"]
    assert ran["actions"] and ran["actions"] == ran["direct_actions"]
    assert {a["input_parameters"]["source_node"] for a in ran["actions"] if "source_node" in a["input_parameters"]} \
        <= {h[0]}
    # merely adding a second "compute" entry point does not: stevedore refuses the pair
    assert conflict["error"] == "LoadingError"

    # every read is on the log, at the position it saw
    reads = [*loaded["scopes"], *switched["scopes"], ran]
    recorded = {a.audit_id: str(a.position) for a in list_audits(log)}
    assert {s["audit_id"]: s["position"] for s in reads} == recorded
    assert len(recorded) == len(reads)


def test_scope_zones_are_the_models_node_zones() -> None:
    """An audit scope's zone of a host is the one ``ClusterModel.node_status`` gives its
    nodes: the zone aggregate (current through notifications) over the service's zone
    (from the last full sync), the service's zone without one."""
    from projections.export import from_entities
    from projections.watcher.collector import ProjectionScope, host_zones

    nodes = [ev.ComputeNode(name=f"n{k}", version=1, host=f"h{k}", vcpus=4, memory_mb=4096, disk_gb=40)
             for k in range(3)]
    services = [ev.ComputeService(host="h0", binary="nova-compute", version=1, availability_zone="old-az"),
                ev.ComputeService(host="h1", binary="nova-compute", version=1, availability_zone="nova")]
    aggs = [ev.Aggregate("agg-new", 0, 7, "new", "new-az", ("h0",), {"availability_zone": "new-az"})]
    model = from_entities([], nodes, services, aggs)
    zones = host_zones(model)
    assert zones == {"h0": "new-az", "h1": "nova", "h2": None}
    assert zones == {n.host: model.node_status(n.name).zone for n in nodes}
    scope = ProjectionScope([], None, None)  # type: ignore[arg-type] - the snapshot is set below
    scope._model = model
    for wanted, hosts in ((["new-az"], ["h0"]), (["old-az"], []), (["nova", "new-az"], ["h0", "h1"]),
                          (["*"], ["h0", "h1", "h2"])):
        allowed: list[str] = []
        scope._collect_zones([{"name": z} for z in wanted], allowed)
        assert allowed == hosts, wanted


def test_audits_at_one_model_version_share_its_layout_and_never_skip_a_cluster_record(tmp_path: Path) -> None:
    """Back-to-back audits: the second shares the first's layout (its own audit record
    changed no entity) and does not wait for the follower to fold that record; a cluster
    record appended after it is in the next audit's model."""
    from watcher.common import utils

    from projections.watcher.collector import ProjectionCollector

    url = f"sqlite:///{tmp_path}/events.db"
    log = open_log(url)
    feed = CloudFeed(log, hosts=4, instances=20, seed=2)
    feed.sync()
    ProjectionCollector._instances.pop(ProjectionCollector, None)
    collector = ProjectionCollector(utils.Struct(log_url=url, checkpoint_dir=None, catch_up_timeout=10.0,
                                                 record_audits=True, max_age=0, max_lag=0, order="collector"),
                                    osc=object())
    try:
        first = collector.get_latest_cluster_data_model()
        assert first.audit_id and collector._own_read == (first.model.position, log.end())
        second = collector.get_latest_cluster_data_model()
        assert second.layout is first.layout and second.model.state.tables is first.model.state.tables
        assert second.model.position.total in (first.model.position.total, first.model.position.total + 1)
        assert list(second.get_all_instances()) == list(first.get_all_instances())
        assert feed.operate(10) > 0
        end = log.end()
        third = collector.get_latest_cluster_data_model()
        assert third.model.position.covers(end) and third.layout is not first.layout
        assert not third.stale
    finally:
        collector.stop()
        ProjectionCollector._instances.pop(ProjectionCollector, None)
        log.close()
