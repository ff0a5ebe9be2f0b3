"""The storage and baremetal collector plugins, loaded by Watcher's own CollectorManager
from a real watcher.conf over a real log (a simulated cloud's compute sync, a storage
sync, Ironic node records): audit scopes from the snapshot, zone_migration run as the
decision engine runs it with ``compute`` and ``storage`` switched to the projection,
stale as the compute plugin is, and the Keystone-catalog rule of ``get_collectors``
(ADR 0019)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.log import open_log
from projections.audits import list_audits
from projections.replay import model_at
from tests.fixtures.storage import baremetal_cluster, storage_cluster
from tests.integration.cloudfill import CloudFeed

ROOT = Path(__file__).resolve().parents[2]
OURS = {
    "compute": "projections.watcher.collector:ProjectionCollector",
    "storage": "projections.watcher.storage_collector:ProjectionStorageCollector",
    "baremetal": "projections.watcher.storage_collector:ProjectionBaremetalCollector",
}
WATCHERS = {
    "compute": "watcher.decision_engine.model.collector.nova:NovaClusterDataModelCollector",
    "storage": "watcher.decision_engine.model.collector.cinder:CinderClusterDataModelCollector",
    "baremetal": "watcher.decision_engine.model.collector.ironic:BaremetalClusterDataModelCollector",
}


def _probe(conf: Path, steps: list[dict]) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "tests.integration.watcher_storage_probe", str(conf),
                          json.dumps(steps)], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
                         check=False)
    assert res.returncode == 0, f"probe failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def _conf(path: Path, log_url: str, ckpt: Path, **extra: object) -> Path:
    """watcher.conf with our options under every name the plugins are loaded by here; each
    plugin its own checkpoint directory."""
    more = "".join(f"{k} = {v}\n" for k, v in extra.items())
    groups = "".join(f"""
