"""The AMQP bridge against a real RabbitMQ on loopback (started by compose/rabbitmq.sh).

Publishers are oslo.messaging's own Notifier (as Nova publishes), plain kombu (for
garbage the Notifier would never send) and the project's bus publisher. Every wait polls
a condition with a deadline; nothing sleeps to wait.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.codec import Codec
from eventmodel.log import open_log
from eventmodel.log.base import EventLog
from eventmodel.sources.amqp import Bridge, BridgeConfig
from eventmodel.sources.bus import AmqpBus
from eventmodel.sources.nova import NovaNormalizer
from tests.fixtures.rabbitmq import (
    oslo_notifier,
    publish_raw,
    publish_sample,
    queue_depth,
    restart_rabbitmq,
    wait_until,
)

pytestmark = pytest.mark.rabbitmq

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "versioned_notifications"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def load_samples(samples_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(samples_dir.glob("*.json"))]


def wire(sample: dict[str, Any], message_id: str | None = None, when: str = "2026-11-25 15:31:37.996213") -> bytes:
    """A sample as oslo.messaging's messagingv2 driver puts it on the wire."""
    inner = {
        "message_id": message_id or str(uuid.uuid4()),
        "publisher_id": sample["publisher_id"],
        "event_type": sample["event_type"],
        "priority": sample["priority"],
        "payload": sample["payload"],
        "timestamp": when,
        "_unique_id": uuid.uuid4().hex,
        "_context_request_id": "req-" + str(uuid.uuid4()),
    }
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def relevant_samples(samples_dir: Path) -> list[dict[str, Any]]:
    norm = NovaNormalizer()
    return [s for s in load_samples(samples_dir) if norm.normalize(s).status == "events"]


