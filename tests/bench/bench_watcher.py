"""Watcher on the projection beside Watcher's own model, side by side in one run.

    python -m tests.bench.bench_watcher [--hosts 1000 --instances 50000] [--repeat 3]
    python -m tests.bench.bench_watcher --hosts 10000 --instances 500000 --ours-only

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
import signal
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


def migrations(m: Any) -> int:
    """100 what-if migrations, reading both nodes' resources after each."""
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


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped


def strategy_step(projection: Projection, copies: list[Any], args: argparse.Namespace) -> None:
    params = {"host_choice": args.host_choice}
    o_strat, o_out = timed(
        lambda: run_strategy("node_resource_consolidation", WatcherView(projection.latest(), extended=False), params),
        args.repeat)
    print(f"2. node_resource_consolidation (host_choice={args.host_choice})")
    print(f"  on the view: {fmt(o_strat).strip()} ({len(o_out.actions):,} actions, indicators {o_out.indicators})",
          flush=True)
    w_times, w_out = [], None
    signal.signal(signal.SIGALRM, _stop)
    for c in copies:
        gc.collect()
        t = time.perf_counter()
        signal.alarm(args.watcher_timeout)
        try:
            w_out = run_strategy("node_resource_consolidation", c, params)
        except _Stopped:
            w_out = None
        finally:
            signal.alarm(0)
        w_times.append(time.perf_counter() - t)
        if w_out is None or w_out.error and "_Stopped" in w_out.error:
            print(f"  on Watcher's ModelRoot: stopped after {w_times[-1]:,.0f} s without finishing "
                  f"(the view: {fmt(o_strat).strip()}, so more than {w_times[-1] / o_strat:,.0f}× faster)")
            return
    row("strategy run (incl. its to_string of the model)", statistics.median(w_times), o_strat)
    print(f"  same solution: {w_out == o_out}")


def ours_only(projection: Projection, args: argparse.Namespace) -> None:
    def read() -> int:
        view = WatcherView(projection.latest(), extended=False)
        node = next(iter(view.model.compute_nodes().values()))
        return len(view.get_node_instances(view.get_node_by_uuid(node.uuid)))

    t_read, _ = timed(read, max(args.repeat, 100))
    print(f"  latest() + view + a node's instances: {fmt(t_read).strip()}")
    if not args.no_strategy:
        t_strat, out = timed(lambda: run_strategy("node_resource_consolidation",
                                                  WatcherView(projection.latest(), extended=False),
                                                  {"host_choice": args.host_choice}), args.repeat)
        print(f"  node_resource_consolidation (host_choice={args.host_choice}) on a view: {fmt(t_strat).strip()} "
              f"({len(out.actions):,} actions)")
    t_mig, _ = timed(lambda: migrations(WatcherView(projection.latest(), extended=False)), args.repeat)
    print(f"  100 what-if migrations on a new view: {fmt(t_mig).strip()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of our side (median)")
    ap.add_argument("--watcher-repeat", type=int, default=1, help="runs of Watcher's side (each needs a deep copy)")
    ap.add_argument("--host-choice", default="auto", choices=["auto", "specify"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ours-only", action="store_true", help="only our side (e.g. at 10,000 / 500,000)")
    ap.add_argument("--no-strategy", action="store_true", help="skip the strategy run")
    ap.add_argument("--watcher-timeout", type=int, default=900,
                    help="stop Watcher's strategy run after this many seconds (reported as more than that)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    sim = SimCloud(args.hosts, args.instances, seed=args.seed, host_spec=HostSpec(vcpus=128, memory_mb=524_288))
    model = model_of(sim)
    projection = Projection(model.state)
    print(f"cluster: {args.hosts:,} hosts / {args.instances:,} instances (simulated, seed {args.seed}), "
          f"built in {time.perf_counter() - t0:.1f}s; ours: median of {args.repeat}, "
          f"Watcher's: median of {args.watcher_repeat}")
    run_strategy("node_resource_consolidation", WatcherView(model_of(SimCloud(3, 10, seed=1))), {})  # imports
    if args.ours_only:
        ours_only(projection, args)
        return

    build, root = timed(lambda: to_model_root(model, extended=False), 1)
    print(f"0. building Watcher's ModelRoot from the snapshot (its collector's model, here without API calls): "
          f"{fmt(build).strip()}")
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

    copies: list[Any] = []
    w_times = []
    for _ in range(args.watcher_repeat):
        gc.collect()
        t = time.perf_counter()
        copied, w_n = watcher_read()
        w_times.append(time.perf_counter() - t)
        copies.append(copied)
    o_read, (_, o_n) = timed(our_read, max(args.repeat, 100))
    assert w_n == o_n
    print("1. the read a strategy starts with")
    row("get_latest_cluster_data_model vs latest()+view", statistics.median(w_times), o_read)

    # 2. the strategy, on the copy the read returned / on a new view
    if not args.no_strategy:
        strategy_step(projection, copies, args)
    del copies

    # 3. what-if migrations
    w_times = []
    for _ in range(args.watcher_repeat):
        c = copy.deepcopy(root)
        gc.collect()
        t = time.perf_counter()
        w_done = migrations(c)
        w_times.append(time.perf_counter() - t)
        del c
    base = projection.latest()
    o_mig, o_done = timed(lambda: migrations(WatcherView(projection.latest(), extended=False)), args.repeat)
    assert w_done == o_done
    print("3. 100 what-if migrations (+ used/free resources of both nodes)")
    row("on a copied ModelRoot vs on a new view", statistics.median(w_times), o_mig)
    print(f"  the shared snapshot unchanged: {projection.latest() is base and base.counts() == model.counts()}")

    # 4. element ==
    w_nodes = list(root.get_all_compute_nodes().values())[:200]
    view = WatcherView(model, extended=False)
    o_nodes = list(view.get_all_compute_nodes().values())[:200]
    w_eq, _ = timed(lambda: sum(1 for a in w_nodes for b in w_nodes if a == b), 1)
    o_eq, _ = timed(lambda: sum(1 for a in o_nodes for b in o_nodes if a == b), 1)
    print("4. element == (200 x 200 node comparisons, as `node in list` does)")
    row("per comparison", w_eq / 40_000, o_eq / 40_000)


if __name__ == "__main__":
    main()
