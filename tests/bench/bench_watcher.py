"""Watcher on the projection beside Watcher's own model, side by side in one run.

    python -m tests.bench.bench_watcher [--hosts 1000 --instances 50000] [--repeat 3]
    python -m tests.bench.bench_watcher --hosts 10000 --instances 500000 --ours-only

At one cluster size (default 1,000 hosts / 50,000 instances, a simulated cloud's ground
truth; the model is what a full sync leaves):

A. an audit's overhead before the strategy's own work, through Watcher's real
   ``BaseStrategy.execute`` (its ``dummy`` strategy: ``compute_model`` — the collector's
   ``get_latest_cluster_data_model``, the audit scope handler's ``get_scoped_model`` —
   then ``_pre_execute``'s ``to_string``, a no-op ``do_execute``), with an empty scope and
   with a zone scope (``az1``, ~40 % of the hosts): our collector over a SQLite log a full
   sync of the cloud filled (catch-up check, audit record, view, scope), beside Watcher's
   collector's read of a ``ModelRoot`` of the same snapshot (``LOG.debug(to_xml())`` and
   ``copy.deepcopy`` as its base collector does, the zones from the snapshot as ours, no
   API call), and the first and second full walk of a view (every node, its instances
   and used resources, every instance);
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

from eventmodel.log import open_log
from eventmodel.sim.cloud import HostSpec, SimCloud
from eventmodel.sources.sync import Snapshotter
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


class _Manager:
    """A strategy's collector manager handing it one collector as ``compute`` (Watcher's
    manager loads it by entry point once per process; the per-audit path is the rest)."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def get_cluster_model_collector(self, name: str, osc: Any = None) -> Any:
        return self.collector


def _watchers_collector(root: Any, ours: Any) -> Any:
    """Watcher's base collector (its ``get_latest_cluster_data_model``: ``LOG.debug(to_xml())``
    and a deep copy) holding ``root``; its scope handler reads zones from our snapshot
    and removes nodes with Watcher's own loop (``ProjectionScope`` falls back to it for a
    ``ModelRoot``)."""
    from watcher.common import utils
    from watcher.decision_engine.model.collector import base

    from projections.watcher.collector import ProjectionScope

    class Held(base.BaseClusterDataModelCollector):
        notification_endpoints: list[Any] = []

        def execute(self) -> Any:
            return root

        def get_audit_scope_handler(self, audit_scope: Any) -> Any:
            return ProjectionScope(audit_scope, self.config, ours)

    Held._instances.pop(Held, None)
    return Held(utils.Struct(period=3600), osc=object())


def audit_once(collector: Any, scope: list[Any]) -> float:
    """One audit of Watcher's ``dummy`` strategy through ``BaseStrategy.execute``: seconds."""
    from watcher.common import utils
    from watcher.decision_engine.strategy.strategies import dummy_strategy

    strategy = dummy_strategy.DummyStrategy(config=utils.Struct(datasources=None, check_optimize_metadata=True))
    strategy._collector_manager = _Manager(collector)
    strategy.audit_scope = scope
    strategy.input_parameters = utils.Struct(para1=0.0, para2="x")
    gc.collect()
    t = time.perf_counter()
    strategy.execute()
    took = time.perf_counter() - t
    assert strategy.compute_model, "the audit's model is stale"
    return took


def walk(view: Any) -> int:
    """Every node, its instances and used resources, then every instance."""
    n = 0
    for node in view.get_all_compute_nodes().values():
        n += len(view.get_node_instances(node))
        view.get_node_used_resources(node)
    return n + len(view.get_all_instances())


def audit_overhead(sim: SimCloud, args: argparse.Namespace, tmp: str) -> None:
    from watcher.common import utils

    from projections.watcher.collector import ProjectionCollector, host_zones

    t0 = time.perf_counter()
    url = f"sqlite:///{tmp}/events.db"
    log = open_log(url)
    result = Snapshotter(sim, log, source="bench-sync", clock=lambda: sim.clock_us).run_once()
    assert result.ok, result.error
    log.close()
    ProjectionCollector._instances.pop(ProjectionCollector, None)
    ours = ProjectionCollector(utils.Struct(log_url=url, checkpoint_dir=None, catch_up_timeout=5.0,
                                            record_audits=True, check_optimize_metadata=True, max_age=0,
                                            max_lag=100_000, order="collector", period=3600), osc=object())
    model = ours.engine.latest()
    print(f"A. an audit's overhead before the strategy's work (log: a full sync, {model.counts()}, "
          f"filled and followed in {time.perf_counter() - t0:.1f}s)")
    zone = [{"compute": [{"availability_zones": [{"name": "az1"}]}]}]
    kept = sum(1 for z in host_zones(model).values() if z == "az1")
    root = to_model_root(model, extended=False)
    held = _watchers_collector(root, ours)
    for label, scope in (("empty scope", []), (f"zone scope (az1: {kept} of {args.hosts:,} hosts kept)", zone)):
        audit_once(ours, scope)  # the first audit of the process (imports, the engine's first wait)
        o = statistics.median(audit_once(ours, scope) for _ in range(max(args.repeat, 5)))
        w = statistics.median(audit_once(held, scope) for _ in range(args.watcher_repeat))
        row(f"dummy strategy, {label}", w, o)
    from projections.watcher.layout import Layout

    latest = ours.engine.latest()
    layout = Layout(latest, "collector", False)
    view = WatcherView(latest, extended=False, layout=layout)
    first, _ = timed(lambda: walk(view), 1)
    second, _ = timed(lambda: walk(view), 1)
    other, _ = timed(lambda: walk(WatcherView(latest, extended=False, layout=layout)), max(args.repeat, 3))
    print("  a full walk (every node, its instances and used resources, every instance): the first view of a "
          f"model version {fmt(first).strip()} (its layout built), another view of it {fmt(other).strip()}, "
          f"a view walked again {fmt(second).strip()}")
    ours.stop()
    ProjectionCollector._instances.pop(ProjectionCollector, None)


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
    ap.add_argument("--audit-only", action="store_true", help="only A (the audit's overhead)")
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
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        audit_overhead(SimCloud(args.hosts, args.instances, seed=args.seed,
                                host_spec=HostSpec(vcpus=128, memory_mb=524_288)), args, tmp)
    if args.audit_only:
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