def stream(samples: list[dict[str, Any]], n: int, seed: str) -> list[bytes]:
    """``n`` wire notifications cycling through ``samples``, with deterministic ids."""
    return [
        wire(samples[i % len(samples)], str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")))
        for i in range(n)
    ]


def expected_ids(bodies: Iterable[bytes]) -> set[str]:
    norm = NovaNormalizer()
    out: set[str] = set()
    for b in bodies:
        o = norm.normalize(b)
        out.update(e.event_id for e in o.events)
    return out


def log_ids(log: EventLog) -> collections.Counter[str]:
    c: collections.Counter[str] = collections.Counter()
    for batch in log.read_raw():
        for r in batch:
            c[msgspec.json.decode(r.value)["event_id"]] += 1
    return c


@pytest.fixture
def bridge_factory(sqlite_url: str, rabbitmq_url: str) -> Iterator[Any]:
    """Start in-process bridges (stopped at teardown)."""
    started: list[tuple[Bridge, EventLog]] = []

    def make(queue: str, exchange: str, log_url: str | None = None, wrap: Any = None, topic: str = TOPIC,
             **kw: Any) -> Bridge:
        log = open_log(log_url or sqlite_url)
        if wrap is not None:
            log = wrap(log)
        cfg = BridgeConfig(
            amqp_url=rabbitmq_url, targets=[f"{exchange}.{topic}"], queue=queue,
            stats_interval=0, reconnect_initial=0.2, reconnect_max=2.0, **kw,
        )
        bridge = Bridge(log, cfg)
        bridge.start()
        started.append((bridge, log))
        assert bridge.wait_ready(30), f"bridge did not start consuming: {bridge.stats.last_error}"
        return bridge

    yield make
    for bridge, log in started:
        bridge.stop(timeout=30)
        log.close()


class BridgeProcess:
    """``python -m eventmodel.cli.main bridge ...`` as a subprocess."""

    def __init__(self, tmp: Path, log_url: str, amqp: str, exchange: str, queue: str, name: str = "bridge") -> None:
        self.out_path = tmp / f"{name}-{uuid.uuid4().hex[:6]}.out"
        self.args = [
            sys.executable, "-m", "eventmodel.cli.main", "bridge", "--log", log_url, "--amqp", amqp,
            "--topic", f"{exchange}.{TOPIC}", "--queue", queue, "--stats-every", "0.5",
        ]
        self.proc: subprocess.Popen | None = None

    def start(self) -> BridgeProcess:
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        return self

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stats_lines(self) -> int:
        return self.output.count("bridge: received=")

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bridge did not exit within {timeout}s; output:\n{self.output}", pytrace=False)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def close(self) -> None:
        self.kill()
        self._out.close()


@pytest.fixture
def bridge_procs() -> Iterator[list[BridgeProcess]]:
    procs: list[BridgeProcess] = []
    yield procs
    for p in procs:
        p.close()


# ---------------------------------------------------------------------------
# (1) Nova's samples through oslo.messaging's Notifier
# ---------------------------------------------------------------------------


def _without_versions(d: Any) -> Any:
    """A payload without what depends on when it was published: versions, and a
    service's ``up`` (Nova's servicegroup rule measures ``last_seen_up`` from the
    notification's timestamp, which the Notifier sets now; the samples' is from 2012)."""
    if isinstance(d, dict):
        return {k: _without_versions(v) for k, v in d.items()
                if k != "version" and not (k == "up" and "forced_down" in d)}
    if isinstance(d, list):
        return [_without_versions(v) for v in d]
    return d


def test_oslo_notifier_samples_become_typed_events(
    rabbitmq_url: str, amqp_queue: str, bridge_factory: Any, samples_dir: Path, sqlite_url: str
) -> None:
    samples = load_samples(samples_dir)
    norm = NovaNormalizer()
    codec = Codec()
    outcomes = [norm.normalize(s) for s in samples]
    expected = collections.Counter()
    for o in outcomes:
        for e in o.events:
            expected[(e.type, e.key, e.source, json.dumps(_without_versions(codec.unstructure_payload(e.payload)), sort_keys=True))] += 1
    n_events = sum(1 for o in outcomes if o.status == "events")
    n_irrelevant = sum(1 for o in outcomes if o.status == "irrelevant")
    assert n_events > 30 and n_irrelevant > 50  # the samples cover both

    # exactly as Nova: control exchange "nova", topic versioned_notifications, messagingv2
    bridge = bridge_factory(amqp_queue, "nova")
    with oslo_notifier(rabbitmq_url) as notifier:
        for i, s in enumerate(samples):
            publish_sample(notifier, s, i)
    wait_until(lambda: bridge.stats.acked >= len(samples), 60,
               f"{len(samples)} samples acknowledged (stats: {bridge.stats.line()})")

    s = bridge.stats
    assert s.event_messages == n_events
    assert s.irrelevant == n_irrelevant
    assert s.dead == 0
    assert s.acked == s.received == len(samples)

    log = open_log(sqlite_url)
    try:
        got = collections.Counter()
        for batch in log.read():
            for r in batch:
                e = r.envelope
                got[(e.type, e.key, e.source, json.dumps(_without_versions(codec.unstructure_payload(e.payload)), sort_keys=True))] += 1
        assert got == expected
        assert list(log.dead_letters()) == []
    finally:
        log.close()
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "the bridge's queue to be empty")


# ---------------------------------------------------------------------------
# (2) garbage is dead-lettered with its bytes; the stream continues
# ---------------------------------------------------------------------------

GARBAGE: list[tuple[bytes, str]] = [
    (b"\x00\xff\xfe not json at all", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2, 3]", "not an object"),
    (json.dumps({"oslo.version": "1.0", "oslo.message": "{}"}).encode(), "oslo.version"),
    (json.dumps({"oslo.version": "2.0"}).encode(), "oslo.message"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}).encode(), "not valid JSON"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({"publisher_id": "nova-compute:h"})}).encode(),
     "event_type"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(
        {"event_type": "instance.update", "publisher_id": "nova-compute:h", "message_id": "m",
         "timestamp": "2026-01-01 00:00:00", "payload": {"nova_object.data": {"uuid": 5}}})}).encode(),
     "instance.update"),
]


