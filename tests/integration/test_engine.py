"""The embedding object on real logs (SQLite file, Kafka topic): restore, catch up,
follow, restart mid-stream, wait_for with a deadline, health, audits on the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from eventmodel.log import Position, open_log
from projections.audits import find_audit, list_audits
from projections.engine import ModelEngine
from projections.replay import model_at
from tests.fixtures.polling import wait_until
from tests.integration.cloudfill import CloudFeed


def _same_model(a, b) -> None:
    assert a.position == b.position
    assert a.state.tables == b.state.tables
    assert a.state.by_node == b.state.by_node
    assert a.state.tombstones == b.state.tombstones


def _restart_mid_stream(url: str, ckpt: Path) -> None:
    log = open_log(url)
    feed = CloudFeed(log, hosts=6, instances=40)
    feed.sync()
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(12):
                feed.operate(30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            done.set()

    first = ModelEngine(url, ckpt, checkpoint_every=50, poll=0.01)
    t = threading.Thread(target=writer)
    t.start()
    # the first engine folds part of the stream, then stops while the writer goes on
    start_pos = first.latest().position.total
    wait_until(lambda: first.latest().position.total > start_pos + 100, 60, "the first engine to fold records")
    first.stop()
    stopped_at = first.latest().position
    assert not first.health().following
    assert first.health().checkpointed == stopped_at  # stop wrote the last checkpoint

    second = ModelEngine(url, ckpt, checkpoint_every=50, poll=0.01)
    try:
        assert second.checkpointer is not None
        assert second.checkpointer.loaded_position == stopped_at, second.skipped_checkpoints
        t.join(120)
        assert done.is_set() and not errors, errors
        end = log.end()
        assert end.total > stopped_at.total  # the writer went on after the first engine stopped
        live = second.wait_for(end, timeout=60)
        _same_model(live, model_at(log, to=end))
        health = second.health()
        assert health.ok, health
        assert health.lag == 0 and health.position == end
        assert health.last_sync_at is not None and health.last_sync_drift is not None
        assert health.staleness_s is not None and health.staleness_s < 600
    finally:
        second.stop()
        log.close()


def test_sqlite_engine_restarts_mid_stream_with_the_same_model(tmp_path: Path, sqlite_url: str) -> None:
    _restart_mid_stream(sqlite_url, tmp_path / "ckpt")


@pytest.mark.kafka
def test_kafka_engine_restarts_mid_stream_with_the_same_model(tmp_path: Path, kafka_url: str) -> None:
    _restart_mid_stream(kafka_url, tmp_path / "ckpt")


def test_wait_for_keeps_its_deadline_and_wakes_on_new_records(sqlite_url: str) -> None:
    log = open_log(sqlite_url)
    feed = CloudFeed(log, hosts=3, instances=10)
    feed.sync()
    with ModelEngine(sqlite_url, poll=0.01) as engine:
        beyond = Position((log.end().total + 1_000_000,))
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            engine.wait_for(beyond, timeout=0.3)
        assert 0.3 <= time.monotonic() - t0 < 5
        with pytest.raises(ValueError, match="partitions"):
            engine.wait_for(Position((0, 0)), timeout=0.1)
        feed.operate(20)
        target = log.end()
        model = engine.wait_for(str(target), timeout=30)
        assert model.position.covers(target)
        assert model.counts()["instance"] == feed.sim.instance_count
    assert not engine.health().following
    log.close()


def test_audits_are_records_on_the_log_and_change_no_model(sqlite_url: str) -> None:
    log = open_log(sqlite_url)
    feed = CloudFeed(log, hosts=3, instances=10)
    feed.sync()
    with ModelEngine(sqlite_url, poll=0.01, reader="test") as engine:
        seen = engine.latest()
        read = engine.record_audit("audit-1", seen, digest=True)
        assert read.position == seen.position.offsets and read.digest
        after = engine.wait_for(log.end(), timeout=30)
        assert after.position.total == seen.position.total + 1  # one audit.read record
        assert after.state.tables == seen.state.tables  # ... that changes nothing
        with pytest.raises(ValueError, match="what-if"):
            engine.record_audit("audit-2", seen.migrate(next(iter(seen.instances())), next(iter(seen.compute_nodes()))))
    with pytest.raises(RuntimeError, match="stopped"):
        engine.record_audit("late")
    audits = list_audits(log)
    assert [a.audit_id for a in audits] == ["audit-1"]
    assert find_audit(log, "audit-1").position == seen.position
    assert audits[0].read.reader == "test"
    log.close()


def test_checkpoints_on_a_time_interval_while_following(tmp_path: Path, sqlite_url: str) -> None:
    log = open_log(sqlite_url)
    feed = CloudFeed(log, hosts=3, instances=10)
    feed.sync()
    with ModelEngine(sqlite_url, tmp_path / "ckpt", checkpoint_every=10**9, checkpoint_interval=0.2,
                     poll=0.01) as engine:
        assert engine.checkpointer is not None and engine.checkpointer.files() == []
        feed.operate(20)
        target = log.end()
        engine.wait_for(target, timeout=30)
        # no record count reached: the interval alone brings a checkpoint at (or past) the target
        wait_until(lambda: engine.health().checkpointed is not None
                   and engine.health().checkpointed.covers(target), 30, "a checkpoint by time")
        assert engine.checkpointer.positions()[0].covers(target)
    log.close()


def test_health_says_why_when_the_log_no_longer_covers_the_model(tmp_path: Path, sqlite_url: str) -> None:
    import sqlite3

    log = open_log(sqlite_url)
    feed = CloudFeed(log, hosts=3, instances=10)
    feed.sync()
    with ModelEngine(sqlite_url, poll=0.01) as engine:
        end = log.end()
        engine.wait_for(end, timeout=30)
        assert engine.health().ok
        # the log loses its last records (e.g. an older copy of the file put back)
        db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        with db:
            db.execute("DELETE FROM events WHERE offset >= ?", (end.total - 5,))
        db.close()
        health = wait_until(lambda: (h := engine.health()).stale and h, 30, "the engine to report the problem")
        assert not health.ok and "past the log's end" in health.stale
        assert engine.latest().stale == health.stale  # the model says so too
    log.close()
