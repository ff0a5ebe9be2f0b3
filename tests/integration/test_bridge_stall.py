"""Issue 11, finding 1: an append that stalls (Kafka unreachable, or slow) costs the
bridge neither its AMQP connection nor a second copy of the batch, and SIGTERM during a
stall stops the bridge in seconds with nothing acknowledged that is not stored.

Real RabbitMQ (compose/rabbitmq.sh), the real Kafka broker (compose/kafka.sh);
notifications published with oslo.messaging's Notifier, as Nova publishes them. A stall is
either a log wrapper whose appends wait for a gate (exact, short heartbeat) or the Kafka
broker process paused with SIGSTOP (the real thing, the default heartbeat). Waits poll a
condition with a deadline; the only waits on time itself are the stalls being measured.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventmodel.log import open_log
from eventmodel.log.base import EventLog
from eventmodel.sources.nova import NovaNormalizer
from tests.fixtures.kafka import run_script
from tests.fixtures.rabbitmq import consumer_count, oslo_notifier, publish_sample, queue_depth, wait_until
from tests.integration.test_amqp_bridge import BridgeProcess, bridge_factory, bridge_procs, log_ids  # noqa: F401 - fixtures

pytestmark = [pytest.mark.rabbitmq, pytest.mark.kafka]

TOPIC = "versioned_notifications"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def event_samples(samples_dir: Path) -> list[dict[str, Any]]:
    """Nova's samples that become events (each publish of one gets a new message id)."""
    import json

    norm = NovaNormalizer()
    out = []
    for p in sorted(samples_dir.glob("*.json")):
        s = json.loads(p.read_text())
        if norm.normalize(s).status == "events":
            out.append(s)
    return out


def events_of(samples: list[dict[str, Any]]) -> int:
    """How many events publishing ``samples`` once each makes."""
    norm = NovaNormalizer()
    return sum(len(norm.normalize(s).events) for s in samples)


def publish(url: str, exchange: str, samples: list[dict[str, Any]], offset: int = 0) -> None:
    """Publish each sample once through oslo.messaging's Notifier (as Nova does)."""
    with oslo_notifier(url, exchange=exchange) as notifier:
        for i, s in enumerate(samples):
            publish_sample(notifier, s, offset + i)


class GateLog:
    """Wraps a log; while ``gate`` is closed, an append waits for it (a stalled log).
    Records every append call and the most appends ever in flight at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.blocked_since: float | None = None
        self.calls: list[list[str]] = []  # event ids of each append call
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._log: EventLog | None = None

    def attach(self, log: EventLog) -> GateLog:
        self._log = log
        return self

    def close_gate(self) -> None:
        self.entered.clear()
        self.blocked_since = None
        self.gate.clear()

    def blocked_for(self) -> float:
        return 0.0 if self.blocked_since is None else time.monotonic() - self.blocked_since

    def append(self, envelopes: Any) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append([e.event_id for e in envelopes])
        try:
            if not self.gate.is_set():
                self.blocked_since = time.monotonic()
                self.entered.set()
                assert self.gate.wait(120), "the gate was never opened"
            assert self._log is not None
            self._log.append(envelopes)
        finally:
            with self._lock:
                self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def kafka_pid() -> int:
    res = run_script("status", timeout=60)
    m = re.search(r"pid (\d+)", res.stdout)
    assert res.returncode == 0 and m, f"no Kafka broker running: {res.stdout}{res.stderr}"
    return int(m.group(1))


@contextlib.contextmanager
def kafka_paused() -> Iterator[float]:
    """The Kafka broker process stopped with SIGSTOP (a broker that hangs: connections stay
    open, nothing answers) until the block ends; yields when it was paused."""
    pid = kafka_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(pid, signal.SIGCONT)


def last_stat(output: str, name: str) -> int:
    """The newest value of counter ``name`` in a bridge process's stats lines."""
    found = re.findall(rf"^bridge: received=\d+ .*?\b{name}=(\d+)" if name != "received"
                       else r"^bridge: received=(\d+)", output, re.M)
    return int(found[-1]) if found else 0


# ---------------------------------------------------------------------------
# a stall longer than 2 × heartbeat: no reconnect, no second copy, nothing lost
# ---------------------------------------------------------------------------


def test_append_stall_longer_than_two_heartbeats_keeps_the_connection(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    kafka_url: str,
) -> None:
    samples = event_samples(samples_dir)
    first, during = samples[:20], samples[20:40]
    gate = GateLog()
    heartbeat = 2.0
    bridge = bridge_factory(amqp_queue, amqp_exchange, log_url=kafka_url, wrap=gate.attach, heartbeat=heartbeat)

    gate.close_gate()
    publish(rabbitmq_url, amqp_exchange, first)
    assert gate.entered.wait(30), f"no append started ({bridge.stats.line()})"
    # the connection thread keeps reading: messages sent during the stall are received
    publish(rabbitmq_url, amqp_exchange, during, offset=100)
    wait_until(lambda: bridge.stats.received >= len(first) + len(during), 30,
               f"messages received during the stall ({bridge.stats.line()})")
    stall = 2.5 * heartbeat  # py-amqp and RabbitMQ give up after 2 missed heartbeats
    wait_until(lambda: gate.blocked_for() >= stall or bridge.stats.reconnects, stall + 10,
               f"a {stall:.0f}s stall")
    assert bridge.stats.reconnects == 0 and bridge.stats.connected, bridge.stats.line()
    assert bridge.stats.acked == 0
    assert consumer_count(rabbitmq_url, amqp_queue) == 1  # the same connection, still subscribed

    gate.gate.set()
    total = len(first) + len(during)
    wait_until(lambda: bridge.stats.acked >= total, 60, f"everything stored ({bridge.stats.line()})")
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "an empty queue")
    assert bridge.stats.reconnects == 0 and bridge.stats.abandoned == 0
    assert gate.max_in_flight == 1
    appended = collections.Counter(i for call in gate.calls for i in call)
    assert max(appended.values()) == 1, "an event was handed to the log twice"
    log = open_log(kafka_url)
    try:
        stored = log_ids(log)
    finally:
        log.close()
    assert len(stored) == events_of(first) + events_of(during)
    assert max(stored.values()) == 1, "a batch was stored twice"


