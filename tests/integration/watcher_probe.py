"""Run in a subprocess by test_watcher_collector.py: load collectors through Watcher's own
CollectorManager (stevedore, the entry-point group, watcher.conf), apply audit scopes
the way a strategy does, print what came out as JSON.

    python -m tests.integration.watcher_probe CONF STEPS_JSON

Each step is ``{"name": entry point name, "path": [dirs put first on sys.path],
"scopes": [audit scope, ...]}``. Watcher's configuration and its collectors are
process-wide (oslo.config's CONF; a collector class has one instance per process;
stevedore reads a group's entry points once per process), hence a process of its own;
between steps the probe stops our collector and forgets its instance and the entry
points read, as a new decision-engine process would start without them.
"""

from __future__ import annotations

import json
import sys


def _load(manager, name: str, scopes: list) -> dict:  # noqa: ANN001 - Watcher's CollectorManager
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
    collector.stop()
    type(collector)._instances.pop(type(collector), None)  # the next step is a "new process"
    return out


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
        results.append(_load(CollectorManager(), step["name"], step.get("scopes", [])))
    return results


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