def test_garbage_is_dead_lettered_and_the_stream_continues(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    sqlite_url: str,
) -> None:
    good = relevant_samples(samples_dir)
    before = stream(good, 5, "before")
    after = stream(good, 5, "after")
    bridge = bridge_factory(amqp_queue, amqp_exchange)
    publish_raw(rabbitmq_url, amqp_exchange, before)
    publish_raw(rabbitmq_url, amqp_exchange, [g for g, _ in GARBAGE])
    # garbage with the wrong content type and on the error routing key, too
    publish_raw(rabbitmq_url, amqp_exchange, [b"<xml/>"], routing_key=f"{TOPIC}.error", content_type="text/xml")
    publish_raw(rabbitmq_url, amqp_exchange, after)
    total = len(before) + len(GARBAGE) + 1 + len(after)
    wait_until(lambda: bridge.stats.acked >= total, 60, f"{total} messages acknowledged ({bridge.stats.line()})")

    assert bridge.stats.dead == len(GARBAGE) + 1
    assert bridge.stats.event_messages == len(before) + len(after)
    log = open_log(sqlite_url)
    try:
        letters = list(log.dead_letters())
        by_raw = {d.raw: d for d in letters}
        for raw, fragment in GARBAGE:
            assert raw in by_raw, f"{raw!r} not dead-lettered"
            assert fragment in by_raw[raw].reason, (raw, by_raw[raw].reason)
            assert by_raw[raw].source == f"amqp:{amqp_exchange}/{TOPIC}.info"
        assert by_raw[b"<xml/>"].source == f"amqp:{amqp_exchange}/{TOPIC}.error"
        assert all(d.reason for d in letters)
        # the good messages after the garbage arrived, all of them
        assert expected_ids(before + after) <= set(log_ids(log))
    finally:
        log.close()

    # the operator's view
    from typer.testing import CliRunner

    from eventmodel.cli.main import app

    res = CliRunner().invoke(app, ["deadletters", "--log", sqlite_url, "--limit", "0"])
    assert res.exit_code == 0, res.output
    assert f"{len(GARBAGE) + 1} dead letters" in res.output
    assert "oslo.version" in res.output and "<xml/>" in res.output
    res = CliRunner().invoke(app, ["deadletters", "--log", sqlite_url, "--raw", "--limit", "1"])
    assert res.exit_code == 0 and res.stdout_bytes == b"<xml/>\n", res.stdout_bytes


# ---------------------------------------------------------------------------
# (3) hypothesis: every message ends as events, irrelevant or a dead letter
# ---------------------------------------------------------------------------

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False), st.text(max_size=12))
_json = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=8)


@st.composite
def mutated_sample(draw: Any, samples: list[dict[str, Any]]) -> bytes:
    """A real sample with parts removed or replaced, or a broken envelope."""
    s = json.loads(json.dumps(draw(st.sampled_from(samples))))
    inner: dict[str, Any] = {
        "message_id": str(uuid.uuid4()), "publisher_id": s["publisher_id"], "event_type": s["event_type"],
        "priority": s["priority"], "payload": s["payload"], "timestamp": "2026-11-25 15:31:37.996213",
    }
    how = draw(st.sampled_from(["none", "drop", "replace", "data", "envelope", "bytes", "json"]))
    if how == "drop":
        inner.pop(draw(st.sampled_from(sorted(inner))))
    elif how == "replace":
        inner[draw(st.sampled_from(sorted(inner)))] = draw(_json)
    elif how == "data":
        data = inner["payload"].get("nova_object.data", {})
        if data:
            key = draw(st.sampled_from(sorted(data)))
            if draw(st.booleans()):
                data.pop(key)
            else:
                data[key] = draw(_json)
    elif how == "bytes":
        return draw(st.binary(max_size=64))
    elif how == "json":
        return json.dumps(draw(_json)).encode()
    outer: dict[str, Any] = {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}
    if how == "envelope":
        part = draw(st.sampled_from(["oslo.version", "oslo.message"]))
        if draw(st.booleans()):
            outer.pop(part)
        else:
            outer[part] = draw(_json)
    return json.dumps(outer).encode()


