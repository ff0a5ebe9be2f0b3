"""Run in a subprocess by test_watcher_collector.py: load collectors through Watcher's own
CollectorManager (stevedore, the entry-point group, watcher.conf), apply audit scopes
the way a strategy does, print what came out as JSON.

    python -m tests.integration.watcher_probe CONF STEPS_JSON

Each step is ``{"name": entry point name, "path": [dirs put first on sys.path],
"scopes": [audit scope, ...], "strategy": [name, params, audit scope] (optional)}``. Watcher's configuration and its collectors are
process-wide (oslo.config's CONF; a collector class has one instance per process;
stevedore reads a group's entry points once per process), hence a process of its own;
between steps the probe stops our collector and forgets its instance and the entry
points read, as a new decision-engine process would start without them.
"""

from __future__ import annotations

import json
import sys


def _load(manager, step: dict) -> dict:
    name, scopes = step["name"], step.get("scopes", [])
    from watcher.common import exception

    try:
        collector = manager.get_cluster_model_collector(name)
    except exception.LoadingError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    out: dict = {"class": f"{type(collector).__module__}:{type(collector).__qualname__}", "scopes": []}
    if not hasattr(collector, "engine"):
        return out  # Watcher's own collector: loading it is all we check
    out["log_url"] = collector.config.log_url
    for scope in scopes:
        # what BaseStrategy.compute_model does
        handler = collector.get_audit_scope_handler(audit_scope=scope)
        model = handler.get_scoped_model(collector.get_latest_cluster_data_model())
        nodes = list(model.get_all_compute_nodes().values())
        out["scopes"].append({
            "type": type(model).__name__,
            "stale": bool(model.stale),
            "audit_id": getattr(model, "audit_id", None),
            "position": str(model.model.position),
            "nodes": [n.hostname for n in nodes],
            "instances": {n.hostname: [i.uuid for i in model.get_node_instances(n)] for n in nodes},
            "excluded": sorted(u for u, i in model.get_all_instances().items() if i.watcher_exclude),
        })
    if "strategy" in step:
        out["strategy"] = _strategy(collector, *step["strategy"])
    collector.stop()
    type(collector)._instances.pop(type(collector), None)  # the next step is a "new process"
    return out


def _strategy(collector, name: str, params: dict, scope: list) -> dict:
    """Run Watcher's strategy the way its decision engine does: the strategy asks
    Watcher's collector manager for "compute" itself (BaseStrategy.compute_model). Beside
    it, the same strategy on a view of the same snapshot handed over directly."""
    from watcher.common import utils
    from watcher.decision_engine.strategy import strategies

    from projections.watcher.view import WatcherView
    from tests.fixtures.watcher import STRATEGIES, run_strategy

    cls = getattr(strategies, STRATEGIES[name])
    strategy = cls(config=utils.Struct(datasources=None, check_optimize_metadata=False))
    strategy.audit_scope = scope
    given = dict(params)
    utils.StrictDefaultValidatingDraft4Validator(cls.get_schema()).validate(given)
    strategy.input_parameters = utils.Struct(given)
    solution = strategy.execute()
    model = strategy.compute_model
    direct = run_strategy(name, WatcherView(model.model), params)
    return {
        "model": type(model).__name__,
        "audit_id": getattr(model, "audit_id", None),
        "position": str(model.model.position),
        "actions": [dict(a) for a in solution.actions],
        "direct_actions": direct.actions,
    }


def main(conf: str, steps_json: str) -> list[dict]:
    import watcher.conf  # noqa: F401 - registers Watcher's options, as its services do
    from watcher.common import service
    from watcher.decision_engine.model.collector.manager import CollectorManager

    # the decision engine's own start-up: options, watcher.conf, logging, objects
    service.prepare_service(["watcher-decision-engine", "--config-file", conf])
    base = list(sys.path)
    results = []
    from stevedore.extension import ExtensionManager

    for step in json.loads(steps_json):
        sys.path[:] = [*step.get("path", []), *base]
        ExtensionManager.ENTRY_POINT_CACHE.clear()  # read once per process: this step is a "new process"
        results.append(_load(CollectorManager(), step))
    return results


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
