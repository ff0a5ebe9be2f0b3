"""Snapshot export/import: a documented, versioned JSON file that offline strategy tests
load with one call (:func:`load_snapshot`).

Format ``eventmodel.snapshot`` version 2::

    {
      "format": "eventmodel.snapshot", "version": 2,
      "position": "0:120,1:98",          # log position the model reflects
      "recorded_at": "2026-11-25T15:31:37.996213Z",
      "exported_at": "...",
      "counts": {"instance": 2, "node": 1, "service": 1},
      "compute_nodes": [ {name, version, host, uuid, vcpus, memory_mb, disk_gb,
                          vcpus_reserved, memory_mb_reserved, disk_gb_reserved,
                          cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio,
                          hypervisor_type, state, disabled, disabled_reason,
                          availability_zone, aggregates} ],
      "services":      [ {host, binary, version, disabled, disabled_reason, forced_down, up, uuid,
                          availability_zone} ],
      "instances":     [ {uuid, version, host, node, vm_state, power_state, task_state,
                          flavor: {name, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb, extra_specs},
                          project_id, user_id, name, locked, locked_reason, availability_zone,
                          metadata, created_at} ],
      "aggregates":    [ {uuid, version, id, name, availability_zone, hosts, metadata} ],
      "storage_nodes", "pools", "volume_types", "volumes", "baremetal_nodes":
                       [ the entities' fields (eventmodel.events) ]  # only kinds the model has
      "watcher_layout": {nodes, instances, excluded}    # only for a model read from Watcher
    }

``watcher_layout`` is written for a model read from a Watcher XML file or ``ModelRoot``
(``ClusterModel.given_order``): its node uuids and instance uuids in the order Watcher
lists them, and the instances it marks ``watcher_exclude``. A view of the loaded model
keeps that order, so ``import-watcher-xml`` then :func:`load_snapshot` gives strategies
the order ``ModelRoot.from_xml`` gives them. A folded model has none (its file, and the
digest of an audit, are as before).

A node's ``disabled``/``disabled_reason`` are its status as the model knows it (its
compute service's, see :meth:`ClusterModel.node_status`); ``availability_zone`` and
``aggregates`` (names) are written for readers and derived again on load.

Versions and times are µs since the epoch. Readers ignore keys they do not know, so
later versions may add fields; a change of meaning gets a new ``version``. Version 1
files (no aggregates, metadata, extra specs, created time, node status) still load.
The document is deterministic for a given model and ``exported_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import immutables
import msgspec

from eventmodel.errors import ModelError
from eventmodel.clock import format_time, now_us, parse_time
from eventmodel.events import (
    AGGREGATE, BAREMETAL_NODE, INSTANCE, NODE, POOL, SERVICE, STORAGE_NODE, VOLUME, VOLUME_TYPE, Aggregate,
    BaremetalNode, ComputeNode, ComputeService, Instance, StorageNode, StoragePool, Volume, VolumeType,
)
from eventmodel.log.base import Position
from projections.model import ClusterModel
from projections.state import ClusterState

FORMAT = "eventmodel.snapshot"
VERSION = 2


class SnapshotFileError(ModelError, ValueError):
    """The file is not a snapshot this version can read."""


class _Layout(msgspec.Struct):
    nodes: list[str] = []
    instances: list[str] = []
    excluded: list[str] = []


class _Doc(msgspec.Struct):
    format: str
    version: int
    position: str
    recorded_at: str | None = None
    compute_nodes: list[ComputeNode] = []
    services: list[ComputeService] = []
    instances: list[Instance] = []
    aggregates: list[Aggregate] = []
    storage_nodes: list[StorageNode] = []
    pools: list[StoragePool] = []
    volume_types: list[VolumeType] = []
    volumes: list[Volume] = []
    baremetal_nodes: list[BaremetalNode] = []
    watcher_layout: _Layout | None = None


#: the document's key for each of Cinder's and Ironic's kinds (written only when the model has some)
OTHER_KINDS: dict[str, str] = {
    STORAGE_NODE: "storage_nodes", POOL: "pools", VOLUME_TYPE: "volume_types", VOLUME: "volumes",
    BAREMETAL_NODE: "baremetal_nodes",
}


def _node_record(model: ClusterModel, node: ComputeNode, by_host: dict[str, list[Aggregate]]) -> dict[str, Any]:
    st = model.node_status(node.name, by_host)
    rec = msgspec.to_builtins(attrs.evolve(node, disabled=st.disabled, disabled_reason=st.disabled_reason))
    rec["availability_zone"] = st.zone
    rec["aggregates"] = list(st.aggregates)
    return rec


def to_document(model: ClusterModel, *, exported_at: int | None = None) -> dict[str, Any]:
    """The model as the export document; ``exported_at`` (µs) defaults to now."""
    by_host = model.aggregates_by_host()
    layout = {}
    if model.given_order is not None:
        nodes, instances, excluded = model.given_order
        layout = {"watcher_layout": {"nodes": list(nodes), "instances": list(instances), "excluded": list(excluded)}}
    return {
        "format": FORMAT,
        "version": VERSION,
        "position": str(model.position),
        "recorded_at": format_time(model.recorded_at) if model.recorded_at else None,
        "exported_at": format_time(now_us() if exported_at is None else exported_at),
        "counts": dict(sorted(model.counts().items())),
        "compute_nodes": [_node_record(model, n, by_host)
                          for n in sorted(model.compute_nodes().values(), key=lambda n: n.name)],
        "services": sorted(model.services().values(), key=lambda s: (s.host, s.binary)),
        "instances": sorted(model.instances().values(), key=lambda i: i.uuid),
        "aggregates": sorted(model.aggregates().values(), key=lambda a: (a.name, a.uuid)),
        **{name: sorted(model.table(kind).values(), key=lambda e: e.key)
           for kind, name in OTHER_KINDS.items() if len(model.table(kind))},
        **layout,
    }


def snapshot_bytes(model: ClusterModel, *, exported_at: int | None = None) -> bytes:
    """The snapshot file's bytes (format above): indented below 1 MiB, compact above."""
    data = msgspec.json.encode(to_document(model, exported_at=exported_at), order="deterministic")
    return msgspec.json.format(data, indent=1) if len(data) < 1 << 20 else data