def test_every_message_ends_as_events_irrelevant_or_dead(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    sqlite_url: str,
) -> None:
    samples = load_samples(samples_dir)
    bridge = bridge_factory(amqp_queue, amqp_exchange)
    norm = NovaNormalizer()
    log = open_log(sqlite_url)
    totals = collections.Counter()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(mutated_sample(samples), min_size=1, max_size=60))
    def check(bodies: list[bytes]) -> None:
        base = bridge.stats.snapshot()
        dead_before = sum(1 for _ in log.dead_letters())
        publish_raw(rabbitmq_url, amqp_exchange, bodies)
        wait_until(lambda: bridge.stats.acked - base.acked >= len(bodies), 60,
                   f"{len(bodies)} messages acknowledged ({bridge.stats.line()})")
        s = bridge.stats
        ev_msgs, irr, dead = (s.event_messages - base.event_messages, s.irrelevant - base.irrelevant, s.dead - base.dead)
        assert ev_msgs + irr + dead == len(bodies), (ev_msgs, irr, dead, len(bodies))
        want = collections.Counter(norm.normalize(b).status for b in bodies)
        assert (ev_msgs, irr, dead) == (want["events"], want["irrelevant"], want["dead"])
        assert sum(1 for _ in log.dead_letters()) - dead_before == dead
        totals.update(want)
        assert expected_ids(bodies) <= set(log_ids(log))

    try:
        check()
    finally:
        log.close()
    assert sum(totals.values()) > 0


# ---------------------------------------------------------------------------
# (4) kill -9 mid-stream: at-least-once; the model equals the truth after a full sync
# ---------------------------------------------------------------------------


def test_kill_9_mid_stream_loses_nothing(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, sqlite_url: str, tmp_path: Path,
    bridge_procs: list[BridgeProcess],
) -> None:
    from eventmodel.sim.cloud import SimCloud, diff_truth
    from eventmodel.sources.sync import Snapshotter

    sim = SimCloud(20, 200, seed=7)  # fixed seed, no faults: every notification is sent
    log = open_log(sqlite_url)
    try:
        syncer = Snapshotter(sim, log, source="test-sync", clock=lambda: sim.clock_us)
        assert syncer.run_once().ok  # the model learns what runs before the stream starts
        bodies = sim.step(3000) + sim.flush()
        want = expected_ids(bodies)
        assert len(bodies) > 15_000 and len(want) > 10_000

        first = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "first").start()
        bridge_procs.append(first)
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) is not None, 60, "the bridge's queue")
        start_total = log.end().total
        with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
            pub = threading.Thread(target=bus.publish, args=(bodies,))
            pub.start()
            wait_until(lambda: log.end().total - start_total >= 2000, 60, "the bridge to store some events")
            first.kill()  # SIGKILL, mid-stream
            assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
            stored_at_kill = len(set(log_ids(log)) & want)
            pub.join(120)
        assert not pub.is_alive()
        assert stored_at_kill < len(want), "the kill should happen mid-stream"

        second = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "second").start()
        bridge_procs.append(second)
        wait_until(lambda: want <= set(log_ids(log)), 120,
                   f"every published notification's events on the log ({len(want)} ids)")
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 30, "an empty queue")
        dupes = sum(c - 1 for c in log_ids(log).values() if c > 1)
        print(f"kill -9 after {stored_at_kill} of {len(want)} events; {dupes} duplicates after restart")

        from projections.replay import model_at

        assert syncer.run_once().ok  # the final full sync
        model = model_at(log)
        diffs = diff_truth(sim.truth(), model.instances(), model.compute_nodes(), model.services())
        assert diffs == [], "\n".join(diffs[:20])
    finally:
        log.close()


# ---------------------------------------------------------------------------
# (5) SIGTERM: clean shutdown, everything received is stored and acknowledged
# ---------------------------------------------------------------------------


