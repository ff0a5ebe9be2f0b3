"""The JSON shapes of the model that the API answers with: plain dicts, built from one
immutable :class:`~projections.model.ClusterModel`."""

from __future__ import annotations

import threading
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
    """What every node row of one model shares: the host → aggregates index, built once
    (or given: it depends only on the aggregates table, which rarely changes)."""

    def __init__(self, model: ClusterModel, by_host: dict[str, list[Any]] | None = None) -> None:
        self.model = model
        self.by_host = model.aggregates_by_host() if by_host is None else by_host


def used_on(model: ClusterModel, node: str) -> Resources:
    """What one node's instances use: the same sum as ``ClusterModel.node_used`` (the
    tests hold them equal), in plain numbers."""
    vcpus = memory = disk = 0
    for inst in model.node_instances(node):
        f = inst.flavor
        vcpus += f.vcpus
        memory += f.memory_mb
        disk += f.root_gb + f.ephemeral_gb
    return Resources(vcpus, memory, disk)


def used_by_node(model: ClusterModel) -> dict[str, Resources]:
    """What every node's instances use, in one pass over the instances (iterating the
    table is several times cheaper than looking each instance up from the node index)."""
    acc: dict[str, list[int]] = {}
    for inst in model.instances().values():
        node = inst.node
        if node is None:
            continue
        f = inst.flavor
        a = acc.get(node)
        if a is None:
            a = acc[node] = [0, 0, 0]
        a[0] += f.vcpus
        a[1] += f.memory_mb
        a[2] += f.root_gb + f.ephemeral_gb
    return {node: Resources(*a) for node, a in acc.items()}


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
        self._by_host: tuple[object, dict[str, list[Any]]] | None = None
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
                ctx = self.context(model)
                used = used_by_node(model)
                rows = {name: node_row(ctx, node, used.get(name, Resources()))
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
        return node_row(self.context(model), model.compute_node(name))

    def context(self, model: ClusterModel) -> NodeContext:
        """A context for ``model``, its host → aggregates index kept while the model's
        aggregates table is the same object (building it walks every aggregate's hosts)."""
        aggs = model.aggregates()
        cached = self._by_host
        if cached is None or cached[0] is not aggs:
            cached = self._by_host = (aggs, model.aggregates_by_host())
        return NodeContext(model, cached[1])


def node_row(ctx: NodeContext, node: ComputeNode, used: Resources | None = None) -> dict[str, Any]:
    """One compute node: capacity, used, free, instance count, status, zone, aggregates."""
    model = ctx.model
    cap = model.node_capacity(node.name)
    if used is None:
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
