"""The follower retries failed reads with the shared policy: the model stays as it was
and says why (``stale``), each retry is reported (the metrics count it), the follower
catches up once the log answers, and a stop ends a long backoff at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from eventmodel.events import ComputeService, ComputeServiceChanged, envelope
from eventmodel.log import open_log
from eventmodel.log.base import LogError
from eventmodel.metrics import RetryMetrics, new_registry
from eventmodel.retry import RetryEvent
from projections.projection import Follower, Projection
from tests.fixtures.polling import wait_until


class FlakyLog:
    """A real SQLite log whose ``end()`` fails while ``down`` is set."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self.down = threading.Event()

    def end(self) -> Any:
        if self.down.is_set():
            raise LogError("database is locked (simulated outage)")
        return self._log.end()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def _services(n: int, start: int = 0) -> list:
    return [envelope(ComputeServiceChanged(ComputeService(host=f"h{i}", binary="nova-compute", version=1)),
                     source="test", message_id=f"m{i}", occurred_at=1, recorded_at=1)
            for i in range(start, start + n)]


def test_read_failures_are_retried_reported_and_caught_up(tmp_path: Path) -> None:
    raw = open_log(f"sqlite:///{tmp_path}/events.db", create=True)
    log = FlakyLog(raw)
    raw.append(_services(5))
    registry = new_registry(process=False)
    retries = RetryMetrics(registry)
    events: list[RetryEvent] = []

    def hook(event: RetryEvent) -> None:
        events.append(event)
        retries.hook(event)

    projection = Projection()
    follower = Follower(log, projection, poll=0.01, on_retry=hook).start()
    try:
        projection.wait_for(lambda m: m.position.total == 5, timeout=30)
        log.down.set()
        raw.append(_services(3, start=5))
        wait_until(lambda: len(events) >= 3, 30, "three failed reads to be retried")
        assert follower.stale is not None and "simulated outage" in follower.stale
        assert projection.latest().position.total == 5  # the model stays as it was
        assert [e.attempt for e in events[:3]] == [1, 2, 3]
        assert all(e.component == "follower" for e in events)
        assert retries.value("follower") == len(events)
        log.down.clear()
        projection.wait_for(lambda m: m.position.total == 8, timeout=30)
        wait_until(lambda: follower.stale is None, 30, "the follower to be current again")
    finally:
        follower.stop(timeout=10)
        raw.close()


def test_stop_ends_a_long_backoff_at_once(tmp_path: Path) -> None:
    raw = open_log(f"sqlite:///{tmp_path}/events.db", create=True)
    log = FlakyLog(raw)
    log.down.set()
    events: list[RetryEvent] = []
    # a poll of 5 s makes the first backoff ~5 s and the later ones up to 10 s
    follower = Follower(log, Projection(), poll=5.0, on_retry=events.append).start()
    try:
        wait_until(lambda: events, 30, "the first failed read")
        assert follower._thread is not None
        follower._stop.set()
        follower._thread.join(3)  # well within the backoff: the wait ends on stop
        assert not follower._thread.is_alive()
        assert len(events) == 1
    finally:
        follower.stop(timeout=10)
        raw.close()