def test_sigterm_stores_and_acks_the_current_batch(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, samples_dir: Path, sqlite_url: str,
    tmp_path: Path, bridge_procs: list[BridgeProcess],
) -> None:
    bodies = stream(relevant_samples(samples_dir), 6000, "sigterm")
    want = expected_ids(bodies)
    assert len(want) == len(bodies)
    first = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "first").start()
    bridge_procs.append(first)
    wait_until(lambda: first.stats_lines() > 0 and queue_depth(rabbitmq_url, amqp_queue) is not None, 60,
               "the bridge to declare its queue")
    log = open_log(sqlite_url)
    try:
        with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
            pub = threading.Thread(target=bus.publish, args=(bodies,))
            pub.start()
            # mid-stream: some stored, not all
            wait_until(lambda: log.end().total >= 500, 60, "the bridge to store some events")
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            rc = first.wait_exit(60)
            pub.join(120)
        assert rc == 0, first.output
        assert "bridge stopped:" in first.output and "left unacknowledged" not in first.output
        stored = log_ids(log)
        assert len(stored) > 0
        assert max(stored.values()) == 1
        # what was not stored is still in the queue, nothing else: nothing lost, nothing
        # stored-but-unacknowledged
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == len(bodies) - len(stored), 30,
                   f"queue depth == {len(bodies) - len(stored)} (is {queue_depth(rabbitmq_url, amqp_queue)})")

        # a second run drains the rest; then an idle SIGTERM leaves an empty queue
        second = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "second").start()
        bridge_procs.append(second)
        wait_until(lambda: log.end().total >= len(bodies), 120, "all events stored")
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 30, "an empty queue")
        assert second.proc is not None
        second.proc.send_signal(signal.SIGTERM)
        assert second.wait_exit(60) == 0, second.output
        assert queue_depth(rabbitmq_url, amqp_queue) == 0
        final = log_ids(log)
        assert set(final) == want
        assert max(final.values()) == 1, "a clean shutdown must not cause redelivery"
    finally:
        log.close()


# ---------------------------------------------------------------------------
# (6) RabbitMQ restarts under the bridge
# ---------------------------------------------------------------------------


class SlowLog:
    """A log that takes its time to store a batch (so a restart finds work in flight)."""

    def __init__(self, log: EventLog, delay: float) -> None:
        self._log, self._delay = log, delay

    def append(self, envelopes: Any) -> None:
        time.sleep(self._delay)  # simulated store latency, not a wait
        self._log.append(envelopes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def test_bridge_survives_a_rabbitmq_restart(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    sqlite_url: str,
) -> None:
    good = relevant_samples(samples_dir)
    first_half = stream(good, 3000, "restart-1")
    second_half = stream(good, 3000, "restart-2")
    bridge = bridge_factory(amqp_queue, amqp_exchange, batch_size=50, prefetch=200,
                            wrap=lambda log: SlowLog(log, 0.05))
    with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
        bus.publish(first_half)
    # restart while the bridge is busy with the first half (stored ~1,000/s here)
    wait_until(lambda: bridge.stats.acked > 0, 30, "the bridge to start storing")
    acked_before = bridge.stats.acked
    restart_rabbitmq(rabbitmq_url)
    assert acked_before < len(first_half), "the restart should find messages in flight"

    wait_until(lambda: bridge.stats.reconnects >= 1 and bridge.stats.consuming, 120,
               f"the bridge to reconnect ({bridge.stats.line()})")
    with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
        bus.publish(second_half)
    want = expected_ids(first_half + second_half)
    log = open_log(sqlite_url)
    try:
        wait_until(lambda: want <= set(log_ids(log)), 120,
                   f"every event on the log after the restart ({bridge.stats.line()})")
    finally:
        log.close()
    assert bridge.stats.reconnects >= 1
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 30, "an empty queue")


