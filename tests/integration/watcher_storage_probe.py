"""Run in a subprocess by test_watcher_storage_collector.py: load the storage and baremetal
plugins through Watcher's own CollectorManager (stevedore, the entry-point group,
watcher.conf), apply audit scopes as a strategy does, run zone_migration as the decision
engine does, and print what came out as JSON.

    python -m tests.integration.watcher_storage_probe CONF STEPS_JSON

Steps (one process: Watcher's configuration and collector singletons are process-wide;
between steps the probe stops our collectors and forgets their instances and the entry
points read, as a new decision-engine process would):

- ``{"name": entry point, "path": [dirs first on sys.path], "scopes": [audit scope, ...]}``
- ``{"zone_migration": params, "scope": audit scope, "path": [...]}``: Watcher's strategy
  asks the collector manager for ``compute`` and ``storage`` itself; beside it the same
  strategy on views of the same snapshots, handed over directly
- ``{"collectors": [names], "cinder": bool, "path": [...]}``: ``CollectorManager.get_collectors()``
  with ``[collector] collector_plugins`` set to ``names`` and the Keystone catalog
  answering ``cinder`` for block-storage, then ``get_notification_endpoints()``
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _forget(collector: Any) -> None:
    if hasattr(collector, "engine"):
        collector.stop()
    type(collector)._instances.pop(type(collector), None)


def _storage_out(model: Any) -> dict:
    nodes = model.get_all_storage_nodes()
    return {
        "type": type(model).__name__, "stale": bool(model.stale), "audit_id": getattr(model, "audit_id", None),
        "position": str(model.model.position),
        "nodes": list(nodes),
        "pools": {h: [p.name for p in model.get_node_pools(n)] for h, n in nodes.items()},
        "volumes": list(model.get_all_volumes()),
        "xml_equal": model.to_xml() == _root_xml(model),
    }


def _root_xml(view: Any) -> str:
    """The same layout as Watcher's own StorageModelRoot (untouched views only)."""
    from projections.watcher.storage import StorageView
    from projections.watcher.storage_convert import to_storage_model_root

    if view.changes:
        return view.to_xml()
    return to_storage_model_root(view.model).to_xml() if isinstance(view, StorageView) else ""


def _load(manager: Any, step: dict) -> dict:
    from watcher.common import exception

    try:
        collector = manager.get_cluster_model_collector(step["name"])
    except exception.LoadingError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    out: dict = {"class": f"{type(collector).__module__}:{type(collector).__qualname__}", "scopes": []}
    if not hasattr(collector, "engine"):
        return out
    out["log_url"] = collector.config.log_url
    out["endpoints"] = collector.notification_endpoints
    for scope in step.get("scopes", []):
        handler = collector.get_audit_scope_handler(audit_scope=scope)
        try:
            model = handler.get_scoped_model(collector.get_latest_cluster_data_model())
        except Exception as exc:  # noqa: BLE001 - reported
            out["scopes"].append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        if model is None:
            out["scopes"].append({"model": None})
        elif hasattr(model, "get_all_ironic_nodes"):
            out["scopes"].append({"type": type(model).__name__, "stale": bool(model.stale),
                                  "audit_id": getattr(model, "audit_id", None),
                                  "nodes": list(model.get_all_ironic_nodes()),
                                  "xml": model.to_xml()})
        else:
            out["scopes"].append(_storage_out(model))
    _forget(collector)
    return out


def _zone(step: dict) -> dict:
    from watcher.common import utils
    from watcher.decision_engine.strategy import strategies

    from projections.watcher.storage import StorageView
    from projections.watcher.view import WatcherView
    from tests.integration.watcher_zone_probe import run

    cls = strategies.ZoneMigration
    strategy = cls(config=utils.Struct(datasources=None, check_optimize_metadata=False))
    strategy.audit_scope = step.get("scope", [])
    given = json.loads(json.dumps(step["zone_migration"]))
    utils.StrictDefaultValidatingDraft4Validator(cls.get_schema()).validate(given)
    strategy.input_parameters = utils.Struct(given)
    out: dict = {}
    try:
        solution = strategy.execute()
    except Exception as exc:  # noqa: BLE001 - a refused (stale) model is an answer
        out["error"] = type(exc).__name__
        solution = None
    compute, storage = strategy._compute_model, strategy._storage_model
    out["compute"] = type(compute).__name__ if compute is not None else None
    out["storage"] = type(storage).__name__ if storage is not None else None
    if solution is not None:
        out["actions"] = [dict(a) for a in solution.actions]
        out["direct"] = run(WatcherView(compute.model), StorageView(storage.model), step["zone_migration"])
        out["audit_ids"] = [getattr(compute, "audit_id", None), getattr(storage, "audit_id", None)]
    from projections.watcher.collector import ProjectionCollector
    from projections.watcher.storage_collector import ProjectionStorageCollector

    for cls_ in (ProjectionCollector, ProjectionStorageCollector):
        inst = cls_._instances.get(cls_)
        if inst is not None:
            _forget(inst)
    return out


def _collectors(step: dict) -> dict:
    from oslo_config import cfg
    from watcher.decision_engine.model.collector.manager import CollectorManager

    cfg.CONF.set_override("collector_plugins", step["collectors"], group="collector")
    manager = CollectorManager(osc=object())
    manager.is_cinder_enabled = lambda: bool(step["cinder"])  # the Keystone catalog's answer
    out: dict = {}
    try:
        loaded = manager.get_collectors()
        out["loaded"] = {k: f"{type(v).__module__}:{type(v).__qualname__}" for k, v in loaded.items()}
        out["endpoints"] = len(manager.get_notification_endpoints())
    except Exception as exc:  # noqa: BLE001 - reported
        out["error"] = f"{type(exc).__name__}: {exc}"
        loaded = {}
    for c in loaded.values():
        _forget(c)
    cfg.CONF.clear_override("collector_plugins", group="collector")
    return out


def main(conf: str, steps_json: str) -> list[dict]:
    import warnings

    warnings.filterwarnings("ignore")
    import watcher.conf  # noqa: F401 - registers Watcher's options, as its services do
    from stevedore.extension import ExtensionManager
    from watcher.common import service
    from watcher.decision_engine.model.collector.manager import CollectorManager

    service.prepare_service(["watcher-decision-engine", "--config-file", conf])
    base = list(sys.path)
    results = []
    for step in json.loads(steps_json):
        sys.path[:] = [*step.get("path", []), *base]
        ExtensionManager.ENTRY_POINT_CACHE.clear()  # this step is a "new process"
        if "zone_migration" in step:
            results.append(_zone(step))
        elif "collectors" in step:
            results.append(_collectors(step))
        else:
            results.append(_load(CollectorManager(), step))
    return results


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
