"""Stale means stale (issue 16): each cause reaches a real Watcher strategy, loaded with
our collector through Watcher's CollectorManager, as Watcher's own refusal of a stale
model — and the audit runs again once the cause is gone.

Causes: a log that cannot be read (the SQLite file damaged under a running decision
engine), a feed with no cluster record for longer than ``max_age`` (the plugin's own
audit records do not count as news), a full sync that failed part-way, and a model more
than ``max_lag`` records behind the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.log import open_log
from eventmodel.sources.sync import Snapshotter
from projections.replay import model_at
from tests.integration.cloudfill import CloudFeed

ROOT = Path(__file__).resolve().parents[2]
REFUSED = ("ClusterStateNotDefined", "ClusterStateStale")


class Engine:
    """A decision-engine process running the probe; ``step`` sends one step, reads its answer."""

    def __init__(self, conf: Path, log_path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.watcher_stale_probe", str(conf), str(log_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)

    def step(self, name: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the probe ended (exit {self.proc.poll()})"
            if line.startswith("{"):
                return json.loads(line)

    def until(self, ok, timeout: float = 90.0) -> dict:
        """Audit until ``ok(answer)``, polling with a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.step("audit")
            if ok(answer):
                return answer
            # each poll is a whole audit (a strategy run): no pause needed between them
            assert time.monotonic() < deadline, f"not reached within {timeout}s: last {answer}"

    def close(self) -> None:
        try:
            self.step("quit") if self.proc.poll() is None else None
        except AssertionError:
            pass
        self.proc.wait(timeout=60)


def _conf(path: Path, log_url: str, max_age: float, **more: object) -> Path:
    options = {"log_url": log_url, "catch_up_timeout": 2, "max_age": max_age, **more}
    lines = "".join(f"{k} = {v}\n" for k, v in options.items())
    path.write_text(f"[DEFAULT]\ntransport_url = fake:/\n\n[watcher_cluster_data_model_collectors.eventmodel]\n{lines}")
    return path


@pytest.fixture
def filled(tmp_path: Path):
    db = tmp_path / "events.db"
    log = open_log(f"sqlite:///{db}")
    feed = CloudFeed(log, hosts=5, instances=30, seed=11)
    feed.sync()
    feed.operate(20)
    yield db, log, feed
    log.close()


def test_a_damaged_log_makes_strategies_refuse_the_model_until_it_is_readable_again(tmp_path: Path, filled) -> None:
    db, _, _ = filled
    engine = Engine(_conf(tmp_path / "watcher.conf", f"sqlite:///{db}", 7200), db)
    try:
        first = engine.step("audit")
        assert first["outcome"].endswith("actions") and first["stale"] is None, first
        engine.step("damage")
        refused = engine.until(lambda a: a["outcome"] in REFUSED)
        assert "LogError" not in refused["outcome"] and str(db) in (refused["stale"] or ""), refused
        engine.step("restore")
        again = engine.until(lambda a: a["outcome"].endswith("actions"))
        assert again["stale"] is None
    finally:
        engine.close()


def test_a_silent_feed_is_stale_after_max_age_whatever_the_audits_record(tmp_path: Path, filled) -> None:
    db, _, feed = filled
    engine = Engine(_conf(tmp_path / "watcher.conf", f"sqlite:///{db}", 3), db)
    try:
        refused = engine.until(lambda a: a["outcome"] in REFUSED)
        assert "no cluster record" in refused["stale"], refused
        # the plugin recorded an audit read on the log with every audit: still no news
        assert engine.step("audit")["outcome"] in REFUSED
        feed.sync()  # the syncer is back
        again = engine.until(lambda a: a["outcome"].endswith("actions"), timeout=30)
        assert again["stale"] is None
    finally:
        engine.close()


class _NovaDown:
    """The simulated cloud with its server listing failing, as an unreachable nova-api."""

    def __init__(self, sim: object) -> None:
        self._sim = sim

    def __getattr__(self, name: str) -> object:
        return getattr(self._sim, name)

    def list_servers(self, **_: object) -> list:
        raise ConnectionError("nova-api: connection refused")


def test_a_failed_full_sync_makes_strategies_refuse_the_model_until_a_sync_completes(tmp_path: Path,
                                                                                     filled) -> None:
    db, log, feed = filled
    engine = Engine(_conf(tmp_path / "watcher.conf", f"sqlite:///{db}", 7200), db)
    try:
        assert engine.step("audit")["outcome"].endswith("actions")
        failed = Snapshotter(_NovaDown(feed.sim), log, source="test-sync", clock=lambda: feed.sim.clock_us).run_once()
        assert not failed.ok and "connection refused" in (failed.error or "")
        refused = engine.until(lambda a: a["outcome"] in REFUSED)
        assert failed.snapshot_id in refused["stale"] and "failed" in refused["stale"], refused
        feed.sync()
        again = engine.until(lambda a: a["outcome"].endswith("actions"))
        assert again["stale"] is None
    finally:
        engine.close()


def test_a_model_behind_by_more_than_max_lag_is_refused_until_it_catches_up(tmp_path: Path, filled) -> None:
    """100,000 cluster records land at once (one append); audits that do not wait for the
    follower (``catch_up_timeout = 0``) are refused while it is more than ``max_lag``
    behind, and run once it has folded them."""
    db, log, _ = filled
    engine = Engine(_conf(tmp_path / "watcher.conf", f"sqlite:///{db}", 7200, max_lag=1000, catch_up_timeout=0), db)
    try:
        assert engine.step("audit")["outcome"].endswith("actions")
        inst = next(iter(model_at(log).instances().values()))
        # The follower needs well over a second for 100,000 records, and the audit is sent
        # at once: it meets the backlog. Should a fast machine fold a burst before the audit
        # reads, another burst is appended (three at most): one audit must be refused.
        seen = []
        for burst in range(3):
            now = now_us()
            base = inst.version + burst * 100_000
            log.append([ev.envelope(ev.InstanceUpdated(attrs.evolve(inst, version=base + k)), source="test",
                                    message_id=f"burst-{burst}-{k}", occurred_at=now, recorded_at=now)
                        for k in range(1, 100_001)])
            seen.append(engine.step("audit"))
            if seen[-1]["outcome"] in REFUSED:
                break
        refused = seen[-1]
        assert refused["outcome"] in REFUSED and "behind the log's end (max_lag 1,000)" in refused["stale"], seen
        again = engine.until(lambda a: a["outcome"].endswith("actions"), timeout=120)
        assert again["stale"] is None
    finally:
        engine.close()
