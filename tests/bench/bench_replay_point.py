"""Replay to a point of the log, with and without positional checkpoints, side by side.

    python -m tests.bench.bench_replay_point [--hosts 10000 --instances 500000 --records 2000000
                                              --ladder 250000 --points 4]

Builds a SQLite log of ``--records`` records (a create per instance, then state
changes and migrations), then, as a first engine start would, replays it once
writing a checkpoint every ``--ladder`` records (the positional checkpoints kept by
``Checkpointer(ladder=…)``). For ``--points`` random points it then rebuilds the
model at that point twice: from the nearest checkpoint at or before it (restore +
tail) and from zero, checks both give the same entities, and prints the times.
Last, it extrapolates to the goal (a 10-million-record log at 10,000 hosts /
500,000 instances, ≤ 10 s) from the figures it measured, saying what it assumed.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from eventmodel import events as ev
from eventmodel.log import Position, open_log
from projections.checkpoint import Checkpointer
from projections.replay import model_at, start
from tests.bench.bench_core import FLAVORS, STATES

T0 = 1_700_000_000_000_000


def records(hosts: int, instances: int, total: int, seed: int = 7) -> Iterator[list[ev.Envelope]]:
    """Batches of envelopes: the hosts' nodes, a create per instance, then changes
    (10 % migrations) until ``total`` records."""
    rng = random.Random(seed)
    projects = [f"{rng.getrandbits(128):032x}" for _ in range(50)]
    names = [f"compute-{h:05d}" for h in range(hosts)]
    yield [ev.envelope(ev.ComputeNodeObserved("bench", ev.ComputeNode(n, 1, n, vcpus=64, memory_mb=262144,
                                                                      disk_gb=2000)),
                       source="bench", message_id=n, occurred_at=T0, recorded_at=T0) for n in names]
    current: list[ev.Instance] = []
    batch: list[ev.Envelope] = []
    t = T0
    for i in range(min(instances, total - hosts)):
        node = rng.choice(names)
        inst = ev.Instance(f"{rng.getrandbits(128):032x}", t, node, node, "active", rng.choice(FLAVORS), "running",
                           None, rng.choice(projects), "user", f"vm-{i}", availability_zone="nova")
        current.append(inst)
        batch.append(ev.envelope(ev.InstanceCreated(inst), source="nova-compute:" + node, message_id=str(i),
                                 occurred_at=t, recorded_at=t))
        if len(batch) == 20_000:
            yield batch
            batch = []
    for j in range(max(0, total - hosts - len(current))):
        t += 1000
        k = rng.randrange(len(current))
        old = current[k]
        if rng.random() < 0.1:
            node = rng.choice(names)
            new = ev.Instance(old.uuid, t, node, node, old.vm_state, old.flavor, old.power_state, None,
                              old.project_id, old.user_id, old.name, availability_zone="nova")
            payload: object = ev.InstanceMigrated(new, old.host, old.node)
        else:
            vm, power = rng.choice(STATES)
            new = ev.Instance(old.uuid, t, old.host, old.node, vm, old.flavor, power, None,
                              old.project_id, old.user_id, old.name, availability_zone="nova")
            payload = ev.InstanceStateChanged(new, "power", old.vm_state)
        current[k] = new
        batch.append(ev.envelope(payload, source="nova-compute:" + str(new.host), message_id=f"u{j}",
                                 occurred_at=t, recorded_at=t))
        if len(batch) == 20_000:
            yield batch
            batch = []
    if batch:
        yield batch


def timed_model_at(log: object, to: Position, ck: Checkpointer | None) -> tuple[object, float, float, int]:
    """(model, seconds to restore, seconds to replay the tail, records in the tail)."""
    marks: dict[str, object] = {}

    def on_start(a: Position, b: Position) -> None:
        marks["t"], marks["n"] = time.perf_counter(), b.total - a.total

    t = time.perf_counter()
    model = model_at(log, to=to, checkpointer=ck, on_start=on_start)  # type: ignore[arg-type]
    done = time.perf_counter()
    return model, marks["t"] - t, done - marks["t"], marks["n"]  # type: ignore[operator,return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--instances", type=int, default=500_000)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--ladder", type=int, default=250_000, help="Records between positional checkpoints.")
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--zero-points", type=int, default=2, help="Of the points, how many also replay from zero.")
    ap.add_argument("--small", action="store_true", help="1,000 hosts / 20,000 instances / 200,000 records.")
    ap.add_argument("--dir", type=Path, default=None, help="Work directory (default: a temporary one).")
    args = ap.parse_args()
    if args.small:
        args.hosts, args.instances, args.records, args.ladder = 1000, 20_000, 200_000, 40_000
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        run(Path(d), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    print(f"== replay to a point: {args.records:,} records, {args.hosts:,} hosts / {args.instances:,} instances, "
          f"a positional checkpoint every {args.ladder:,} records ==")
    log = open_log(f"sqlite:///{tmp}/log.db")
    t = time.perf_counter()
    for batch in records(args.hosts, args.instances, args.records):
        log.append(batch)
    n = log.end().total
    print(f"log built                  {time.perf_counter() - t:>8.1f} s   {n:,} records")

    ck = Checkpointer.for_log(tmp / "ckpt", log, keep=1, ladder=args.ladder, ladder_keep=10_000)
    t = time.perf_counter()
    start(log, ck, checkpoint_every=args.ladder)  # a first engine start: replay, leaving the ladder behind
    ck.write(start(log, ck).state)  # and the newest, as the engine's stop writes it
    build = time.perf_counter() - t
    files = ck.files()
    size = sum(f.stat().st_size for f in files)
    print(f"first start + ladder       {build:>8.1f} s   {len(files)} checkpoints kept, {size / 2**20:,.0f} MiB, "
          f"at {', '.join(f'{p.total:,}' for p in reversed(ck.positions()))}")

    rng = random.Random(11)
    points = sorted(rng.randrange(1, n + 1) for _ in range(args.points))
    print(f"\n{'point':>12} {'from ckpt at':>13} {'restore s':>10} {'tail recs':>10} {'tail s':>8} "
          f"{'total s':>8} | {'from zero s':>11}  same")
    rates, restores = [], []
    for i, p in enumerate(points):
        to = Position((p,))
        m1, restore, tail, tail_n = timed_model_at(log, to, ck)
        start_at = ck.loaded_position.total if ck.loaded_position else 0
        restores.append(restore)
        if tail_n > 10_000:
            rates.append(tail_n / tail)
        zero_s, same = "-", "-"
        if i >= len(points) - args.zero_points:
            m0, r0, z, zn = timed_model_at(log, to, None)
            rates.append(zn / z)
            zero_s = f"{r0 + z:.1f}"
            same = "yes" if m0.state.tables == m1.state.tables else "NO"  # type: ignore[attr-defined]
            del m0
        print(f"{p:>12,} {start_at:>13,} {restore:>10.2f} {tail_n:>10,} {tail:>8.2f} {restore + tail:>8.2f} | "
              f"{zero_s:>11}  {same}")
        del m1
    rate = sorted(rates)[len(rates) // 2]
    restore_here = max(restores)
    print(f"\nmeasured: fold from the log {rate:,.0f} records/s (median), restore ≤ {restore_here:.2f} s at "
          f"{args.instances:,} instances")
    # Extrapolation to the goal: the tail is at most one ladder step; restore grows with
    # the model's size (assumed linear in instances), not with the log's length.
    goal_n, goal_i = 10_000_000, 500_000
    restore_goal = restore_here * goal_i / args.instances
    for ladder in sorted({args.ladder, 100_000, 250_000, 500_000}):
        worst = restore_goal + ladder / rate
        print(f"goal estimate: 10,000,000 records at 10,000/500,000, ladder {ladder:>7,}: worst ≈ "
              f"{restore_goal:.1f} s restore + {ladder / rate:.1f} s tail = {worst:.1f} s; "
              f"{goal_n // ladder} checkpoints; from zero ≈ {goal_n / rate:,.0f} s")
    log.close()


if __name__ == "__main__":
    main()
