"""The periodic syncer's scheduling: a first sync at start, triggers coalesced into at
most one more run, never two at once, failures survived, stop aborts the running sync,
jittered periods."""

from __future__ import annotations

import random
import threading

from hypothesis import given
from hypothesis import strategies as st

from eventmodel.sources.sync import STOPPED, PeriodicSync, SyncResult
from tests.fixtures.polling import wait_until


class ScriptedSnapshotter:
    """run_once blocks until released, records overlaps, and fails when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.active = 0
        self.overlaps = 0
        self.release = threading.Semaphore(0)
        self.entered = threading.Semaphore(0)
        self.fail_next = False
        self.crash_next = False
        self.wake_set_at_start: list[bool] = []
        self.psync: PeriodicSync | None = None

    def run_once(self, progress=None, cancel: threading.Event | None = None) -> SyncResult:
        self.active += 1
        self.overlaps += self.active > 1
        self.calls += 1
        self.wake_set_at_start.append(self.psync._wake.is_set() if self.psync else False)
        self.entered.release()
        try:
            while not self.release.acquire(timeout=0.05):
                if cancel is not None and cancel.is_set():
                    return SyncResult(str(self.calls), {}, 0, 0, error=STOPPED)
            if self.crash_next:
                self.crash_next = False
                raise RuntimeError("bug")
            if self.fail_next:
                self.fail_next = False
                return SyncResult(str(self.calls), {}, 0, 0, error="ConnectFailure: reset")
            return SyncResult(str(self.calls), {"instance": 1}, 0, 0)
        finally:
            self.active -= 1


def make(period: float = 3600.0) -> tuple[ScriptedSnapshotter, PeriodicSync, list[SyncResult]]:
    snap = ScriptedSnapshotter()
    results: list[SyncResult] = []
    psync = PeriodicSync(snap, period, on_result=results.append)  # type: ignore[arg-type]
    snap.psync = psync
    return snap, psync, results


def test_first_sync_at_start_and_triggers_during_a_sync_queue_one_more() -> None:
    snap, psync, results = make()
    psync.start()
    try:
        assert snap.entered.acquire(timeout=10)  # the first sync runs at start-up
        for _ in range(5):  # five requests while it runs ...
            psync.trigger()
        snap.release.release()
        assert snap.entered.acquire(timeout=10)  # ... are one more run
        snap.release.release()
        wait_until(lambda: len(results) == 2, timeout=10, what="two syncs")
        assert snap.wake_set_at_start == [False, False]  # nothing left queued after the second
        assert snap.overlaps == 0 and psync.runs == {"ok": 2, "failed": 0, "crashed": 0}
        psync.trigger()  # on demand while idle: runs without waiting for the period
        assert snap.entered.acquire(timeout=10)
        snap.release.release()
        wait_until(lambda: len(results) == 3, timeout=10, what="the sync on demand")
    finally:
        psync.stop(timeout=10)
    assert not psync.alive


def test_the_syncer_survives_failed_and_crashed_syncs() -> None:
    snap, psync, results = make()
    snap.fail_next = True
    psync.start()
    try:
        assert snap.entered.acquire(timeout=10)
        snap.release.release()
        wait_until(lambda: psync.runs["failed"] == 1, timeout=10, what="the failed sync")
        snap.crash_next = True
        psync.trigger()
        assert snap.entered.acquire(timeout=10)
        snap.release.release()
        wait_until(lambda: psync.runs["crashed"] == 1, timeout=10, what="the crashed sync")
        psync.trigger()
        assert snap.entered.acquire(timeout=10)
        snap.release.release()
        wait_until(lambda: psync.runs["ok"] == 1, timeout=10, what="a good sync after both")
        assert psync.alive and psync.last is not None and psync.last.ok
        assert [r.ok for r in results] == [False, True]  # a crash has no result
    finally:
        psync.stop(timeout=10)


def test_stop_aborts_the_running_sync() -> None:
    snap, psync, results = make()
    psync.start()
    assert snap.entered.acquire(timeout=10)
    psync.stop(timeout=10)
    assert not psync.alive
    assert [r.error for r in results] == [STOPPED]


def test_the_next_sync_follows_the_period_when_not_triggered() -> None:
    snap, psync, results = make(period=0.05)
    for _ in range(3):
        snap.release.release()
    psync.start()
    try:
        wait_until(lambda: len(results) >= 3, timeout=10, what="three periodic syncs")
    finally:
        psync.stop(timeout=10)


@given(st.floats(1, 1e5), st.floats(0, 0.9), st.integers(0, 2**32))
def test_jitter_stays_within_its_bounds(period: float, jitter: float, seed: int) -> None:
    psync = PeriodicSync(object(), period, jitter=jitter, rng=random.Random(seed))  # type: ignore[arg-type]
    delays = [psync.next_delay() for _ in range(20)]
    assert all(period * (1 - jitter) - 1e-6 <= d <= period * (1 + jitter) + 1e-6 for d in delays)
    if jitter > 0.01:
        assert len(set(delays)) > 1