def export_snapshot(model: ClusterModel, path: str | Path, *, exported_at: int | None = None) -> Path:
    """Write the model as a snapshot file (format above)."""
    path = Path(path)
    path.write_bytes(snapshot_bytes(model, exported_at=exported_at))
    return path


def load_snapshot(path: str | Path) -> ClusterModel:
    """Load a snapshot file into a read-only model: the one call a strategy test needs."""
    raw = Path(path).read_bytes()
    try:
        doc = msgspec.json.decode(raw, type=_Doc)
    except msgspec.DecodeError as exc:
        raise SnapshotFileError(f"{path}: not an eventmodel snapshot: {exc}") from exc
    if doc.format != FORMAT:
        raise SnapshotFileError(f"{path}: format {doc.format!r}, expected {FORMAT!r}")
    if doc.version > VERSION:
        raise SnapshotFileError(f"{path}: snapshot version {doc.version} is newer than this reader ({VERSION})")
    model = from_entities(
        doc.instances, doc.compute_nodes, doc.services, doc.aggregates,
        position=Position.parse(doc.position),
        recorded_at=parse_time(doc.recorded_at) if doc.recorded_at else 0,
        others={kind: getattr(doc, name) for kind, name in OTHER_KINDS.items()},
    )
    lay = doc.watcher_layout
    if lay is not None:
        model = attrs.evolve(model, given_order=(tuple(lay.nodes), tuple(lay.instances), tuple(lay.excluded)))
    return model


def from_entities(instances: list[Instance], nodes: list[ComputeNode], services: list[ComputeService],
                  aggregates: Iterable[Aggregate] = (), *,
                  position: Position | None = None, recorded_at: int = 0,
                  others: dict[str, Iterable[Any]] | None = None) -> ClusterModel:
    """A model holding exactly these entities (for tests and imports); ``others`` by
    kind for Cinder's and Ironic's (only non-empty kinds get a table)."""
    by_node: dict[str, Any] = {}
    for inst in instances:
        if inst.node is not None:
            by_node.setdefault(inst.node, {})[inst.uuid] = None
    state = ClusterState.empty(1)
    state = attrs.evolve(
        state,
        position=position or Position((0,)),
        tables=immutables.Map({
            INSTANCE: immutables.Map({i.uuid: i for i in instances}),
            NODE: immutables.Map({n.name: n for n in nodes}),
            SERVICE: immutables.Map({s.key: s for s in services}),
            AGGREGATE: immutables.Map({a.uuid: a for a in aggregates}),
            **{kind: immutables.Map({e.key: e for e in ents}) for kind, ents in (others or {}).items() if ents},
        }),
        by_node=immutables.Map({k: immutables.Map(v) for k, v in by_node.items()}),
        recorded_at=recorded_at,
    )
    return ClusterModel(state)
