"""Run in a subprocess by test_watcher_zone_migration.py: Watcher's ``zone_migration``
strategy, unmodified, on our views (WatcherView + StorageView) and on Watcher's own
ModelRoot + StorageModelRoot of the same cluster; prints what each decided as JSON.

    python -m tests.integration.watcher_zone_probe CASES_JSON

Each case is ``{"cluster": "sim" | "scenario", "seed": int, "params": {...},
"shuffles": [seed, ...]}``. For every shuffle seed the probe also (a) builds the model
from the same entities handed over in a shuffled order, whose views must decide as
before (the views' order is defined), and (b) fills Watcher's models in that shuffled
order, which may decide otherwise (zone_migration plans in insertion order). For the
``scenario`` cluster, Watcher's storage_scenario_1.xml (shuffled) is read by Watcher's
``StorageModelRoot.from_xml`` and by our importer.
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "watcher-scenarios" / "storage_scenario_1.xml"
T0 = 1_700_000_000_000_000
PROJECTS = ("6f1e2a3b4c5d4e6f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f40718293a4b5c6d7e8f9")
STATES = ("active", "stopped", "paused", "active", "error", "stopped", "active")


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def cluster(seed: int) -> tuple[list, list, list, dict]:
    """(instances, compute nodes, services, storage entities) of a cluster to evacuate:
    hosts src1, src2, dst1, dst2; instances in several states on each; volumes of two
    types on src1's and src2's pools, some attached to src1's instances."""
    from eventmodel import events as ev

    rng = random.Random(seed)
    hosts = ["src1", "src2", "dst1", "dst2"]
    nodes = [ev.ComputeNode(name=f"{h}.node", version=1, host=h, uuid=_uuid(rng), vcpus=64, memory_mb=262_144,
                            disk_gb=2000) for h in hosts]
    services = [ev.ComputeService(host=h, binary="nova-compute", version=1) for h in hosts]
    instances = []
    for k in range(14):
        h = hosts[k % 2]
        f = ev.Flavor(name="f", vcpus=rng.choice((1, 2, 4, 8)), memory_mb=rng.choice((512, 2048, 8192)),
                      root_gb=rng.choice((10, 20, 40)))
        instances.append(ev.Instance(uuid=_uuid(rng), version=1, host=h, node=f"{h}.node",
                                     vm_state=STATES[k % len(STATES)], flavor=f, project_id=PROJECTS[k % 2],
                                     name=f"vm{k}", created_at=T0 + rng.randrange(5) * 1_000_000))
    on_src1 = [i.uuid for i in instances if i.host == "src1"]
    pools_names = ["src1@back1#pool1", "src2@back1#pool1", "dst1@back1#pool1", "dst2@back2#pool1"]
    st_nodes = [ev.StorageNode(host=p.split("#")[0], zone="nova") for p in pools_names]
    pools = [ev.StoragePool(name=p, total_capacity_gb=1000, free_capacity_gb=500, provisioned_capacity_gb=500,
                            allocated_capacity_gb=500) for p in pools_names]
    types = [ev.VolumeType(id=f"id-{t}", name=t, backend_name=b) for t, b in
             (("type1", "back1"), ("type2", "back1"), ("type3", "back2"))]
    vols = []
    for k in range(16):
        pool = pools_names[k % 2]
        tname = "type1" if k % 4 < 2 else "type2"
        attached = (ev.VolumeAttachment(on_src1[k % len(on_src1)], _uuid(rng)),) if k % 3 == 0 else ()
        created = T0 + rng.randrange(6) * 1_000_000  # ties on purpose: uuid decides among them
        vols.append(ev.Volume(uuid=_uuid(rng), version=created, host=pool, size_gb=rng.randrange(1, 100),
                              status="in-use" if attached else "available", name=f"vol{k}",
                              project_id=PROJECTS[k % 2], volume_type_id=f"id-{tname}",
                              volume_type=tname if k % 2 else None, attachments=attached, created_at=created))
    return instances, nodes, services, {"storage_nodes": st_nodes, "pools": pools, "volumes": vols,
                                        "volume_types": types}


def build(instances: list, nodes: list, services: list, storage: dict) -> Any:
    from projections.export import from_entities
    from projections.watcher.storage_convert import with_storage

    return with_storage(from_entities(instances, nodes, services), **storage)


