"""The demo's run as an object: a small cloud on an embedded SQLite log, its report
asserted on (not the printed table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventmodel.demo.report import DemoReport, SyncRound
from eventmodel.demo.run import DemoConfig, DemoFailed, DemoRun, run_demo
from eventmodel.demo.watch import DemoWatch
from eventmodel.log import open_log
from eventmodel.sim.faults import Faults
from projections.replay import model_at

SYNCS = ["initial full sync", "final full sync", "quiescent full sync"]


class Seen(DemoWatch):
    def __init__(self) -> None:
        self.syncs: list[SyncRound] = []
        self.ready: list[str] = []

    def cloud_ready(self, built_s: float, url: str) -> None:
        self.ready.append(url)

    def synced(self, sync: SyncRound) -> None:
        self.syncs.append(sync)


@pytest.fixture(scope="module")
def report_and_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoReport, str, Seen]:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo')}/e.db"
    log = open_log(url)
    seen = Seen()
    try:
        report = run_demo(DemoConfig(hosts=4, instances=30, duration=0.5, seed=11), log, seen)
    finally:
        log.close()
    return report, url, seen


def test_the_projection_equals_the_ground_truth_and_a_replay_gives_the_same_model(
        report_and_log: tuple[DemoReport, str, Seen]) -> None:
    report, url, _ = report_and_log
    assert report.differences == () and report.equal and report.same_replay and report.ok
    # the cloud had block storage (one volume per two instances), synced beside compute
    assert report.storage and report.storage_differences == () and report.storage_equal
    assert report.volumes_now > 0 and report.pools_now >= 3 and report.storage_nodes_now == 2
    assert report.counters["volume_ops"] > 0
    # and bare-metal nodes (four at the start by default, some enrolled or deleted since), synced after storage
    assert report.baremetal and report.baremetal_differences == () and report.baremetal_equal
    assert report.baremetal_nodes_now > 0 and report.counters["baremetal_ops"] > 0
    log = open_log(url)
    try:
        assert report.end == log.end() and report.before.total == 0
        assert len(model_at(log).instances()) == report.instances_now
    finally:
        log.close()


def test_the_report_counts_what_happened(report_and_log: tuple[DemoReport, str, Seen]) -> None:
    report, _, seen = report_and_log
    assert [s.what for s in report.syncs] == SYNCS and all(s.result.ok for s in report.syncs)
    # every sync read Cinder's model too, through its Block Storage API
    assert all(s.result.counts["volume"] > 0 and s.result.counts["pool"] == report.pools_now
               and s.result.requests.get("block-storage", 0) >= 4 for s in report.syncs)
    # and Ironic's nodes, through its Bare Metal API
    assert report.syncs[-1].result.counts["baremetal_node"] == report.baremetal_nodes_now
    assert all(s.result.counts["baremetal_node"] > 0 and s.result.requests.get("baremetal", 0) >= 1
               for s in report.syncs)
    assert seen.syncs == list(report.syncs) and len(seen.ready) == 1  # told as they happened
    assert report.ops > 0 and report.counters["ops"] == report.ops + report.ops_during_syncs
    assert report.events > 0 and report.end.total - report.before.total >= report.events
    assert report.hosts_now == 4
    # the quiescent sync ran with no operation and no listing fault
    quiet = report.syncs[-1]
    assert quiet.ops_while == 0 and quiet.omitted == 0 and quiet.minimal == 0
    assert report.quiet is quiet.result and report.quiet_drift is not None
    assert sum(report.requests.values()) == sum(sum(s.result.requests.values()) for s in report.syncs)
    assert report.late_live <= report.late_delivered


def test_a_kind_cloud_flushed_before_the_last_sync_has_nothing_to_correct(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/k.db")
    try:
        # without volumes: a model fed by Nova's notifications alone has nothing to correct
        run = DemoRun(DemoConfig(hosts=3, instances=10, duration=0.3, seed=2, faults=Faults.kind(), sync_ops=0,
                                 late_during_sync=False, volumes=0, baremetal=0), log)
        report = run.run()
    finally:
        log.close()
    assert report.ok and report.wrong_before == () and report.wrong_between == ()
    assert (report.late_delivered, report.late_live) == (0, 0)
    assert report.counters.get("dropped", 0) == 0 and report.ops_during_syncs == 0
    assert not report.storage and report.volumes_now == 0
    assert all("block-storage" not in s.result.requests for s in report.syncs)
    assert not report.baremetal and report.baremetal_nodes_now == 0
    assert all("baremetal" not in s.result.requests for s in report.syncs)


def test_the_report_is_not_equal_when_the_baremetal_model_differs(
        report_and_log: tuple[DemoReport, str, Seen]) -> None:
    import attrs

    report, _, _ = report_and_log
    wrong = attrs.evolve(report, baremetal_differences=("baremetal node x: missing",))
    assert wrong.compute_equal and wrong.storage_equal and not wrong.baremetal_equal
    assert not wrong.equal and not wrong.ok


def test_a_cloud_whose_api_cannot_be_served_fails_the_serve_step(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from eventmodel.sim import server

    def refuse(self: object) -> None:
        raise OSError("no port")

    monkeypatch.setattr(server.SimServer, "start", refuse)
    log = open_log(f"sqlite:///{tmp_path}/s.db")
    try:
        with pytest.raises(DemoFailed, match="cannot serve the simulated cloud's API: no port") as caught:
            run_demo(DemoConfig(hosts=1, instances=0, duration=0.1), log)
    finally:
        log.close()
    assert caught.value.step == "serve"
