"""Storage full syncs through openstacksdk over real HTTP against the simulated Cinder:
openstacksdk's own block_storage proxy reads the sim's API, the storage sync equals the
storage truth with paging, a volume deleted while the sync read is settled by a
follow-up ``GET /volumes/{id}`` (404), and ``eventmodel sync`` syncs storage when the
catalog offers it and says so in one line when it does not."""

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
from eventmodel.sim.storage import diff_storage
from eventmodel.sources.openstack import OpenStackReader
from eventmodel.sources.storage_sync import CinderReader
from eventmodel.sources.sync import Snapshotter
from projections.projection import Projection, catch_up

PAGE = 23


def model_of(log):
    p = Projection()
    catch_up(p, log)
    return p.latest()


def storage_differences(sim: SimCloud, m) -> list[str]:
    return diff_storage(sim.storage_truth(), m.storage_nodes(), m.pools(), m.volumes(), m.volume_types())


@pytest.fixture
def cloud():
    sim = SimCloud(5, 40, seed=21, volumes=150, storage_backends=3)
    with SimServer(sim) as srv:
        with srv.lock:
            sim.step(40)  # creations, attachments, migrations... (their notifications are not used)
        yield sim, srv


def cinder_reader(srv: SimServer) -> CinderReader:
    return CinderReader(OpenStackReader.connect(None, timeout=10, **srv.auth_args()))


def test_openstacksdk_reads_the_simulated_cinder(cloud) -> None:
    sim, srv = cloud
    conn = openstack.connect(**srv.auth_args())
    bs = conn.block_storage
    nodes = {s.host: s for s in bs.services(binary="cinder-volume")}
    assert set(nodes) == set(sim.storage.state.nodes)
    assert nodes["storage-02@lvm"].status == "disabled"
    assert {t.name for t in bs.types()} == {"__DEFAULT__", "standard", "ssd", "ceph"}  # public ones only
    assert "secret" in {t.name for t in bs.types(is_public="None")}
    pools = {p.name: p.capabilities for p in bs.backend_pools()}
    assert pools["storage-03@ceph#rbd"]["total_capacity_gb"] == "infinite"
    vols = list(bs.volumes(details=True, all_projects=True, limit=PAGE))
    assert sorted(v.id for v in vols) == sorted(sim.storage.state.volumes)
    assert [(v.created_at, v.id) for v in vols] == sorted(((v.created_at, v.id) for v in vols), reverse=True)
    one = bs.get_volume(vols[0].id)
    assert one.id == vols[0].id and one.is_bootable == sim.storage.state.volumes[one.id].bootable
    with pytest.raises(openstack.exceptions.NotFoundException):
        bs.get_volume("00000000-0000-4000-8000-000000000000")
    assert {z.name for z in bs.availability_zones()} == {"az1", "az2"}


def test_a_storage_sync_over_http_gives_the_storage_truth(cloud, tmp_path) -> None:
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    reader = cinder_reader(srv)
    srv.api.reset_stats()
    with sim.quiescent():
        result = Snapshotter(reader, log, page_size=PAGE, service="storage").run_once()
    assert result.ok, result.error
    m = model_of(log)
    assert storage_differences(sim, m) == []
    n = len(sim.storage.state.volumes)
    assert result.counts == {"storage_node": 3, "pool": 5, "volume": n, "volume_type": 5}
    routes = srv.api.stats()["by_route"]
    assert routes["GET /volume/v3/volumes/detail"] == result.pages == math.ceil(n / PAGE)
    for route in ("types", "os-services", "scheduler-stats/get_pools"):
        assert routes[f"GET /volume/v3/{route}"] == 1
    assert result.requests["block-storage"] == srv.api.stats()["block-storage"]
    ceph = m.pools()["storage-03@ceph#rbd"]
    assert ceph.unbounded == "infinite" and ceph.total_capacity_gb is None
    # the compute model was not touched by a storage sync
    assert len(m.instances()) == 0 and m.last_snapshot.snapshot_id == result.snapshot_id


