"""The steps of one full sync (``_SyncRun``), each on its own: the started marker and
its window, the listing in batches, the completed marker, the read-back of live
records, a follow-up round, the rule that leaves a busy cloud to the next sync, and
the abort of a step that failed."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.sim.cloud import SimCloud
from eventmodel.sources.sync import BUSY_KEYS, STOPPED, Snapshotter, SyncStopped, _SyncRun
from eventmodel.testing import MemLog, envelopes_of


def _run(hosts: int = 3, instances: int = 12, partitions: int = 3, **kw: object) -> tuple[SimCloud, MemLog, _SyncRun]:
    sim = SimCloud(hosts, instances, seed=4)
    log = MemLog(partitions)
    return sim, log, _SyncRun(Snapshotter(sim, log, **kw))  # type: ignore[arg-type]


def _types(log: MemLog) -> list[str]:
    return [e.type for e in log.appended]


def test_start_notes_the_window_and_appends_the_started_marker_to_every_partition() -> None:
    _, log, run = _run()
    log.append(envelopes_of([ev.EntityAbsent("earlier", ev.INSTANCE, "u-old")]))
    before = log.end()
    assert run.start() is None
    assert run.window == before and run.after == before.offsets
    assert _types(log)[-1] == ev.SnapshotStarted.TYPE
    marker = log.appended[-1].payload
    assert marker.snapshot_id == run.sid and marker.after == before.offsets and marker.partitions == 3
    assert all(part[-1].envelope.type == ev.SnapshotStarted.TYPE for part in log.parts)


def test_list_appends_one_observed_record_per_entity_in_batches() -> None:
    sim, log, run = _run(batch=5)
    sizes: list[int] = []
    run.progress = sizes.append
    assert run.start() is None and run.list() is None
    truth = sim.truth()
    assert run.counts[ev.INSTANCE] == len(truth.instances) and run.counts[ev.NODE] == len(truth.nodes)
    observed = [e for e in log.appended if e.type == ev.InstanceObserved.TYPE]
    assert {e.key for e in observed} == set(truth.instances)
    assert all(n <= 5 for n in sizes) and sum(sizes) == sum(run.counts.values())
    # every record is the sync's own, each a message of its own
    assert {e.source for e in log.appended} == {run.source} and run.seq == len(log.appended)
    assert len({e.event_id for e in log.appended}) == len(log.appended)
    assert run.pages >= 1 and not run.pending


def test_complete_appends_the_counts_and_run_returns_them() -> None:
    _, log, run = _run()
    assert run.start() is None and run.list() is None and run.complete() is None
    done = log.appended[-1].payload
    assert isinstance(done, ev.SnapshotCompleted) and done.counts == run.counts and done.after == run.after
    assert run.result(run.completed).ok


def test_readback_finds_keys_of_live_records_in_the_window_only() -> None:
    sim, log, run = _run()
    assert run.start() is None and run.list() is None
    uuid = next(iter(sim.truth().instances))
    inst = sim.get_server(uuid)
    log.append(envelopes_of([ev.InstanceUpdated(inst)]))  # a live record, late, while the sync read
    # the sync's own observed records touch nothing; the late update does
    assert run.readback(run.window, log.end()) == {(ev.INSTANCE, uuid)}
    assert run.readback(log.end(), log.end()) == set()


def test_a_round_rereads_the_keys_in_a_window_of_its_own() -> None:
    sim, log, run = _run()
    assert run.start() is None
    uuid = next(iter(sim.truth().instances))
    run.round([(ev.INSTANCE, uuid), (ev.INSTANCE, "gone"), (ev.SERVICE, "nowhere/nova-compute")])
    started, *records, completed = [e.payload for e in log.appended[1:]]
    assert started.snapshot_id == f"{run.sid}.1" and started.follows == run.sid and started.scope == ()
    assert {type(p).__name__ for p in records} == {"InstanceObserved", "EntityAbsent"}
    assert completed.counts == {"rechecked": 3}
    assert (run.follow.rounds, run.follow.rechecked) == (1, 3)


def test_follow_up_stops_when_a_scan_finds_nothing() -> None:
    sim, log, run = _run()
    assert run.start() is None and run.list() is None and run.complete() is None
    uuid = next(iter(sim.truth().instances))
    log.append(envelopes_of([ev.InstanceUpdated(sim.get_server(uuid))]))
    run.follow_up()
    assert (run.follow.rounds, run.follow.rechecked, run.follow.unsettled) == (1, 1, 0)
    assert run.follow.error is None


@given(before=st.none() | st.integers(0, 100), now=st.integers(1, 100), rounds=st.integers(0, 6))
def test_a_busy_cloud_is_left_to_the_next_sync(before: int | None, now: int, rounds: int) -> None:
    run = _SyncRun(Snapshotter(SimCloud(1, 0, seed=1), MemLog(1), max_rounds=5, max_rereads=50))
    run.follow.rounds = rounds
    busy = before is not None and before > BUSY_KEYS and now >= before
    assert run._settle_later(before, now) == (rounds >= 5 or now > 50 or busy)


def test_flush_raises_once_cancelled() -> None:
    _, log, run = _run()
    run.cancel = threading.Event()
    run.emit(ev.INSTANCE, [ev.EntityAbsent("s", ev.INSTANCE, "u")])
    run.cancel.set()
    with pytest.raises(SyncStopped):
        run.flush()
    assert len(log.appended) == 1  # what was queued is appended first


class _Refusing(MemLog):
    """Refuses the first ``n`` appends."""

    def __init__(self, n: int) -> None:
        super().__init__(2)
        self.n = n

    def append(self, envelopes: Sequence[ev.Envelope], only: Sequence[int] | None = None) -> None:
        if self.n:
            self.n -= 1
            raise OSError("disk full")
        super().append(envelopes, only)


def test_a_start_the_log_refuses_is_aborted_without_a_window() -> None:
    log = _Refusing(1)
    run = _SyncRun(Snapshotter(SimCloud(2, 4, seed=1), log))  # type: ignore[arg-type]
    reason = run.start()
    assert reason is not None and "disk full" in reason and run.window is None
    aborted = log.appended[-1].payload
    assert isinstance(aborted, ev.SnapshotAborted) and aborted.after is None and "not started" in aborted.reason


def test_a_stopped_listing_is_aborted_in_the_sync_window() -> None:
    _, log, run = _run()
    run.cancel = threading.Event()
    run.cancel.set()
    assert run.start() is None
    assert run.list() == STOPPED
    aborted = log.appended[-1].payload
    assert isinstance(aborted, ev.SnapshotAborted) and aborted.after == run.after
