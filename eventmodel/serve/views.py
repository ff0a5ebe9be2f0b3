"""The JSON shapes of the model that the API answers with: plain dicts, built from one
immutable :class:`~projections.model.ClusterModel`."""

from __future__ import annotations

import threading
from typing import Any

from eventmodel.clock import format_time
from eventmodel.events import Aggregate, ComputeNode, Instance, entity_of
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


class NodeRows:
    """The rows of every node, computed for one model at a time and kept while that model
    is the newest asked for (a model never changes, so rows of the same state object stay
    right).

    While the follower folds, the model changes many times a second; a list of every
    node costs a pass over all instances. One request computes the rows for the current
    model; requests arriving meanwhile get the last complete rows, stamped with *their*
    position — every answer says where it was read, so an answer a few records old is
    honest, and requests never pile up behind each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: tuple[ClusterModel, dict[str, dict[str, Any]]] | None = None
        #: the encoded answer of the last unfiltered first page: (state, limit, bytes)
        self.body: tuple[object, int, bytes] | None = None

    def all(self, model: ClusterModel) -> tuple[ClusterModel, dict[str, dict[str, Any]]]:
        """(the model the rows were read from, name → row) — for ``model``, or for the
        last model whose rows are complete while another request computes them."""
        done = self._done
        if done is not None and done[0].state is model.state:
            return done
        if not self._lock.acquire(blocking=done is None):
            assert done is not None
            return done
        try:
            done = self._done
            if done is None or done[0].state is not model.state:
                by_host = model.aggregates_by_host()
                used = model.used_by_node()
                rows = {name: node_row(model, node, used.get(name, Resources()), by_host)
                        for name, node in model.compute_nodes().items()}
                done = self._done = (model, rows)
            return done
        finally:
            self._lock.release()

    def row(self, model: ClusterModel, name: str) -> dict[str, Any]:
        """One node's row in ``model`` (from the complete rows when they are of this model)."""
        done = self._done
        if done is not None and done[0].state is model.state and name in done[1]:
            return done[1][name]
        return node_row(model, model.compute_node(name))


def node_row(model: ClusterModel, node: ComputeNode, used: Resources | None = None,
             by_host: dict[str, list[Aggregate]] | None = None) -> dict[str, Any]:
    """One compute node: capacity, used, free, instance count, status, zone, aggregates
    (``used``/``by_host``: from :meth:`ClusterModel.used_by_node`/``aggregates_by_host``
    when building many rows)."""
    cap = model.node_capacity(node.name)
    if used is None:
        used = model.node_used(node.name)
    st = model.node_status(node.name, by_host)
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