# ---------------------------------------------------------------------------
# (7) declaring never conflicts with Nova's oslo.messaging; a wrong queue is a clear error
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nova_durable", [False, True], ids=["amqp_durable_queues=False", "amqp_durable_queues=True"])
@pytest.mark.parametrize("bridge_first", [True, False], ids=["bridge-first", "nova-first"])
def test_exchange_flags_never_conflict_with_nova(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    nova_durable: bool, bridge_first: bool,
) -> None:
    """Nova declares its exchange with durable=amqp_durable_queues; the bridge, configured
    with the cloud's setting (as every oslo.messaging listener is), uses an existing
    exchange as it is and creates a missing one with the same flags: whichever side comes
    first, neither gets PRECONDITION_FAILED and the notifications arrive.

    A topic of its own: oslo.messaging also declares a queue named after the routing key
    (``<topic>.info``) with the same durability, and a broker holds one such queue per
    name, so a cloud cannot mix the two settings anyway.
    """
    from tests.fixtures.rabbitmq import _delete, amqp_channel

    topic = f"{TOPIC}-{uuid.uuid4().hex[:8]}"
    if not bridge_first:  # Nova's services are up first and declared the exchange
        with amqp_channel(rabbitmq_url) as ch:
            ch.exchange_declare(amqp_exchange, "topic", durable=nova_durable, auto_delete=False)
    bridge = bridge_factory(amqp_queue, amqp_exchange, topic=topic, exchange_durable=nova_durable)
    samples = relevant_samples(samples_dir)[:10]
    try:
        # Nova itself: oslo.messaging declares the exchange (falling back to non-durable on a
        # durability mismatch) and publishes
        with oslo_notifier(rabbitmq_url, exchange=amqp_exchange, durable=nova_durable, topics=(topic,)) as notifier:
            for i, s in enumerate(samples):
                publish_sample(notifier, s, i)
        wait_until(lambda: bridge.stats.acked >= len(samples), 30, f"the notifications ({bridge.stats.line()})")
        assert bridge.stats.event_messages == len(samples) and bridge.stats.reconnects == 0
        # and the project's own publisher (the demo's --bus) with the same flags
        bodies = stream(samples, 10, f"flags-{nova_durable}-{bridge_first}")
        with AmqpBus(rabbitmq_url, exchange=amqp_exchange, topic=topic, durable=nova_durable) as bus:
            bus.publish(bodies)
            assert bus.republished == 0
        wait_until(lambda: bridge.stats.acked >= len(samples) + len(bodies), 30,
                   f"the bus's notifications ({bridge.stats.line()})")
        assert bridge.stats.reconnects == 0
    finally:
        _delete(rabbitmq_url, queue=f"{topic}.info")


def test_wait_for_exchange_never_creates_it(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, sqlite_url: str, samples_dir: Path
) -> None:
    """--wait-for-exchange: the bridge retries until Nova has declared the exchange."""
    from tests.fixtures.rabbitmq import amqp_channel

    log = open_log(sqlite_url)
    bridge = Bridge(log, BridgeConfig(amqp_url=rabbitmq_url, targets=[f"{amqp_exchange}.{TOPIC}"],
                                      queue=amqp_queue, stats_interval=0, declare_exchange=False,
                                      reconnect_initial=0.1, reconnect_max=0.5))
    try:
        bridge.start()
        wait_until(lambda: bridge.stats.reconnects >= 2, 30, "the bridge to retry")
        assert not bridge.stats.consuming and "does not exist yet" in (bridge.stats.last_error or "")
        with amqp_channel(rabbitmq_url) as ch:  # Nova starts (amqp_durable_queues=True, say)
            ch.exchange_declare(amqp_exchange, "topic", durable=True, auto_delete=False)
        assert bridge.wait_ready(30)
        bodies = stream(relevant_samples(samples_dir), 10, "wait-for-exchange")
        with AmqpBus(rabbitmq_url, exchange=amqp_exchange, durable=True, declare_default_queue=False) as bus:
            bus.publish(bodies)
        wait_until(lambda: bridge.stats.acked >= len(bodies), 30, f"the notifications ({bridge.stats.line()})")
    finally:
        bridge.stop()
        log.close()