def test_a_volume_deleted_while_the_sync_reads_is_settled_by_a_404_follow_up(cloud, tmp_path) -> None:
    """A normalizer's record of a deletion reaches the log while the sync reads; the
    listing had already listed the volume: the follow-up reads it by id, gets 404, and
    the model drops it."""
    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    reader = cinder_reader(srv)
    order = sim.storage.state.ordered()
    victim = next(u for u in order[:PAGE] if not sim.storage.state.volumes[u].attachments
                  and sim.storage.state.volumes[u].status == "available")
    calls = {"n": 0}

    def during() -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # after the first page was read
            vol = sim.storage.state.volumes[victim]
            sim.volume_op("delete", victim)
            # what a Cinder normalizer makes of volume.delete.end (lowest version, as ADR 0018)
            log.append([ev.envelope(ev.VolumeDeleted(attrs_evolve(vol)), source="test", message_id="del-1",
                                    occurred_at=sim.clock_us, recorded_at=sim.clock_us)])

    with sim.quiescent():
        sim.during_listing = during
        result = Snapshotter(reader, log, page_size=PAGE, service="storage").run_once()
        sim.during_listing = None
    assert result.ok and result.rounds >= 1 and result.rechecked >= 1
    assert srv.api.stats()["status"].get("404", 0) >= 1
    m = model_of(log)
    assert victim not in m.volumes()
    # the pools, read before the deletion, were read again with the volumes: their figures too
    assert storage_differences(sim, m) == []


def attrs_evolve(vol: ev.Volume) -> ev.Volume:
    import attrs

    return attrs.evolve(vol, version=ev.LOWEST_VERSION, status="deleted")


def test_sync_once_syncs_storage_when_the_catalog_has_it(cloud, tmp_path: Path) -> None:
    sim, srv = cloud
    clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "COLUMNS": "200"}
    url = f"sqlite:///{tmp_path}/e.db"
    with sim.quiescent():
        out = CliRunner().invoke(app, ["sync", "--once", "--cloud", "sim", "--log", url], env=env)
    assert out.exit_code == 0, out.output
    assert f"volume {len(sim.storage.state.volumes)}" in out.output and "block-storage" in out.output
    log = open_log(url)
    try:
        m = model_of(log)
        assert storage_differences(sim, m) == [] and len(m.instances()) == sim.instance_count
    finally:
        log.close()


def test_sync_once_without_block_storage_skips_it_in_one_line(tmp_path: Path) -> None:
    sim = SimCloud(3, 10, seed=2)
    with SimServer(sim) as srv:
        clouds = srv.write_clouds_yaml(tmp_path / "clouds.yaml", cloud="sim", api_timeout=5)
        env = {"OS_CLIENT_CONFIG_FILE": str(clouds), "COLUMNS": "200"}
        args = ["sync", "--once", "--cloud", "sim", "--log", f"sqlite:///{tmp_path}/e.db"]
        auto = CliRunner().invoke(app, args, env=env)
        named = CliRunner().invoke(app, [*args, "--services", "compute,storage"], env=env)
    assert auto.exit_code == 0, auto.output
    assert "storage: the catalog has no block-storage service; it is not synced" in auto.output
    assert f"instance {sim.instance_count}" in auto.output
    assert named.exit_code != 0 and "no block-storage" in named.output


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1_000), page=st.integers(1, 60), ops=st.integers(0, 4), backends=st.integers(1, 4))
def test_any_cloud_busy_or_not_is_equal_after_a_quiescent_storage_sync(tmp_path_factory, seed: int, page: int,
                                                                       ops: int, backends: int) -> None:
    """Operations run between the API reads of a first storage sync (its listing misses
    volumes created meanwhile, lists deleted ones); a quiescent one repairs everything."""
    sim = SimCloud(3, 15, seed=seed, volumes=50, storage_backends=backends)
    log = open_log(f"sqlite:///{tmp_path_factory.mktemp('prop')}/e.db")
    with SimServer(sim) as srv:
        reader = cinder_reader(srv)
        snap = Snapshotter(reader, log, page_size=page, service="storage")
        sim.during_listing = (lambda: sim.step(ops)) if ops else None
        busy = snap.run_once()
        with sim.quiescent():
            quiet = snap.run_once()
    assert busy.ok and quiet.ok
    assert storage_differences(sim, model_of(log)) == []
    assert quiet.counts["volume"] == len(sim.storage.state.volumes)


