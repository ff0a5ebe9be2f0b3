"""The JSON shapes of the model that the API answers with: plain dicts, built from one
immutable :class:`~projections.model.ClusterModel`."""

from __future__ import annotations

from typing import Any

from eventmodel.clock import format_time
from eventmodel.events import AGGREGATE, ComputeNode, Instance, entity_of
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
    """What every node row of one model needs beside the node: each host's aggregates.
    Uses the model's own helpers (``node_status``, ``node_aggregates``) when it has them."""

    def __init__(self, model: ClusterModel) -> None:
        self.model = model
        self.has_status = hasattr(model, "node_status")
        self.has_aggregates = hasattr(model, "node_aggregates")
        self._by_host: dict[str, list[str]] | None = None

    def aggregates(self, node: ComputeNode) -> list[str]:
        if self.has_aggregates:
            return sorted(_name(a) for a in self.model.node_aggregates(node.name))  # type: ignore[attr-defined]
        if self._by_host is None:
            self._by_host = {}
            for agg in self.model.table(AGGREGATE).values():
                for host in agg.hosts:
                    self._by_host.setdefault(host, []).append(agg.name or agg.uuid)
        return sorted(self._by_host.get(node.host or node.name, ()))

    def status(self, node: ComputeNode) -> dict[str, Any]:
        """disabled (and why), up, zone: from the model's helper, else joined from the service."""
        if self.has_status:
            st = self.model.node_status(node.name)  # type: ignore[attr-defined]
            get = st.get if isinstance(st, dict) else lambda k, d=None: getattr(st, k, d)
            return {"disabled": bool(get("disabled", False)), "disabled_reason": get("reason", None),
                    "up": bool(get("up", True)), "zone": get("zone", None)}
        svc = self.model.service(node.host) if node.host else None
        disabled = node.disabled or bool(svc and svc.disabled)
        reason = node.disabled_reason or (svc.disabled_reason if svc else None)
        up = node.state == "up" and (svc is None or (svc.up and not svc.forced_down))
        return {"disabled": disabled, "disabled_reason": reason if disabled else None, "up": up,
                "zone": svc.availability_zone if svc else None}


def _name(agg: object) -> str:
    return getattr(agg, "name", None) or getattr(agg, "uuid", None) or str(agg)


def node_row(ctx: NodeContext, node: ComputeNode) -> dict[str, Any]:
    """One compute node: capacity, used, free, instance count, status, zone, aggregates."""
    model = ctx.model
    cap = model.node_capacity(node.name)
    used = model.node_used(node.name)
    st = ctx.status(node)
    return {
        "name": node.name,
        "host": node.host,
        "zone": st["zone"],
        "aggregates": ctx.aggregates(node),
        "status": "down" if not st["up"] else ("disabled" if st["disabled"] else "up"),
        "disabled": st["disabled"],
        "disabled_reason": st["disabled_reason"],
        "up": st["up"],
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
