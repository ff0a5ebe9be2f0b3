"""Run in a subprocess by test_watcher_stale.py: load our collector through Watcher's own
CollectorManager from a watcher.conf, then, step by step, run a real Watcher strategy
the way the decision engine does (``BaseStrategy.execute`` → ``compute_model``) and
print what each step gave as JSON lines.

    python -m tests.integration.watcher_stale_probe CONF LOG_PATH

Steps (read from stdin, one per line): ``audit`` runs node_resource_consolidation;
``damage`` checkpoints the WAL into the SQLite file, keeps a copy aside and
overwrites the file's first 16 KiB; ``restore``
puts the file back; ``quit``. Each answer: ``{"step", "outcome", "stale", "reason"}``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path


class _Compute:
    """The strategy's collector manager, handing it our collector as ``compute`` (the
    deployment switch of the README does the same through watcher.conf)."""

    def __init__(self, collector: object) -> None:
        self.collector = collector

    def get_cluster_model_collector(self, name: str, osc: object = None) -> object:
        assert name == "compute"
        collector = self.collector
        latest = collector.get_latest_cluster_data_model

        def keep() -> object:  # what the audit got, to report its stale reason
            view = latest()
            collector.cluster_data_model_of_last_audit = view
            return view

        collector.get_latest_cluster_data_model = keep
        return collector


def _audit(collector: object) -> dict:
    from watcher.common import exception, utils
    from watcher.decision_engine.strategy import strategies

    strategy = strategies.NodeResourceConsolidation(config=utils.Struct(datasources=None,
                                                                        check_optimize_metadata=False))
    strategy._collector_manager = _Compute(collector)
    strategy.audit_scope = []
    params = {}
    utils.StrictDefaultValidatingDraft4Validator(type(strategy).get_schema()).validate(params)
    strategy.input_parameters = utils.Struct(params)
    try:
        outcome = f"{len(strategy.execute().actions)} actions"
    except (exception.ClusterStateNotDefined, exception.ClusterStateStale) as exc:
        outcome = type(exc).__name__
    view = collector.cluster_data_model_of_last_audit  # type: ignore[attr-defined]
    return {"outcome": outcome, "stale": view.stale_reason if view is not None else None}


def main(conf: str, log_path: str) -> None:
    import watcher.conf  # noqa: F401 - registers Watcher's options
    from watcher.common import service
    from watcher.decision_engine.model.collector.manager import CollectorManager

    service.prepare_service(["watcher-decision-engine", "--config-file", conf])
    collector = CollectorManager().get_cluster_model_collector("eventmodel")
    path = Path(log_path)
    kept = path.with_suffix(".kept")
    for line in sys.stdin:
        step = line.strip()
        if step == "quit":
            break
        out: dict = {"step": step}
        if step == "audit":
            out.update(_audit(collector))
        elif step == "damage":
            with sqlite3.connect(path) as db:  # every page in the file, none left in the WAL
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(path, kept)
            with path.open("r+b") as f:
                f.write(b"\x5a" * 16384)
        elif step == "restore":
            shutil.copyfile(kept, path)
        print(json.dumps(out), flush=True)
    collector.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])