@pytest.mark.timeout(180)
def test_kafka_hangs_past_two_default_heartbeats(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    kafka_url: str,
) -> None:
    """The default heartbeat (30 s) and a real hang: the Kafka broker paused for 65 s."""
    samples = event_samples(samples_dir)
    warm, stalled, late = samples[:5], samples[5:25], samples[25:35]
    bridge = bridge_factory(amqp_queue, amqp_exchange, log_url=kafka_url)
    assert bridge.config.heartbeat == 30.0
    publish(rabbitmq_url, amqp_exchange, warm)
    wait_until(lambda: bridge.stats.acked >= len(warm), 60, f"the first messages stored ({bridge.stats.line()})")

    stall = 2 * bridge.config.heartbeat + 5
    with kafka_paused() as paused_at:
        publish(rabbitmq_url, amqp_exchange, stalled, offset=100)
        wait_until(lambda: bridge.stats.received >= len(warm) + len(stalled), 30,
                   f"messages received ({bridge.stats.line()})")
        wait_until(lambda: time.monotonic() - paused_at >= stall - 10 or bridge.stats.reconnects, stall,
                   "most of the stall")
        publish(rabbitmq_url, amqp_exchange, late, offset=200)  # still read while the append hangs
        wait_until(lambda: bridge.stats.received >= len(warm) + len(stalled) + len(late), 30,
                   f"late messages received ({bridge.stats.line()})")
        wait_until(lambda: time.monotonic() - paused_at >= stall or bridge.stats.reconnects, stall,
                   f"a {stall:.0f}s stall")
        assert bridge.stats.reconnects == 0 and bridge.stats.connected, bridge.stats.line()
        assert bridge.stats.acked == len(warm), "acknowledged while the log could not store"

    total = len(warm) + len(stalled) + len(late)
    wait_until(lambda: bridge.stats.acked >= total, 90, f"everything stored after the hang ({bridge.stats.line()})")
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "an empty queue")
    assert bridge.stats.reconnects == 0 and bridge.stats.abandoned == 0
    log = open_log(kafka_url)
    try:
        stored = log_ids(log)
    finally:
        log.close()
    assert len(stored) == events_of(warm) + events_of(stalled) + events_of(late), "lost events"
    assert max(stored.values()) == 1, "a batch was stored twice"


# ---------------------------------------------------------------------------
# SIGTERM during a stall
# ---------------------------------------------------------------------------


def test_sigterm_during_a_stall_stops_in_seconds_and_acks_nothing_unstored(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, samples_dir: Path, kafka_url: str,
    tmp_path: Path, bridge_procs: list[BridgeProcess],
) -> None:
    samples = event_samples(samples_dir)
    before, stalled = samples[:10], samples[10:40]
    first = BridgeProcess(tmp_path, kafka_url, rabbitmq_url, amqp_exchange, amqp_queue, "first")
    first.args += ["--heartbeat", "2", "--stop-grace", "2"]
    bridge_procs.append(first.start())
    wait_until(lambda: consumer_count(rabbitmq_url, amqp_queue) == 1, 60, f"the bridge to consume\n{first.output}")
    publish(rabbitmq_url, amqp_exchange, before)
    wait_until(lambda: last_stat(first.output, "acked") >= len(before), 30, f"the first messages stored\n{first.output}")

    with kafka_paused():
        publish(rabbitmq_url, amqp_exchange, stalled, offset=100)
        wait_until(lambda: last_stat(first.output, "received") >= len(before) + len(stalled), 30,
                   f"the bridge to receive the messages\n{first.output}")
        assert first.proc is not None
        first.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = first.wait_exit(30)
        took = time.monotonic() - t0
        # while Kafka still hangs: not one of them was acknowledged
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == len(stalled), 10,
                   f"the {len(stalled)} unstored messages back in the queue "
                   f"(depth {queue_depth(rabbitmq_url, amqp_queue)})")
    assert rc == 0, first.output
    assert took < 8, f"SIGTERM took {took:.1f}s\n{first.output}"
    assert "left unacknowledged" in first.output and "append still in flight" in first.output, first.output
    assert "acked=" in first.output and last_stat(first.output, "acked") == len(before)

    # the next bridge gets them all: nothing acknowledged was left unstored
    second = BridgeProcess(tmp_path, kafka_url, rabbitmq_url, amqp_exchange, amqp_queue, "second")
    bridge_procs.append(second.start())
    want = events_of(before) + events_of(stalled)
    log = open_log(kafka_url)
    try:
        wait_until(lambda: len(log_ids(log)) >= want, 60, f"every event stored\n{second.output}")
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 30, "an empty queue")
        stored = log_ids(log)
        assert len(stored) == want
        assert max(stored.values()) <= 2  # a stalled append that still landed: one more copy at most
    finally:
        log.close()
    assert second.proc is not None
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0, second.output
