"""Watcher's storage model on the projection beside Watcher's own StorageModelRoot.

    python -m tests.bench.bench_watcher_storage [--volumes 20000 --backends 25] [--repeat 3]

At one size (default 20,000 volumes on 25 backends of 2 pools each):

1. the read an audit starts with: Watcher's path (``to_xml()`` for the debug line, built
   whether or not debug logging is on, then ``copy.deepcopy`` of the root) beside a
   :class:`StorageView` of the snapshot with its index already built (the collector's
   case: one index per snapshot);
2. building the index once per snapshot (order and mapping);
3. ``get_all_volumes()`` (what ``zone_migration`` iterates) and one pool's volumes;
4. ``zone_migration`` on each (the compute side a small simulated cloud), solutions compared;
5. the one-off cost of building the StorageModelRoot from the snapshot, for scale.

Figures are medians of ``--repeat`` runs. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import logging
import warnings
from typing import Any

from tests.bench.bench_watcher import fmt, timed


def row(label: str, watcher: float | None, ours: float) -> None:
    theirs = fmt(watcher) if watcher is not None else " " * 13
    ratio = f"{watcher / ours:10,.1f}×" if watcher is not None and ours else ""
    print(f"  {label:44} Watcher {theirs}   view {fmt(ours)}   {ratio}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--volumes", type=int, default=20_000)
    ap.add_argument("--backends", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("watcher").setLevel(logging.ERROR)
    logging.getLogger("projections").setLevel(logging.ERROR)

    from projections.watcher.storage import StorageView, storage_index
    from projections.watcher.storage_convert import to_storage_model_root
    from tests.fixtures.storage import storage_cluster
    from tests.integration.watcher_zone_probe import build, cluster, run

    instances, nodes, services, _ = cluster(1)
    compute = build(instances, nodes, services, {})
    model = storage_cluster(1, backends=a.backends, volumes=a.volumes, base=compute)
    print(f"{a.volumes:,} volumes, {a.backends} backends × 2 pools; medians of {a.repeat}")

    t_build, root = timed(lambda: to_storage_model_root(model), a.repeat)
    t_index, index = timed(lambda: storage_index(model), a.repeat)
    t_w_read, _ = timed(lambda: (root.to_xml(), copy.deepcopy(root)), a.repeat)
    t_v_read, _ = timed(lambda: StorageView(model, index=index).get_volume_by_uuid(next(iter(model.volumes()))),
                        a.repeat)
    row("audit read (to_xml + deepcopy | view + 1 read)", t_w_read, t_v_read)
    row("index, once per snapshot", None, t_index)
    t_w_all, _ = timed(lambda: root.get_all_volumes(), a.repeat)
    t_v_all, _ = timed(lambda: StorageView(model, index=index).get_all_volumes(), a.repeat)
    row("get_all_volumes (fresh view: builds elements)", t_w_all, t_v_all)
    view = StorageView(model, index=index)
    view.get_all_volumes()
    t_v_all2, _ = timed(lambda: view.get_all_volumes(), a.repeat)
    row("get_all_volumes again (elements built)", t_w_all, t_v_all2)
    pool_w = root.get_pool_by_pool_name("st0@be0#pool0")
    pool_v = view.get_pool_by_pool_name("st0@be0#pool0")
    t_w_pool, _ = timed(lambda: root.get_pool_volumes(pool_w), a.repeat)
    t_v_pool, _ = timed(lambda: view.get_pool_volumes(pool_v), a.repeat)
    row("get_pool_volumes (one pool)", t_w_pool, t_v_pool)
    params = {"storage_pools": [{"src_pool": "st0@be0#pool0", "dst_pool": "st1@be1#pool0"},
                                {"src_pool": "st0@be0#pool1", "dst_type": "gold1"}],
              "parallel_total": 100, "parallel_per_pool": 50}
    from projections.watcher.convert import to_model_root
    from projections.watcher.view import WatcherView

    t_w_zone, on_root = timed(lambda: run(to_model_root(compute), copy.deepcopy(root), params), a.repeat)
    t_v_zone, on_view = timed(lambda: run(WatcherView(compute), StorageView(model, index=index), params), a.repeat)
    row("zone_migration (deep-copied root | fresh view)", t_w_zone, t_v_zone)
    print(f"  same solution: {on_root == on_view} ({len(on_view['actions'])} actions)")
    row("StorageModelRoot built from the snapshot", t_build, t_index)


if __name__ == "__main__":
    main()
