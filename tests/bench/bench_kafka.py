"""Log backend throughput, SQLite and Kafka side by side.

    python -m tests.bench.bench_kafka [-n 200000] [--batch 5000] [--partitions 6]

For the same N generated instance events it measures, per backend:
append (encode + store durably, in batches), read + decode, and read_raw (bare bytes).
The Kafka broker is the one ``compose/kafka.sh`` runs (EVENTMODEL_KAFKA_PORT, default
9092); if none runs, the script starts it and stops it afterwards.

``generate_events(n)`` is the reusable workload (fold benchmarks use it too).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import attrs
from eventmodel import events as ev
from eventmodel.codec import Codec
from eventmodel.log import EventLog, open_log

ROOT = Path(__file__).resolve().parents[2]
BASE = 1_700_000_000_000_000  # µs

FLAVORS = (
    ev.Flavor("m1.small", 1, 2048, 20),
    ev.Flavor("m1.medium", 2, 4096, 40),
    ev.Flavor("m1.large", 4, 8192, 80),
    ev.Flavor("m1.xlarge", 8, 16384, 160),
)


def generate_events(
    n: int, *, hosts: int | None = None, instances: int | None = None, seed: int = 42, start_us: int = BASE
) -> list[ev.Envelope]:
    """``n`` envelopes of a plausible instance workload, deterministic for a seed.

    ``instances`` (default n // 10, at least 1) are created first (round robin over
    ``hosts``, default instances // 25), then the rest are updates, state changes,
    live migrations, resizes and deletes (a deleted instance is re-created), each
    carrying the full instance state, recorded 100 µs apart.
    """
    rng = random.Random(seed)
    instances = instances or max(1, n // 10)
    hosts = hosts or max(1, instances // 25)
    host_names = [f"compute-{h:04d}" for h in range(hosts)]
    state: dict[str, ev.Instance] = {}
    uuids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(instances)]
    out: list[ev.Envelope] = []
    t = start_us

    def emit(payload: object, key: str) -> None:
        nonlocal t
        t += 100
        out.append(ev.envelope(payload, source=f"nova-compute:{state[key].host}", message_id=f"m{len(out)}",
                               occurred_at=t - 50, recorded_at=t))

    def create(i: int) -> None:
        u = uuids[i]
        host = host_names[i % hosts]
        state[u] = ev.Instance(u, t, host, host, "active", rng.choice(FLAVORS), power_state="running",
                               project_id=f"project-{i % 37}", user_id=f"user-{i % 101}", name=f"vm-{i}",
                               availability_zone="nova")
        emit(ev.InstanceCreated(state[u]), u)

    for i in range(min(instances, n)):
        create(i)
    while len(out) < n:
        i = rng.randrange(instances)
        u = uuids[i]
        if u not in state:
            create(i)
            continue
        cur = state[u]
        roll = rng.random()
        if roll < 0.45:
            new = attrs.evolve(cur, version=t, task_state=rng.choice([None, "powering-off"]))
            state[u] = new
            emit(ev.InstanceUpdated(new, action="update"), u)
        elif roll < 0.70:
            vm_state = "stopped" if cur.vm_state == "active" else "active"
            new = attrs.evolve(cur, version=t, vm_state=vm_state,
                                 power_state="shutdown" if vm_state == "stopped" else "running")
            state[u] = new
            emit(ev.InstanceStateChanged(new, action="power_off" if vm_state == "stopped" else "power_on",
                                         old_vm_state=cur.vm_state), u)
        elif roll < 0.88:
            dest = rng.choice(host_names)
            new = attrs.evolve(cur, version=t, host=dest, node=dest)
            state[u] = new
            emit(ev.InstanceMigrated(new, source_host=cur.host, source_node=cur.node, method="live"), u)
        elif roll < 0.97:
            new = attrs.evolve(cur, version=t, flavor=rng.choice(FLAVORS))
            state[u] = new
            emit(ev.InstanceResized(new, old_flavor=cur.flavor, action="resize_confirm"), u)
        else:
            gone = attrs.evolve(cur, version=t, vm_state="deleted", power_state=None)
            emit(ev.InstanceDeleted(gone), u)
            del state[u]
    return out


# ---------------------------------------------------------------------------
# broker
# ---------------------------------------------------------------------------


def ensure_broker() -> tuple[str, bool, float | None]:
    """(bootstrap, started_here, start seconds)."""
    port = int(os.environ.get("EVENTMODEL_KAFKA_PORT", "9092"))
    script = ROOT / "compose" / "kafka.sh"
    if subprocess.run(["bash", str(script), "status"], capture_output=True).returncode == 0:
        return f"127.0.0.1:{port}", False, None
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"compose/kafka.sh start failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")
    return f"127.0.0.1:{port}", True, took


def stop_broker() -> None:
    subprocess.run(["bash", str(ROOT / "compose" / "kafka.sh"), "stop"], capture_output=True)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------


from projections.projection import Projection, catch_up  # noqa: E402


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0


def measure(log: EventLog, envs: list[ev.Envelope], batch: int) -> dict[str, float]:
    def append() -> int:
        for i in range(0, len(envs), batch):
            log.append(envs[i:i + batch])
        return len(envs)

    def read() -> int:
        n = 0
        for b in log.read(batch=batch):
            n += len(b)
        return n

    def read_raw() -> int:
        n = 0
        for b in log.read_raw(batch=batch):
            n += len(b)
        return n

    n, t_append = timed(append)
    end = log.end()
    assert end.total == len(envs), (end, len(envs))
    out = {"append": n / t_append, "append_s": t_append}
    n, t = timed(read)
    assert n == len(envs), (n, len(envs))
    out["read"], out["read_s"] = n / t, t
    n, t = timed(read_raw)
    assert n == len(envs), (n, len(envs))
    out["raw"], out["raw_s"] = n / t, t

    def replay_fold() -> int:
        projection = Projection(partitions=log.partitions())
        catch_up(projection, log, batch=batch)  # what start-up and `eventmodel replay` do
        return projection.state.applied

    n, t = timed(replay_fold)
    assert n == len(envs), (n, len(envs))
    out["fold"], out["fold_s"] = n / t, t
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200_000, help="events (default 200000)")
    ap.add_argument("--batch", type=int, default=5000, help="append/read batch size (default 5000)")
    ap.add_argument("--partitions", type=int, default=6, help="Kafka topic partitions (default 6)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    envs = generate_events(args.n)
    t_gen = time.perf_counter() - t0
    codec = Codec()
    t0 = time.perf_counter()
    encoded = [codec.encode(e) for e in envs]
    t_enc = time.perf_counter() - t0
    size = sum(map(len, encoded)) / len(encoded)
    print(f"{len(envs):,} events generated in {t_gen:.1f} s; encode alone {len(envs) / t_enc:,.0f} ev/s; "
          f"{size:.0f} bytes/event")

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with open_log(f"sqlite:///{tmp}/bench.db") as log:  # type: ignore[attr-defined]
            results["sqlite"] = measure(log, envs, args.batch)

    bootstrap, started, took = ensure_broker()
    if started:
        print(f"kafka: compose/kafka.sh start took {took:.1f} s")
    topic = f"bench-{uuid.uuid4().hex[:12]}"
    try:
        with open_log(f"kafka://{bootstrap}/{topic}?partitions={args.partitions}") as log:  # type: ignore[attr-defined]
            results[f"kafka ({args.partitions} partitions)"] = measure(log, envs, args.batch)
    finally:
        try:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
            for f in admin.delete_topics([topic, topic + ".deadletters"]).values():
                f.result(timeout=30)
        except Exception as exc:  # noqa: BLE001
            print(f"(could not delete topic {topic}: {exc})")
        if started:
            stop_broker()

    print()
    print(f"N = {len(envs):,} events, batch {args.batch:,}")
    head = (f"{'backend':<24}{'append ev/s':>14}{'read+decode ev/s':>19}{'read_raw ev/s':>16}"
            f"{'replay+fold ev/s':>19}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<24}{r['append']:>14,.0f}{r['read']:>19,.0f}{r['raw']:>16,.0f}{r['fold']:>19,.0f}")
    print()
    for name, r in results.items():
        print(f"{name}: append {r['append_s']:.2f} s, read+decode {r['read_s']:.2f} s, read_raw {r['raw_s']:.2f} s, "
              f"replay+fold {r['fold_s']:.2f} s")
    if took is not None:
        print(f"broker start (compose/kafka.sh start): {took:.1f} s")


if __name__ == "__main__":
    main()