def test_quorum_queue(rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any,
                      samples_dir: Path) -> None:
    bridge = bridge_factory(amqp_queue, amqp_exchange, queue_type="quorum")
    bodies = stream(relevant_samples(samples_dir), 20, "quorum")
    with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
        bus.publish(bodies)
    wait_until(lambda: bridge.stats.acked >= len(bodies), 30, f"the notifications ({bridge.stats.line()})")
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "an empty queue")
    listed = subprocess.run(["rabbitmqctl", "-n", "rabbit@localhost", "-q", "list_queues", "name", "type"],
                            capture_output=True, text=True, timeout=60)
    types = dict(line.split()[:2] for line in listed.stdout.splitlines() if len(line.split()) >= 2)
    assert types.get(amqp_queue) == "quorum", listed.stdout + listed.stderr


def test_queue_with_other_flags_is_a_clear_error(rabbitmq_url: str, amqp_queue: str, amqp_exchange: str,
                                                 sqlite_url: str) -> None:
    from eventmodel.sources.amqp import BridgeConfigError
    from tests.fixtures.rabbitmq import amqp_channel

    with amqp_channel(rabbitmq_url) as ch:
        ch.queue_declare(amqp_queue, durable=False, auto_delete=False)
    log = open_log(sqlite_url)
    try:
        bridge = Bridge(log, BridgeConfig(amqp_url=rabbitmq_url, targets=[f"{amqp_exchange}.{TOPIC}"],
                                          queue=amqp_queue, stats_interval=0))
        bridge.start()
        assert bridge.wait_done(30)
        assert isinstance(bridge.error, BridgeConfigError)
        assert amqp_queue in str(bridge.error) and "durable" in str(bridge.error)
    finally:
        log.close()


# ---------------------------------------------------------------------------
# (8) the log is down: nothing is acknowledged, the append is retried
# ---------------------------------------------------------------------------


class FlakyLog:
    """A log that refuses appends while ``down`` is set (a Kafka outage, say)."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = 0
        self._log: EventLog | None = None

    def attach(self, log: EventLog) -> FlakyLog:
        self._log = log
        return self

    def append(self, envelopes: Any) -> None:
        from eventmodel.log import LogError

        if self.down.is_set():
            self.refused += 1
            raise LogError("log unreachable (simulated outage)")
        assert self._log is not None
        self._log.append(envelopes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def test_log_outage_blocks_and_retries_without_acking(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    sqlite_url: str,
) -> None:
    flaky = FlakyLog()
    flaky.down.set()
    bridge = bridge_factory(amqp_queue, amqp_exchange, wrap=flaky.attach, retry_initial=0.02, retry_max=0.2)
    good = relevant_samples(samples_dir)
    first = stream(good, 100, "outage-1")
    with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
        bus.publish(first)
    wait_until(lambda: bridge.stats.append_failures >= 5, 30, "append retries")
    assert bridge.stats.acked == 0 and "simulated outage" in (bridge.stats.last_error or "")
    log = open_log(sqlite_url)
    try:
        assert log.end().total == 0
        flaky.down.clear()  # the log is back
        wait_until(lambda: bridge.stats.acked >= len(first), 30, f"the backlog stored ({bridge.stats.line()})")
        assert expected_ids(first) <= set(log_ids(log))
        assert bridge.stats.reconnects == 0

        # down again, and the bridge is stopped meanwhile: the messages go back to the queue
        flaky.down.set()
        second = stream(good, 50, "outage-2")
        with AmqpBus(rabbitmq_url, exchange=amqp_exchange, declare_default_queue=False) as bus:
            bus.publish(second)
        failures = bridge.stats.append_failures
        wait_until(lambda: bridge.stats.append_failures >= failures + 3, 30, "append retries")
        bridge.stop()
        assert bridge.stats.abandoned >= 1
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == len(second), 30,
                   "the unstored messages back in the queue")
        assert not (expected_ids(second) & set(log_ids(log)))
    finally:
        log.close()
