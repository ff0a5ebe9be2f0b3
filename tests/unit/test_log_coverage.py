"""A reader whose position the log no longer covers is told, and says so: records
deleted by retention are never skipped silently (issue 11).

Retention is played on the embedded log by deleting its first rows, as a SQLite
operator's cleanup would; the Kafka backend's own retention tests are in
tests/integration/test_kafka_retention.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eventmodel import events as ev
from eventmodel.log import open_log
from eventmodel.sim.cloud import SimCloud
from eventmodel.sources.sync import Snapshotter
from projections.checkpoint import Checkpointer
from projections.projection import Follower, Projection, catch_up
from projections.replay import start
from projections.state import ClusterState

FLAVOR = ev.Flavor("small", 1, 512, 10)


def _fill(log, n: int, first: int = 0) -> None:
    log.append([
        ev.envelope(ev.InstanceUpdated(ev.Instance(f"00000000-0000-0000-0000-{i:012d}", (i + 1) * 10**6, "h", "n",
                                                   "active", FLAVOR)),
                    source="test", message_id=str(i), occurred_at=i, recorded_at=i)
        for i in range(first, first + n)
    ])


def _expire(path: Path, before: int) -> None:
    """What retention does: the log's first records are gone."""
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM events WHERE offset < ?", (before,))


def test_a_checkpoint_older_than_the_log_start_is_skipped_and_the_model_says_it_is_incomplete(
        tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    log = open_log(f"sqlite:///{path}")
    _fill(log, 10)
    ck = Checkpointer.for_log(tmp_path / "ck", log)
    p = Projection()
    catch_up(p, log, log.end())
    old = ck.write(p.state)  # at 10
    _fill(log, 10, first=10)
    _expire(path, 15)
    assert log.start().offsets == (15,)

    projection = start(log, ck)
    assert any("before the log's start" in why for why in ck.skipped), ck.skipped
    assert old.exists()
    model = projection.latest()
    assert model.position.offsets == (20,)
    assert model.stale is not None and "15 earlier record(s) were deleted" in model.stale
    assert len(model.instances()) == 5  # only what the remaining records said

    # A full sync makes the model complete again, and says so.
    sim = SimCloud(2, 3, seed=4)
    assert Snapshotter(sim, log).run_once().ok
    catch_up(projection, log)
    assert projection.latest().stale is None
    log.close()


def test_a_follower_behind_the_log_start_marks_the_model_stale_instead_of_skipping(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    log = open_log(f"sqlite:///{path}")
    _fill(log, 10)
    projection = Projection(ClusterState.empty(1))
    catch_up(projection, log, log.end())
    at = projection.latest().position
    _fill(log, 10, first=10)
    _expire(path, 15)  # records 10..14 were never read by this follower
    follower = Follower(log, projection, poll=0.01).start()
    try:
        model = projection.wait_for(lambda m: m.stale is not None, timeout=30)
    finally:
        follower.stop()
    assert "deleted" in model.stale and "10" in model.stale, model.stale
    assert model.position == at  # nothing was skipped
    assert follower.stale == model.stale
    log.close()
