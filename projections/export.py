"""Snapshot export/import: a documented, versioned JSON file that offline strategy tests
load with one call (:func:`load_snapshot`).

Format ``eventmodel.snapshot`` version 1::

    {
      "format": "eventmodel.snapshot", "version": 1,
      "position": "0:120,1:98",          # log position the model reflects
      "recorded_at": "2026-11-25T15:31:37.996213Z",
      "exported_at": "...",
      "counts": {"instance": 2, "node": 1, "service": 1},
      "compute_nodes": [ {name, version, host, uuid, vcpus, memory_mb, disk_gb,
                          vcpus_reserved, memory_mb_reserved, disk_gb_reserved,
                          cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio,
                          hypervisor_type, state} ],
      "services":      [ {host, binary, version, disabled, disabled_reason, forced_down, up, uuid} ],
      "instances":     [ {uuid, version, host, node, vm_state, power_state, task_state,
                          flavor: {name, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb},
                          project_id, user_id, name, locked, locked_reason, availability_zone} ]
    }

Versions are µs since the epoch. Readers ignore keys they do not know, so later
versions may add fields; a change of meaning gets a new ``version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import immutables
import msgspec

from eventmodel.clock import format_time, now_us, parse_time
from eventmodel.events import INSTANCE, NODE, SERVICE, ComputeNode, ComputeService, Instance
from eventmodel.log.base import Position
from projections.model import ClusterModel
from projections.state import ClusterState

FORMAT = "eventmodel.snapshot"
VERSION = 1


class SnapshotFileError(ValueError):
    """The file is not a snapshot this version can read."""


class _Doc(msgspec.Struct):
    format: str
    version: int
    position: str
    recorded_at: str | None = None
    compute_nodes: list[ComputeNode] = []
    services: list[ComputeService] = []
    instances: list[Instance] = []


def to_document(model: ClusterModel) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "position": str(model.position),
        "recorded_at": format_time(model.recorded_at) if model.recorded_at else None,
        "exported_at": format_time(now_us()),
        "counts": model.counts(),
        "compute_nodes": sorted(model.compute_nodes().values(), key=lambda n: n.name),
        "services": sorted(model.services().values(), key=lambda s: (s.host, s.binary)),
        "instances": sorted(model.instances().values(), key=lambda i: i.uuid),
    }


def export_snapshot(model: ClusterModel, path: str | Path) -> Path:
    """Write the model as a snapshot file (format above)."""
    path = Path(path)
    data = msgspec.json.encode(to_document(model))
    path.write_bytes(msgspec.json.format(data, indent=1) if len(data) < 1 << 20 else data)
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
    return from_entities(
        doc.instances, doc.compute_nodes, doc.services,
        position=Position.parse(doc.position),
        recorded_at=parse_time(doc.recorded_at) if doc.recorded_at else 0,
    )


def from_entities(instances: list[Instance], nodes: list[ComputeNode], services: list[ComputeService], *,
                  position: Position | None = None, recorded_at: int = 0) -> ClusterModel:
    """A model holding exactly these entities (for tests and imports)."""
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
        }),
        by_node=immutables.Map({k: immutables.Map(v) for k, v in by_node.items()}),
        recorded_at=recorded_at,
    )
    return ClusterModel(state)
