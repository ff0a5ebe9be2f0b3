"""AMQP benchmarks, side by side in one run (these machines are noisy).

    python -m tests.bench.bench_amqp [-n 50000] [--rate 500] [--seconds 10] [--log URL]

(a) RabbitMQ itself: publish rate (batched publisher confirms, to a durable queue nobody
    reads) and the consume rate of a bare kombu consumer (prefetch, batched acks) — the
    ceiling for the bridge;
(b) notifications/s through RabbitMQ → bridge → log: draining a backlog (the bridge
    alone), and live (a publisher process publishing while the bridge consumes);
(c) publish-to-visible latency at a steady rate (default 500/s for 10 s): each
    notification's ``timestamp`` is set to the moment it is published, so every event
    carries its publish time as ``occurred_at``; an observer notes when it sees it.
    The observer here is :class:`LogObserver` ("appended": readable from the log);
    another observer (e.g. "visible in the projection") plugs into :func:`latency`.

Notifications are a SimCloud stream (fixed seed): the real mix of relevant and
irrelevant Nova notifications. Targets: (b) ≥ 5,000 notifications/s; (c) p99 ≤ 100 ms.
RabbitMQ is started with compose/rabbitmq.sh if it is not running (and stopped again).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import attrs
import msgspec

from eventmodel.log import open_log
from eventmodel.log.base import EventLog, Position
from eventmodel.sources.amqp import Bridge, BridgeConfig
from eventmodel.sources.bus import AmqpBus
from eventmodel.sources.nova import NovaNormalizer, nova_time
from tests.fixtures.rabbitmq import wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "compose" / "rabbitmq.sh"
URL = os.environ.get("EVENTMODEL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
TOPIC = "versioned_notifications"
TARGET_RATE = 5_000
TARGET_P99_MS = 100.0


# ---------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------


def ensure_rabbitmq() -> bool:
    """Start RabbitMQ if needed; True if this run started it."""
    if subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0:
        return False
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"compose/rabbitmq.sh start failed:\n{r.stdout}\n{r.stderr}")
    print(f"rabbitmq: compose/rabbitmq.sh start took {time.perf_counter() - t0:.1f} s")
    return True


def notifications(n: int, seed: int = 11) -> list[bytes]:
    """``n`` wire notifications from a simulated cloud (the real relevant/irrelevant mix)."""
    from eventmodel.sim.cloud import SimCloud

    sim = SimCloud(50, 1000, seed=seed)
    out: list[bytes] = []
    while len(out) < n:
        out.extend(sim.step(1000))
    return out[:n]


class Names:
    """A fresh exchange and queue for one measurement; deleted by ``cleanup``."""

    def __init__(self, what: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.exchange = f"bench-{what}-{tag}"
        self.queue = f"bench-{what}-{tag}"

    def declare_queue(self) -> None:
        import kombu

        with kombu.Connection(URL) as conn:
            ch = conn.channel()
            ch.exchange_declare(self.exchange, "topic", durable=False, auto_delete=False)
            ch.queue_declare(self.queue, durable=True, auto_delete=False)
            for p in ("info", "error"):
                ch.queue_bind(self.queue, self.exchange, f"{TOPIC}.{p}")

    def cleanup(self) -> None:
        import kombu

        try:
            with kombu.Connection(URL) as conn:
                ch = conn.channel()
                ch.queue_delete(self.queue)
                ch.exchange_delete(self.exchange)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not delete {self.queue}: {exc})")


def _bus(exchange: str) -> AmqpBus:
    return AmqpBus(URL, exchange=exchange, declare_default_queue=False, batch=1000)


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(cond, timeout, what, interval=0.005)


# ---------------------------------------------------------------------------
# (a) RabbitMQ alone
# ---------------------------------------------------------------------------


def bare_broker(bodies: list[bytes]) -> dict[str, float]:
    names = Names("bare")
    names.declare_queue()
    try:
        with _bus(names.exchange) as bus:
            t0 = time.perf_counter()
            bus.publish(bodies)
            t_pub = time.perf_counter() - t0

        import kombu

        n = len(bodies)
        got = 0
        with kombu.Connection(URL) as conn:
            ch = conn.channel()
            ch.auto_decode = False
            ch.basic_qos(0, 1000, False)
            last = [0]

            def on_message(msg: object) -> None:
                nonlocal got
                got += 1
                tag = msg.delivery_info["delivery_tag"]  # type: ignore[attr-defined]
                if got % 500 == 0 or got == n:
                    ch.basic_ack(tag, multiple=True)
                last[0] = tag

            t0 = time.perf_counter()
            ch.basic_consume(names.queue, callback=on_message, no_ack=False)
            raw = conn.connection
            while got < n:
                try:
                    raw.drain_events(timeout=5)
                except socket.timeout:
                    raise SystemExit(f"bare consumer stalled at {got}/{n}") from None
            t_con = time.perf_counter() - t0
        return {"publish": n / t_pub, "consume": n / t_con}
    finally:
        names.cleanup()


# ---------------------------------------------------------------------------
# (b) throughput through the bridge
# ---------------------------------------------------------------------------


def _publisher(exchange: str, bodies: list[bytes], ready: mp.Event, go: mp.Event, took: mp.Value) -> None:  # type: ignore[valid-type]
    with _bus(exchange) as bus:
        bus._connect()  # noqa: SLF001 - connect before the clock starts
        ready.set()
        go.wait()
        t0 = time.perf_counter()
        bus.publish(bodies)
        took.value = time.perf_counter() - t0


def through_bridge(bodies: list[bytes], log_url: str, live: bool, **bridge_kw: object) -> dict[str, float]:
    names = Names("live" if live else "drain")
    names.declare_queue()
    log = open_log(log_url)
    try:
        bridge = Bridge(log, BridgeConfig(amqp_url=URL, targets=[f"{names.exchange}.{TOPIC}"], queue=names.queue,
                                          stats_interval=0, **bridge_kw))  # type: ignore[arg-type]
        n = len(bodies)
        if live:
            ctx = mp.get_context("fork")
            ready, go, pub_took = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
            proc = ctx.Process(target=_publisher, args=(names.exchange, bodies, ready, go, pub_took))
            proc.start()
            ready.wait(60)
            bridge.start()
            bridge.wait_ready(30)
            t0 = time.perf_counter()
            go.set()
        else:
            with _bus(names.exchange) as bus:
                bus.publish(bodies)
            bridge.start()
            t0 = time.perf_counter()
        _wait(lambda: bridge.stats.acked >= n, 600, "the bridge to acknowledge everything")
        took = time.perf_counter() - t0
        s = bridge.stats.snapshot()
        bridge.stop()
        publish_rate = 0.0
        if live:
            proc.join(60)
            publish_rate = n / pub_took.value if pub_took.value else 0.0
        return {"publish_rate": publish_rate, "rate": n / took, "seconds": took, "events": s.events, "batches": s.batches,
                "per_batch": s.acked / max(s.batches, 1), "events_per_s": s.events / took}
    finally:
        log.close()
        names.cleanup()


# ---------------------------------------------------------------------------
# (c) latency
# ---------------------------------------------------------------------------


class Observer(Protocol):
    """Notices events; ``poll()`` returns (published_us, seen_us) for each new one."""

    name: str

    def poll(self) -> list[tuple[int, int]]: ...

    def close(self) -> None: ...


class _Head(msgspec.Struct):
    occurred_at: int


class LogObserver:
    """An event is seen when a reader of the log can read it ("appended")."""

    name = "appended"

    def __init__(self, log_url: str) -> None:
        self.log: EventLog = open_log(log_url)
        self.pos: Position = self.log.end()
        self._head = msgspec.json.Decoder(_Head)

    def poll(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for batch in self.log.read_raw(self.pos):
            now = time.time_ns() // 1000
            for r in batch:
                out.append((self._head.decode(r.value).occurred_at, now))
                self.pos = self.pos.advance(r.partition, r.offset)
        return out

    def close(self) -> None:
        self.log.close()


class ProjectionObserver:
    """An event is seen when ``Projection.latest()`` includes it ("visible in the projection"):
    a follower tails the log (polling every 5 ms) and folds it, as a decision engine's
    process would."""

    name = "visible in the projection"

    def __init__(self, log_url: str) -> None:
        from projections.projection import Follower, Projection

        self.log: EventLog = open_log(log_url)
        self._seen: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        observer = self

        class Watched(Projection):
            def apply(self, records):  # noqa: ANN001, ANN202
                model = super().apply(records)  # published to latest() when this returns
                now = time.time_ns() // 1000
                with observer._lock:
                    observer._seen.extend((r.envelope.occurred_at, now) for r in records)
                return model

        start = self.log.end()
        projection = Watched(partitions=self.log.partitions())
        projection._model = type(projection.latest())(attrs.evolve(projection.state, position=start))
        self.follower = Follower(self.log, projection, poll=0.005).start()

    def poll(self) -> list[tuple[int, int]]:
        with self._lock:
            out, self._seen = self._seen, []
        return out

    def close(self) -> None:
        self.follower.stop()
        self.log.close()


def _restamp(body: bytes, us: int) -> bytes:
    """The same notification with its ``timestamp`` set to ``us`` (its publish time)."""
    outer = json.loads(body)
    inner = json.loads(outer["oslo.message"])
    inner["timestamp"] = nova_time(us)
    outer["oslo.message"] = json.dumps(inner)
    return json.dumps(outer).encode()


def latency(
    bodies: Sequence[bytes], log_url: str, rate: float, seconds: float,
    observer: Callable[[str], Observer] = LogObserver, **bridge_kw: object,
) -> dict[str, float]:
    names = Names("latency")
    names.declare_queue()
    log = open_log(log_url)
    n = int(rate * seconds)
    norm = NovaNormalizer()
    stream = [b for b in bodies if norm.normalize(b).status == "events"][:n]
    n = len(stream)
    expected = sum(len(norm.normalize(b).events) for b in stream)
    bridge = Bridge(log, BridgeConfig(amqp_url=URL, targets=[f"{names.exchange}.{TOPIC}"], queue=names.queue,
                                      stats_interval=0, **bridge_kw))  # type: ignore[arg-type]
    bridge.start()
    bridge.wait_ready(30)
    obs = observer(log_url)
    samples: list[float] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            with _bus(names.exchange) as bus:
                t0 = time.monotonic()
                for i, body in enumerate(stream):
                    pause = t0 + i / rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # pacing the publisher, not waiting for a result
                    bus.send(_restamp(body, time.time_ns() // 1000))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    pub = threading.Thread(target=publish, daemon=True)
    try:
        pub.start()
        deadline = time.monotonic() + seconds + 60
        while len(samples) < expected and time.monotonic() < deadline and not errors:
            for sent, seen in obs.poll():
                samples.append((seen - sent) / 1000.0)
            time.sleep(0.001)  # the observer's poll interval (adds ≤ 1 ms)
        pub.join(10)
        if errors:
            raise errors[0]
    finally:
        bridge.stop()
        obs.close()
        log.close()
        names.cleanup()
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))] if samples else float("nan")

    return {"n": len(samples), "expected": expected, "p50": pct(50), "p90": pct(90), "p99": pct(99),
            "max": samples[-1] if samples else float("nan"), "observer": obs.name}


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=50_000, help="notifications for (a) and (b) (default 50000)")
    ap.add_argument("--rate", type=float, default=500.0, help="steady publish rate for (c) (default 500/s)")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of (c) (default 10 s)")
    ap.add_argument("--batch", type=int, default=None, help="bridge batch size (default: the bridge's)")
    ap.add_argument("--batch-ms", type=float, default=None, help="bridge batch time (default: the bridge's)")
    ap.add_argument("--log", default=None, help="log URL (default: a fresh SQLite file per measurement)")
    args = ap.parse_args(argv)
    bridge_kw: dict[str, object] = {}
    if args.batch is not None:
        bridge_kw["batch_size"] = args.batch
    if args.batch_ms is not None:
        bridge_kw["batch_ms"] = args.batch_ms
    defaults = BridgeConfig(**bridge_kw)  # type: ignore[arg-type]

    t0 = time.perf_counter()
    bodies = notifications(max(args.n, int(args.rate * args.seconds) * 3))
    norm = NovaNormalizer()
    relevant = sum(1 for b in bodies[: args.n] if norm.normalize(b).status == "events")
    print(f"{len(bodies):,} notifications from SimCloud in {time.perf_counter() - t0:.1f} s "
          f"({relevant / args.n:.0%} relevant, {sum(map(len, bodies)) / len(bodies):,.0f} bytes each)")
    print(f"bridge: batch {defaults.batch_size} / {defaults.batch_ms:g} ms, prefetch {defaults.prefetch}")

    started = ensure_rabbitmq()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            def log_url(name: str) -> str:
                return args.log or f"sqlite:///{tmp}/{name}.db"

            bare = bare_broker(bodies[: args.n])
            drain = through_bridge(bodies[: args.n], log_url("drain"), live=False, **bridge_kw)
            live = through_bridge(bodies[: args.n], log_url("live"), live=True, **bridge_kw)
            lats = [latency(bodies, log_url("latency"), args.rate, args.seconds, **bridge_kw),
                    latency(bodies, log_url("visible"), args.rate, args.seconds, observer=ProjectionObserver,
                            **bridge_kw)]
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True)

    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print()
    print(f"(a) RabbitMQ alone, {args.n:,} notifications")
    print(f"    publish, batched confirms          {bare['publish']:>10,.0f} msg/s")
    print(f"    consume, bare kombu consumer       {bare['consume']:>10,.0f} msg/s")
    print(f"(b) RabbitMQ -> bridge -> log ({args.log or 'sqlite'})")
    print(f"    drain a backlog                    {drain['rate']:>10,.0f} notifications/s "
          f"({drain['events_per_s']:,.0f} events/s, {drain['per_batch']:.0f} msgs/batch)  "
          f"target >= {TARGET_RATE:,}: {ok(drain['rate'] >= TARGET_RATE)}")
    print(f"    live (publisher process running)   {live['rate']:>10,.0f} notifications/s "
          f"({live['events_per_s']:,.0f} events/s, {live['per_batch']:.0f} msgs/batch)  "
          f"target >= {TARGET_RATE:,}: {ok(live['rate'] >= TARGET_RATE)}")
    print(f"      (its publisher alone reached {live['publish_rate']:,.0f} msg/s; publisher, RabbitMQ and bridge "
          f"share {os.cpu_count()} CPUs here)")
    for lat in lats:
        print(f"(c) publish -> {lat['observer']} latency at {args.rate:g}/s for {args.seconds:g} s "
              f"({lat['n']:,} of {lat['expected']:,} events seen)")
        print(f"    p50 {lat['p50']:.1f} ms   p90 {lat['p90']:.1f} ms   p99 {lat['p99']:.1f} ms   "
              f"max {lat['max']:.1f} ms   target p99 <= {TARGET_P99_MS:g} ms: {ok(lat['p99'] <= TARGET_P99_MS)}")


if __name__ == "__main__":
    main()