def run(compute: Any, storage: Any, params: dict) -> dict:
    """zone_migration on these two models, as the decision engine runs it (models handed over)."""
    from watcher.common import utils
    from watcher.decision_engine.strategy import strategies

    cls = strategies.ZoneMigration
    strategy = cls(config=utils.Struct(datasources=None, check_optimize_metadata=False))
    strategy._compute_model = compute
    strategy._storage_model = storage
    given = json.loads(json.dumps(params))
    utils.StrictDefaultValidatingDraft4Validator(cls.get_schema()).validate(given)
    strategy.input_parameters = utils.Struct(given)
    try:
        solution = strategy.execute()
    except Exception as exc:  # both models must fail alike
        return {"error": f"{type(exc).__name__}: {exc}", "actions": [dict(a) for a in strategy.solution.actions]}
    return {"actions": [dict(a) for a in solution.actions],
            "indicators": [[i.name, i.value] for i in solution.efficacy_indicators]}


def _shuffled_roots(model: Any, seed: int) -> tuple[Any, Any]:
    """Watcher's models of ``model`` filled in a shuffled order (nodes, instances, volumes)."""
    import attrs

    from projections.watcher.convert import to_model_root
    from projections.watcher.storage import StorageView
    from projections.watcher.storage_convert import to_storage_model_root
    from projections.watcher.view import WatcherView

    rng = random.Random(seed)
    view = WatcherView(model)
    nodes, insts = list(view.get_all_compute_nodes()), list(view.get_all_instances())
    rng.shuffle(nodes)
    rng.shuffle(insts)
    s_nodes, s_pools, s_vols, _ = StorageView(model).layout()
    rng.shuffle(s_vols)
    rng.shuffle(s_pools)
    shuffled = attrs.evolve(model, given_order=(tuple(nodes), tuple(insts), ()),
                            given_storage_order=(tuple(s_nodes), tuple(s_pools), tuple(s_vols), (), ()))
    return to_model_root(shuffled, order="given"), to_storage_model_root(shuffled, order="given")


def sim_case(case: dict) -> dict:
    from projections.watcher.convert import to_model_root
    from projections.watcher.storage import StorageView
    from projections.watcher.storage_convert import to_storage_model_root
    from projections.watcher.view import WatcherView

    instances, nodes, services, storage = cluster(case["seed"])
    model = build(instances, nodes, services, storage)
    out = {"view": run(WatcherView(model), StorageView(model), case["params"]),
           "root": run(to_model_root(model), to_storage_model_root(model), case["params"]),
           "shuffled_views": [], "shuffled_roots": []}
    for s in case.get("shuffles", []):
        rng = random.Random(s)
        parts = [list(instances), list(nodes), list(services)]
        for p in parts:
            rng.shuffle(p)
        st = {k: rng.sample(list(v), len(v)) for k, v in storage.items()}
        again = build(*parts, st)
        out["shuffled_views"].append(run(WatcherView(again), StorageView(again), case["params"]))
        out["shuffled_roots"].append(run(*_shuffled_roots(model, s), case["params"]))
    return out


def _shuffle_xml(text: bytes, seed: int) -> bytes:
    from lxml import etree

    rng = random.Random(seed)
    root = etree.fromstring(text)
    for parent in [root, *root.iter("StorageNode"), *root.iter("Pool")]:
        kids = list(parent)
        rng.shuffle(kids)
        for k in kids:
            parent.remove(k)
        parent.extend(kids)
    return etree.tostring(root)


def scenario_case(case: dict) -> dict:
    """Watcher's storage scenario (and shuffled copies): StorageModelRoot.from_xml against a
    view of our import; the compute side is a small simulated cloud on both."""
    from watcher.decision_engine.model.model_root import StorageModelRoot

    from projections.watcher.convert import to_model_root
    from projections.watcher.storage import StorageView
    from projections.watcher.storage_convert import storage_xml_to_model
    from projections.watcher.view import WatcherView

    instances, nodes, services, _ = cluster(case["seed"])
    compute = build(instances, nodes, services, {})
    out: dict = {"files": []}
    for s in [None, *case.get("shuffles", [])]:
        text = SCENARIO.read_bytes() if s is None else _shuffle_xml(SCENARIO.read_bytes(), s)
        model = storage_xml_to_model(text, compute)
        out["files"].append({
            "view": run(WatcherView(model), StorageView(model), case["params"]),
            "root": run(to_model_root(compute), StorageModelRoot.from_xml(text), case["params"]),
        })
    return out


def main(cases_json: str) -> list[dict]:
    import logging

    logging.getLogger("watcher").setLevel(logging.ERROR)
    return [scenario_case(c) if c.get("cluster") == "scenario" else sim_case(c) for c in json.loads(cases_json)]


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
