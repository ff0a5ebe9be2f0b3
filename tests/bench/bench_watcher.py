"""Watcher on the projection beside Watcher's own model, side by side in one run.

    python -m tests.bench.bench_watcher [--hosts 1000 --instances 50000] [--repeat 3]

At one cluster size (default 1,000 hosts / 50,000 instances, a simulated cloud's ground
truth; the model is what a full sync leaves):

1. the read a strategy starts with: Watcher's ``get_latest_cluster_data_model()`` path
   (``LOG.debug(model.to_xml())`` — the argument is built whether or not debug logging is
   on — then ``copy.deepcopy`` of the ``ModelRoot``) beside ``Projection.latest()`` + a
   :class:`WatcherView` + a read (a node by uuid and its instances);
2. ``node_resource_consolidation`` (Watcher's real strategy; ``host_choice=specify``, so
   it also simulates every migration it plans) on that copied ``ModelRoot`` beside on the
   view; the solutions are compared;
3. 100 what-if migrations (``migrate_instance`` + the two nodes' used resources) on each;
4. element ``==`` (what ``node in list`` costs in Watcher's strategies): Watcher's
   class beside the view's;
5. the one-off cost of building the ``ModelRoot`` from the snapshot (what Watcher's
   collector does with API calls, here from memory) for scale.

Figures are medians of ``--repeat`` runs. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from eventmodel.sim.cloud import HostSpec, SimCloud
from projections.projection import Projection
from projections.watcher.convert import to_model_root
from projections.watcher.view import WatcherView
from tests.fixtures.watcher import model_of, run_strategy


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def fmt(s: float) -> str:
    return f"{s * 1e3:10.3f} ms" if s >= 1e-3 else f"{s * 1e6:10.2f} µs"


def row(label: str, watcher: float, ours: float) -> None:
    ratio = watcher / ours if ours else float("inf")
    print(f"  {label:44} Watcher {fmt(watcher)}   view {fmt(ours)}   {ratio:10,.1f}×")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    sim = SimCloud(args.hosts, args.instances, seed=args.seed, host_spec=HostSpec(vcpus=128, memory_mb=524_288))
    model = model_of(sim)
    projection = Projection(model.state)
    print(f"cluster: {args.hosts:,} hosts / {args.instances:,} instances (simulated, seed {args.seed}), "
          f"built in {time.perf_counter() - t0:.1f}s; medians of {args.repeat}")

    build, root = timed(lambda: to_model_root(model, extended=False), 1)
    print(f"  building Watcher's ModelRoot from the snapshot (once, what its collector holds): {fmt(build)}")
    any_node = next(iter(root.get_all_compute_nodes()))

    # 1. the read
    def watcher_read() -> Any:
        root.to_xml()  # LOG.debug(model.to_xml()) evaluates its argument
        copied = copy.deepcopy(root)
        node = copied.get_node_by_uuid(any_node)
        return copied, len(copied.get_node_instances(node))

    def our_read() -> Any:
        view = WatcherView(projection.latest(), extended=False)
        node = view.get_node_by_uuid(any_node)
        return view, len(view.get_node_instances(node))

    w_read, (_, w_n) = timed(watcher_read, args.repeat)
    o_read, (_, o_n) = timed(our_read, max(args.repeat, 100))
    assert w_n == o_n
    print("1. the read a strategy starts with")
    row("get_latest_cluster_data_model vs latest()+view", w_read, o_read)

    # 2. the strategy
    params = {"host_choice": "specify"}

    def watcher_strategy() -> Any:
        return run_strategy("node_resource_consolidation", copy.deepcopy(root), params)

    def strategy_on(view_factory: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: run_strategy("node_resource_consolidation", view_factory(), params)

    # the copy is part of Watcher's read (above); time the strategy alone on a fresh copy
    copies = [copy.deepcopy(root) for _ in range(args.repeat)]
    w_times = []
    w_out = None
    for c in copies:
        gc.collect()
        t = time.perf_counter()
        w_out = run_strategy("node_resource_consolidation", c, params)
        w_times.append(time.perf_counter() - t)
    w_strat = statistics.median(w_times)
    o_strat, o_out = timed(strategy_on(lambda: WatcherView(projection.latest(), extended=False)), args.repeat)
    print("2. node_resource_consolidation (host_choice=specify)")
    row("strategy run (incl. its to_string of the model)", w_strat, o_strat)
    print(f"  same solution: {w_out == o_out} ({len(o_out.actions):,} actions, indicators {o_out.indicators})")
    del watcher_strategy

    # 3. what-if migrations
    def migrations(m: Any) -> int:
        nodes = list(m.get_all_compute_nodes().values())
        done = 0
        for k in range(100):
            src = nodes[(7 * k) % len(nodes)]
            dst = nodes[(7 * k + 3) % len(nodes)]
            insts = m.get_node_instances(src)
            if not insts:
                continue
            if m.migrate_instance(insts[0], src, dst):
                done += 1
            m.get_node_used_resources(src)
            m.get_node_free_resources(dst)
        return done

    copies = [copy.deepcopy(root) for _ in range(args.repeat)]
    w_times = []
    for c in copies:
        gc.collect()
        t = time.perf_counter()
        w_done = migrations(c)
        w_times.append(time.perf_counter() - t)
    w_mig = statistics.median(w_times)
    o_mig, o_done = timed(lambda: migrations(WatcherView(projection.latest(), extended=False)), args.repeat)
    assert w_done == o_done
    base = projection.latest()
    print("3. 100 what-if migrations (+ used/free resources of both nodes)")
    row("on a copied ModelRoot vs on a new view", w_mig, o_mig)
    print(f"  the shared snapshot unchanged: {projection.latest() is base}")

    # 4. element ==
    w_nodes = list(root.get_all_compute_nodes().values())[:200]
    view = WatcherView(model, extended=False)
    o_nodes = list(view.get_all_compute_nodes().values())[:200]
    w_eq, _ = timed(lambda: sum(1 for a in w_nodes for b in w_nodes if a == b), 1)
    o_eq, _ = timed(lambda: sum(1 for a in o_nodes for b in o_nodes if a == b), 1)
    print("4. element == (200 × 200 node comparisons, as `node in list` does)")
    row("per comparison", w_eq / 40_000, o_eq / 40_000)


if __name__ == "__main__":
    main()
