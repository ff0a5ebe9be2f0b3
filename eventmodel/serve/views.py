"""The JSON shapes of the model that the API answers with: plain dicts, built from one
immutable :class:`~projections.model.ClusterModel`."""

from __future__ import annotations

from typing import Any

from eventmodel.clock import format_time
from eventmodel.events import ComputeNode, Instance, entity_of
from eventmodel.log.base import Record
from projections.model import ClusterModel, Resources


def time_text(us: int | None) -> str | None:
    """µs as ISO 8601, or None; a version far outside the calendar stays a number."""
    if us is None:
        return None
    try:
        return format_time(us)
    except (ValueError, OverflowError, OSError):
        return str(us)


def resources(r: Resources) -> dict[str, float]:
    return {"vcpus": r.vcpus, "memory_mb": r.memory_mb, "disk_gb": r.disk_gb}


class NodeContext:
    """What every node row of one model shares: the host → aggregates index, built once."""

    def __init__(self, model: ClusterModel) -> None:
        self.model = model
        self.by_host = model.aggregates_by_host()


def used_on(model: ClusterModel, node: str) -> Resources:
    """What the node's instances use: the same sum as ``ClusterModel.node_used`` (the tests
    hold them equal), in plain numbers — about ten times faster for a list of every node."""
    vcpus = memory = disk = 0
    for inst in model.node_instances(node):
        f = inst.flavor
        vcpus += f.vcpus
        memory += f.memory_mb
        disk += f.root_gb + f.ephemeral_gb
    return Resources(vcpus, memory, disk)


class NodeRows:
    """Node rows of the last model asked for, kept while the model is the same one (a
    model never changes, so rows computed from the same state object stay right)."""

    def __init__(self) -> None:
        self._cache: tuple[object, dict[str, dict[str, Any]], NodeContext] | None = None

    def row(self, model: ClusterModel, name: str) -> dict[str, Any]:
        cache = self._cache  # one tuple, swapped whole: a reader of another model never mixes in
        if cache is None or cache[0] is not model.state:
            cache = (model.state, {}, NodeContext(model))
            self._cache = cache
        rows = cache[1]
        r = rows.get(name)
        if r is None:
            r = rows[name] = node_row(cache[2], model.compute_node(name))
        return r


def node_row(ctx: NodeContext, node: ComputeNode) -> dict[str, Any]:
    """One compute node: capacity, used, free, instance count, status, zone, aggregates."""
    model = ctx.model
    cap = model.node_capacity(node.name)
    used = used_on(model, node.name)
    st = model.node_status(node.name, ctx.by_host)
    return {
        "name": node.name,
        "host": node.host,
        "zone": st.zone,
        "aggregates": list(st.aggregates),
        "status": "down" if not st.up else ("disabled" if st.disabled else "up"),
        "disabled": st.disabled,
        "disabled_reason": st.disabled_reason,
        "up": st.up,
        "hypervisor_state": node.state,
        "hypervisor_type": node.hypervisor_type,
        "instances": model.node_instance_count(node.name),
        "capacity": resources(cap),
        "used": resources(used),
        "free": resources(cap - used),
    }


def instance_row(inst: Instance) -> dict[str, Any]:
    f = inst.flavor
    return {
        "uuid": inst.uuid,
        "name": inst.name,
        "host": inst.host,
        "node": inst.node,
        "vm_state": inst.vm_state,
        "power_state": inst.power_state,
        "task_state": inst.task_state,
        "project_id": inst.project_id,
        "user_id": inst.user_id,
        "availability_zone": inst.availability_zone,
        "locked": inst.locked,
        "flavor": {"name": f.name, "vcpus": f.vcpus, "memory_mb": f.memory_mb, "root_gb": f.root_gb,
                   "ephemeral_gb": f.ephemeral_gb, "swap_mb": f.swap_mb},
        "metadata": dict(getattr(inst, "metadata", {}) or {}),
        "created_at": time_text(getattr(inst, "created_at", None)),
        "version": time_text(inst.version),
    }


#: fields of an entity worth a glance in a timeline
_SUMMARY = ("host", "node", "vm_state", "power_state", "task_state", "disabled", "forced_down", "up", "state",
            "availability_zone")


def history_item(rec: Record, payload: dict[str, Any]) -> dict[str, Any]:
    """One record of an entity's history: where it is, what it says, the entity after it."""
    env = rec.envelope
    ent = entity_of(env.payload)
    summary: dict[str, Any] = {}
    if ent is not None:
        for name in _SUMMARY:
            if hasattr(ent, name):
                summary[name] = getattr(ent, name)
        fl = getattr(ent, "flavor", None)
        if fl is not None:
            summary["flavor"] = fl.name
    for extra in ("source_host", "source_node", "method", "action", "change"):
        v = getattr(env.payload, extra, None)
        if v:
            summary[extra] = v
    return {
        "partition": rec.partition,
        "offset": rec.offset,
        "type": env.type,
        "event_id": env.event_id,
        "source": env.source,
        "occurred_at": time_text(env.occurred_at),
        "recorded_at": time_text(env.recorded_at),
        "version": time_text(getattr(ent, "version", None)) if ent is not None else None,
        "summary": summary,
        "payload": payload,
    }