def test_sim_serve_with_volumes_serves_cinder_in_its_own_process() -> None:
    from eventmodel.sim.server import SimProcess

    with SimProcess(2, 6, seed=4, args=("--volumes", "20", "--storage-backends", "2")) as proc:
        conn = openstack.connect(**proc.auth_args())
        assert len(list(conn.block_storage.volumes(details=True, all_projects=True))) == 20
        assert len(list(conn.block_storage.backend_pools())) == 3
        stats = proc.control.stats()
        assert stats["block-storage"] >= 3 and stats["by_route"]["GET /volume/v3/scheduler-stats/get_pools"] == 1
        proc.stop()
        out = proc.output()
    assert "20 volumes" in out and "block-storage" in out


def test_a_fault_mid_storage_sync_aborts_it_and_leaves_both_models_as_they_were(cloud, tmp_path) -> None:
    from eventmodel.sim.http_faults import HttpFault
    from eventmodel.sources.sync import ServiceSyncs

    sim, srv = cloud
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    base = OpenStackReader.connect(None, timeout=10, **srv.auth_args())
    syncs = ServiceSyncs([Snapshotter(base, log, page_size=PAGE),
                          Snapshotter(CinderReader(base), log, page_size=PAGE, service="storage")])
    with sim.quiescent():
        first = syncs.run_once()
        assert first.ok, first.error
        before = model_of(log)
        with srv.lock:  # volumes change without notifications: an aborted sync must not delete any
            for _ in range(5):
                sim.storage.step(1)
        srv.api.arm(HttpFault("error", service="block-storage", path="volumes/detail", after=1))
        failed = syncs.run_once()
    assert not failed.ok and failed.error.startswith("storage: ") and "answered 500" in failed.error
    compute, storage = syncs.last
    assert compute.ok and not storage.ok  # the compute sync completed; only the storage one aborted
    after = model_of(log)
    assert dict(after.volumes()) == dict(before.volumes()) and dict(after.pools()) == dict(before.pools())
    assert len(after.instances()) == sim.instance_count
    with sim.quiescent():
        assert syncs.run_once().ok
    assert storage_differences(sim, model_of(log)) == []


@pytest.mark.parametrize("volumes", [999, 1000])
def test_watchers_cinder_collector_makes_the_requests_bench_sync_counts_for_it(volumes: int) -> None:
    """bench_sync prints Watcher's Cinder collector's requests from a formula; its own
    CinderHelper calls, made against the sim, must cost exactly that (a full page of
    1,000 volumes carries a next link, so 1,000 volumes take two pages)."""
    from tests.bench.bench_sync import watcher_cinder_made, watcher_cinder_requests

    sim = SimCloud(3, 10, seed=5, volumes=volumes, storage_backends=4)
    truth = sim.storage_truth()
    with SimServer(sim) as srv:
        made = watcher_cinder_made(srv.auth_args(), srv.url + "/_sim")
    counted = watcher_cinder_requests(len(truth.nodes), len(truth.volumes))
    served = made["served"]
    assert made["volumes"] == len(truth.volumes) and made["nodes"] == len(truth.nodes) == 4
    assert (served["identity"], served["block-storage"]) == (counted["identity"], counted["block-storage"])
    assert served["by_route"]["GET /volume/v3/types"] == 4
    assert served["by_route"]["GET /volume/v3/volumes/detail"] == len(truth.volumes) // 1000 + 1
