"""The one retry mechanism (eventmodel/retry.py) and the metrics that count its retries:
delays bounded by the cap, a stop event ends a wait at once, every retry is reported."""

from __future__ import annotations

import math
import random
import threading
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from eventmodel.metrics import RetryMetrics, new_registry, render, serve
from eventmodel.retry import RetryEvent, RetryPolicy, RetryStopped
from tests.fixtures.polling import wait_until


class Flaky:
    """Fails ``failures`` times, then returns ``"done"``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "done"


@settings(max_examples=100, deadline=None)
@given(
    initial=st.floats(min_value=0.001, max_value=5.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    attempt=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_delay_is_positive_and_bounded_by_the_cap(
    initial: float, extra: float, multiplier: float, jitter: float, attempt: int, seed: int,
) -> None:
    cap = initial + extra
    policy = RetryPolicy("p", initial=initial, cap=cap, multiplier=multiplier, jitter=jitter,
                         rng=random.Random(seed))
    delay = policy.delay(attempt)
    grown = (attempt - 1) * math.log(multiplier) >= math.log(cap / initial)
    base = cap if grown else initial * multiplier ** (attempt - 1)
    assert 0 < delay <= cap
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


@settings(max_examples=50, deadline=None)
@given(failures=st.integers(min_value=0, max_value=30), seed=st.integers(min_value=0, max_value=2**32))
def test_each_retry_is_counted_reported_and_waited_for(failures: int, seed: int) -> None:
    registry = new_registry(process=False)
    counter = RetryMetrics(registry)
    events: list[RetryEvent] = []
    slept: list[float] = []
    policy = RetryPolicy("bridge.connect", initial=0.1, cap=2.0, rng=random.Random(seed),
                         on_retry=events.append).also_on_retry(counter.hook)
    fn = Flaky(failures)
    assert policy.call(fn, sleep=slept.append) == "done"
    assert fn.calls == failures + 1
    assert [e.attempt for e in events] == list(range(1, failures + 1))
    assert [e.delay for e in events] == slept  # the wait is the one reported
    assert all(0 < d <= 2.0 for d in slept)
    assert all(str(e.error) == f"failure {e.attempt}" for e in events)
    assert counter.value("bridge.connect") == failures
    samples = {s.labels.get("component"): s.value
               for f in text_string_to_metric_families(render(registry)[0].decode())
               for s in f.samples if s.name == "eventmodel_retries_total"}
    assert samples.get("bridge.connect", 0.0) == failures


def test_stop_event_ends_a_long_wait_promptly() -> None:
    stop = threading.Event()
    events: list[RetryEvent] = []
    policy = RetryPolicy("follower", initial=3600.0, cap=3600.0, stop=stop, on_retry=events.append)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            policy.call(Flaky(10**9))
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: events, 10, "the first failure to be reported")
    stop.set()
    t.join(10)  # an hour-long backoff; the stop must end it long before the join gives up
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RetryStopped)
    assert isinstance(outcome[0].last_error, ConnectionError)
    assert len(events) == 1


def test_stop_set_before_the_call_never_waits() -> None:
    stop = threading.Event()
    stop.set()
    policy = RetryPolicy("x", initial=3600.0, cap=3600.0, stop=stop)
    fn = Flaky(1)
    with pytest.raises(RetryStopped):
        policy.call(fn)
    assert fn.calls == 1


def test_give_up_errors_are_not_retried_and_stop_after_raises_the_last_error() -> None:
    events: list[RetryEvent] = []
    policy = RetryPolicy("x", initial=0.001, cap=0.002, give_up_on=(PermissionError,), on_retry=events.append)
    fn = Flaky(5, PermissionError)
    with pytest.raises(PermissionError):
        policy.call(fn)
    assert fn.calls == 1 and events == []

    limited = RetryPolicy("y", initial=0.001, cap=0.002, stop_after=0.05)
    forever = Flaky(10**9)
    with pytest.raises(ConnectionError):
        limited.call(forever)
    assert forever.calls >= 2


def test_first_error_counts_as_the_first_retry() -> None:
    events: list[RetryEvent] = []
    slept: list[float] = []
    policy = RetryPolicy("bridge.connect", initial=0.5, cap=1.0, on_retry=events.append)
    fn = Flaky(1)
    assert policy.call(fn, first_error=ConnectionResetError("lost"), sleep=slept.append) == "done"
    assert [e.attempt for e in events] == [1, 2]
    assert isinstance(events[0].error, ConnectionResetError)
    assert len(slept) == 2 and fn.calls == 2


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy("x", initial=0)
    with pytest.raises(ValueError):
        RetryPolicy("x", initial=2, cap=1)
    with pytest.raises(ValueError):
        RetryPolicy("x", jitter=1.0)


def test_metrics_endpoint_serves_the_registry_and_closes() -> None:
    registry = new_registry()
    counter = RetryMetrics(registry)
    RetryPolicy("bus.publish", initial=0.001, cap=0.001, on_retry=counter.hook).call(Flaky(2))
    with serve(registry, 0) as server:
        assert server.port > 0 and server.url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(server.url, timeout=10).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert "process_cpu_seconds" in families  # the process collectors are on it
    retries = [s for s in families["eventmodel_retries"].samples if s.name == "eventmodel_retries_total"]
    assert [(s.labels["component"], s.value) for s in retries] == [("bus.publish", 2.0)]
    with pytest.raises(OSError):  # closed: the port is no longer served
        urllib.request.urlopen(server.url, timeout=2)
    assert serve(registry, None).port is None  # no port: no endpoint