[watcher_cluster_data_model_collectors.{name}]
log_url = {log_url}
checkpoint_dir = {ckpt / name}
catch_up_timeout = 10
{more}""" for name in ("eventmodel", "eventmodel_storage", "eventmodel_baremetal", "compute", "storage",
                       "baremetal"))
    path.write_text("[DEFAULT]\ntransport_url = fake:/\n" + groups)
    return path


def _entry_points_declared() -> dict[str, str]:
    """The plugin entry points pyproject.toml declares."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["entry-points"]["watcher_cluster_data_model_collectors"]


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(ours, switch): a distribution declaring this project's entry points as pyproject.toml
    does (the installed metadata may predate them), and the README's switch — a copy of
    Watcher's distribution metadata whose compute, storage and baremetal lines name ours."""
    ours = tmp_path / "ours" / "eventmodel_plugins-0.dist-info"
    ours.mkdir(parents=True)
    (ours / "METADATA").write_text("Metadata-Version: 2.1\nName: eventmodel-plugins\nVersion: 0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in _entry_points_declared().items() if k != "eventmodel")
    (ours / "entry_points.txt").write_text(f"[watcher_cluster_data_model_collectors]\n{lines}")
    dist = Path(metadata.distribution("python-watcher")._path)  # type: ignore[attr-defined]
    switch = tmp_path / "switch"
    copied = shutil.copytree(dist, switch / dist.name)
    eps = copied / "entry_points.txt"
    text = eps.read_text()
    for name, theirs in WATCHERS.items():
        assert f"{name} = {theirs}" in text
        text = text.replace(f"{name} = {theirs}", f"{name} = {OURS[name]}")
    eps.write_text(text)
    return ours.parent, switch


@pytest.fixture
def cloud_log(tmp_path: Path):
    """A log: a compute full sync and operations of a simulated cloud, a storage full sync
    (nodes, pools incl. an ``infinite`` one, types, volumes) and an Ironic sync."""
    url = f"sqlite:///{tmp_path}/events.db"
    log = open_log(url)
    feed = CloudFeed(log, hosts=4, instances=24, seed=7)
    feed.sync()
    feed.operate(20)
    storage = storage_cluster(4, volumes=24)
    bare = baremetal_cluster(5, seed=2)
    now = now_us()
    payloads: list[object] = [ev.SnapshotStarted("storage-1", ev.STORAGE_KINDS, 1)]
    payloads += [ev.StorageNodeObserved("storage-1", n) for n in storage.storage_nodes().values()]
    payloads += [ev.VolumeTypeObserved("storage-1", t) for t in storage.volume_types().values()]
    payloads += [ev.PoolObserved("storage-1", p) for p in storage.pools().values()]
    payloads += [ev.VolumeObserved("storage-1", v) for v in storage.volumes().values()]
    payloads.append(ev.SnapshotCompleted("storage-1", {ev.VOLUME: len(storage.volumes())}))
    payloads.append(ev.SnapshotStarted("ironic-1", ev.BAREMETAL_KINDS, 1))
    payloads += [ev.BaremetalNodeObserved("ironic-1", n) for n in bare.baremetal_nodes().values()]
    payloads.append(ev.SnapshotCompleted("ironic-1", {ev.BAREMETAL_NODE: len(bare.baremetal_nodes())}))
    log.append([ev.envelope(p, source="test", message_id=f"st-{i}", occurred_at=now, recorded_at=now)
                for i, p in enumerate(payloads)])
    yield url, log
    log.close()


def test_storage_and_baremetal_plugins_through_watchers_manager(tmp_path: Path, cloud_log) -> None:
    url, log = cloud_log
    model = model_at(log)
    assert len(model.volumes()) == 24 and len(model.baremetal_nodes()) == 5 and model.instances()
    hosts = sorted(model.storage_nodes())
    vols = sorted(model.volumes())
    bm = sorted(model.baremetal_nodes())
    end = log.end()
    ours, switch = _dirs(tmp_path)
    conf = _conf(tmp_path / "watcher.conf", url, tmp_path / "ckpt")
    scopes = [
        [],
        [{"storage": [{"availability_zones": [{"name": "az1"}]}]}],
        [{"storage": [{"volume_types": [{"name": "gold2"}]}]}],
        [{"storage": [{"exclude": [{"storage_pools": [{"name": "st0@be0#pool0"}]}, {"volumes": [{"uuid": vols[0]}]}]}]}],
    ]
    compute_hosts = sorted({n.host for n in model.compute_nodes().values()})
    from collections import Counter

    busy = [p for p, _ in Counter(v.host for v in model.volumes().values() if v.host).most_common(2)]
    zone = {"storage_pools": [{"src_pool": busy[0], "dst_pool": "st9@be9#pool0"},
                              {"src_pool": busy[1], "dst_type": "platinum"}],
            "compute_nodes": [{"src_node": compute_hosts[0]}], "parallel_total": 40,
            "parallel_per_node": 20, "parallel_per_pool": 20}
    storage, baremetal, switched, ran, with_cinder, without_cinder = _probe(conf, [
        {"name": "eventmodel_storage", "path": [str(ours)], "scopes": scopes},
        {"name": "eventmodel_baremetal", "path": [str(ours)],
         "scopes": [[], [{"baremetal": [{"exclude": [{"ironic_nodes": [{"uuid": bm[1]}]}]}]}]]},
        {"name": "storage", "path": [str(switch)], "scopes": [[]]},
        {"zone_migration": zone, "path": [str(switch)]},
        {"collectors": ["compute", "storage", "baremetal"], "cinder": True, "path": [str(switch)]},
        {"collectors": ["compute", "storage", "baremetal"], "cinder": False, "path": [str(switch)]},
    ])

    assert storage["class"] == OURS["storage"] and storage["log_url"] == url and storage["endpoints"] == []
    whole, by_zone, by_type, excluding = storage["scopes"]
    assert whole["type"] == "StorageView" and not whole["stale"]
    assert whole["position"] == str(end)  # caught up with everything written
    assert whole["nodes"] == hosts and len(whole["volumes"]) == 24
    assert whole["xml_equal"]  # byte for byte what Watcher's StorageModelRoot of the snapshot writes
    assert by_zone["nodes"] == [h for h in hosts if model.storage_nodes()[h].zone == "az1"]
    assert by_type["nodes"] == ["st2@be2"]  # Watcher 17's own volume_types rule raises TypeError
    assert "st0@be0#pool0" not in excluding["pools"]["st0@be0"] and vols[0] not in excluding["volumes"]
    gone = {v.uuid for v in model.volumes().values() if v.host == "st0@be0#pool0"} | {vols[0]}
    assert set(excluding["volumes"]) == set(whole["volumes"]) - gone

    assert baremetal["class"] == OURS["baremetal"] and baremetal["endpoints"] == []
    b_whole, b_excl = baremetal["scopes"]
    assert b_whole["type"] == "BaremetalView" and b_whole["nodes"] == bm
    assert b_excl["nodes"] == [u for u in bm if u != bm[1]]

    # the switch: Watcher's own names now load ours
    assert switched["class"] == OURS["storage"] and switched["scopes"][0]["nodes"] == hosts
    # zone_migration asks the manager for "compute" and "storage" itself: both are views,
    # and it decides as on views of the same snapshots handed over directly
    assert (ran["compute"], ran["storage"]) == ("WatcherView", "StorageView") and "error" not in ran
    assert ran["actions"] and ran["actions"] == ran["direct"]["actions"]
    kinds = {(a["action_type"], a["input_parameters"]["migration_type"]) for a in ran["actions"]}
    assert {("volume_migrate", "migrate"), ("volume_migrate", "retype")} <= kinds
    assert any(a["action_type"] == "migrate" for a in ran["actions"])

    # get_collectors: Watcher skips "storage" when Keystone's catalog has no block-storage
    # service, whatever plugin the name loads; ours give [] endpoints (Watcher's Ironic
    # collector gives None, and the manager's extend() fails on it)
    assert with_cinder["loaded"] == OURS and with_cinder["endpoints"] == 0
    assert without_cinder["loaded"] == {k: v for k, v in OURS.items() if k != "storage"}

    # every read is on the log
    recorded = {a.audit_id for a in list_audits(log)}
    reads = [s["audit_id"] for s in [*storage["scopes"], b_whole, b_excl]]
    assert set(reads) <= recorded and all(reads)
    assert all(ran["audit_ids"]) and set(ran["audit_ids"]) <= recorded


def test_stale_as_the_compute_plugin(tmp_path: Path, cloud_log) -> None:
    """With no cluster record for longer than max_age, the storage and baremetal views
    are stale (false), and zone_migration refuses them as Watcher refuses its own."""
    url, _ = cloud_log
    ours, switch = _dirs(tmp_path)
    conf = _conf(tmp_path / "watcher.conf", url, tmp_path / "ckpt", max_age="0.000001")
    storage, baremetal, ran = _probe(conf, [
        {"name": "eventmodel_storage", "path": [str(ours)], "scopes": [[]]},
        {"name": "eventmodel_baremetal", "path": [str(ours)], "scopes": [[]]},
        {"zone_migration": {"storage_pools": [{"src_pool": "st0@be0#pool1", "dst_pool": "st1@be1#pool0"}]},
         "path": [str(switch)]},
    ])
    # Watcher's scope handlers return None for a false (stale) model, as for its own
    assert storage["scopes"] == [{"model": None}] and baremetal["scopes"] == [{"model": None}]
    assert ran["error"] in ("ClusterStateNotDefined", "ClusterStateStale")
