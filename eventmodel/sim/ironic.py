"""The simulated Ironic: a few bare-metal nodes beside the simulated Nova, their
operations and their versioned notifications in Ironic's format (ADR 0018).

Nodes are created before the log starts, and more are enrolled while it runs (``enroll``,
no power state yet, then ``manage`` → ``manageable`` and ``provide`` → ``available``);
operations power them on and off, deploy them (``available`` → ``active`` with an
``instance_uuid``), undeploy them (back to ``available``, the instance cleared), set or
unset maintenance with a reason, and delete nodes Ironic lets go (any state but
``active``). Enrolling and deleting are API calls: ``baremetal.node.create.start/.end``
and ``baremetal.node.delete.start/.end`` (``NodeCRUDPayload`` 1.15, which adds
``chassis_uuid``, ``instance_info`` and ``driver_info``); a new node has ``updated_at``
null until its first save, so its version is its ``created_at``.
Each operation saves the node (``updated_at`` a whole second) and sends what Ironic's
conductor sends: ``baremetal.node.power_set.start/.end`` (``NodeSetPowerStatePayload``
with ``to_power``), ``baremetal.node.provision_set.start/.end``
(``NodeSetProvisionStatePayload``), and from the API ``baremetal.node.maintenance_set
.start/.end`` (``NodePayload``). Payloads are ovo primitives
(``ironic_object.name/namespace/version/data``), datetimes oslo's ``isotime``
(whole seconds, ``Z``). The operations draw from their own RNG streams; a cloud
without bare-metal nodes is the same cloud as before. Notifications go through the
Nova emitter's queue and so through the same delivery faults.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from eventmodel.events import BaremetalNode
from eventmodel.sim import notifications as N
from eventmodel.sim.emitter import CONTROLLERS, Emitter
from eventmodel.sim.truth import GroundTruth, OperationError, S, page_after
from eventmodel.sim.world import uuid4

#: counters the simulated Ironic keeps in the sim's ``counters``
BAREMETAL_COUNTERS = ("baremetal_ops", "power", "deploy", "undeploy", "maintenance", "enroll", "node_delete")
#: payload class and version per event family
PAYLOADS = {"power_set": ("NodeSetPowerStatePayload", "1.17"),
            "provision_set": ("NodeSetProvisionStatePayload", "1.18"),
            "maintenance_set": ("NodePayload", "1.17"),
            "create": ("NodeCRUDPayload", "1.15"), "delete": ("NodeCRUDPayload", "1.15")}
#: provision states Ironic deletes a node in (``ironic/common/states.py`` ``DELETE_ALLOWED_STATES``, in part)
DELETABLE = ("manageable", "enroll", "available")
REASONS = ("BMC firmware upgrade", "disk replacement", "failed inspection")
RESOURCE_CLASSES = ("baremetal.gold", "baremetal.silver")


def isotime(us: int | None) -> str | None:
    """µs → oslo.versionedobjects' ``isotime``: whole seconds and ``Z``."""
    if us is None:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us // S * S)).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class NodeRow:
    """What Ironic's ``nodes`` table holds of a node beyond the model: its times, driver, properties."""

    created_at: int
    updated_at: int | None  # None: never saved since it was created
    conductor: str
    properties: dict[str, Any]


class SimIronic:
    """The bare-metal part of a :class:`~eventmodel.sim.cloud.SimCloud`; see the module docstring."""

    def __init__(self, compute: GroundTruth, emit: Emitter, counters: dict[str, int], *, seed: int, nodes: int,
                 rate: float = 0.1, churn: float = 0.1) -> None:
        if nodes < 0 or rate < 0 or not 0 <= churn <= 1:
            raise ValueError("nodes >= 0, rate >= 0 and 0 <= churn <= 1 are needed")
        self.compute = compute
        self.emit = emit
        self.counters = counters
        for name in BAREMETAL_COUNTERS:
            counters.setdefault(name, 0)
        self.rng = random.Random(f"eventmodel-sim:{seed}:ironic")
        self.ids = random.Random(f"eventmodel-sim:{seed}:ironic-ids")
        self.rate = rate
        #: the share of node operations that enroll or delete a node (drawn from a stream of its own)
        self.churn = churn
        self.fleet = random.Random(f"eventmodel-sim:{seed}:ironic-fleet")
        self._credit = 0.0
        #: uuid → the node as it is now; uuid → its row
        self.nodes: dict[str, BaremetalNode] = {}
        self.rows: dict[str, NodeRow] = {}
        #: every uuid ever enrolled, deleted ones too, in creation order (names new nodes)
        self.places: list[str] = []
        self._sec = self._now = compute.start_us
        self._place(nodes)

    def _place(self, count: int) -> None:
        rng, start = self.rng, self.compute.start_us
        for i in range(count):
            u = uuid4(self.ids)
            created = start - (86_400 + int(rng.random() * 30 * 86_400)) * S
            updated = created + (60 + int(rng.random() * 3_600)) * S
            maint = rng.random() < 0.2
            node = BaremetalNode(
                u, updated, f"bm-{i + 1:02d}", "power off" if maint else "power on",
                "manageable" if maint else "available", maint,
                REASONS[int(rng.random() * len(REASONS))] if maint else None,
                RESOURCE_CLASSES[i % len(RESOURCE_CLASSES)], None,
                {"compute_node_id": i + 1} if i % 2 == 0 else {},
            )
            self.nodes[u] = node
            self.places.append(u)
            self.rows[u] = NodeRow(created, updated, CONTROLLERS[i % len(CONTROLLERS)],
                                   {"cpus": 32, "memory_mb": 131_072, "local_gb": 900, "cpu_arch": "x86_64"})

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, BaremetalNode]:
        """A copy of the nodes now (uuid → node)."""
        return dict(self.nodes)

    def ordered(self) -> list[str]:
        """Node uuids in Ironic's listing order (``id`` ascending: creation order)."""
        return list(self.nodes)

    def page(self, limit: int, marker: str | None) -> list[BaremetalNode]:
        """Nodes in listing order after ``marker``, ``limit`` at most; OperationError when
        the marker is not a node now (Ironic reads it with ``Node.get_by_uuid``: a node
        deleted while a sync pages is a 404)."""
        order = self.ordered()
        return page_after(self.nodes, order, marker, limit, order.index, f"Node {marker} could not be found.")

    def node(self, uuid: str) -> BaremetalNode:
        try:
            return self.nodes[uuid]
        except KeyError:
            raise OperationError(f"no bare-metal node {uuid}") from None

    # ------------------------------------------------------------------ running

    def after_compute(self) -> None:
        """After one Nova operation: ``rate`` node operations on average."""
        self._credit += self.rate
        while self._credit >= 1:
            self._credit -= 1
            self.step(1)

    def step(self, n: int = 1) -> None:
        """``n`` random node operations (their notifications are queued)."""
        for _ in range(n):
            if self.churn and self.fleet.random() < self.churn:
                self._churn()
                continue
            if not self.nodes:
                continue
            order = self.ordered()
            node = self.nodes[order[int(self.rng.random() * len(order))]]
            if node.maintenance:
                self.set_maintenance(node.uuid, None)
            elif node.provision_state == "active":
                if self.rng.random() < 0.5:
                    self.undeploy(node.uuid)
                else:
                    self.power(node.uuid, node.power_state != "power on")
            elif node.provision_state == "available":
                r = self.rng.random()
                if r < 0.5:
                    self.deploy(node.uuid, uuid4(self.ids))
                elif r < 0.8:
                    self.power(node.uuid, node.power_state != "power on")
                else:
                    self.set_maintenance(node.uuid, REASONS[int(self.rng.random() * len(REASONS))])
            elif node.provision_state == "enroll":  # verify the BMC: manageable, power known
                self._provision(node, "manage", "manageable", instance=None, power="power off")
                self._end("maintenance")
            else:  # manageable, out of maintenance: make it available
                self._provision(node, "provide", "available", instance=node.instance_uuid)
                self._end("maintenance")

    def _churn(self) -> None:
        """Enroll a node, or delete one Ironic lets go (half of the time, when there is one)."""
        gone = [u for u, n in self.nodes.items() if n.provision_state in DELETABLE]
        if gone and self.fleet.random() < 0.5:
            self.delete(gone[int(self.fleet.random() * len(gone))])
        else:
            self.enroll()

    # ------------------------------------------------------------------ operations

    def power(self, uuid: str, on: bool) -> None:
        """Power a node on or off (``power_set.start``/``.end``)."""
        node = self.node(uuid)
        target = "power on" if on else "power off"
        self._begin()
        ctx = self._ctx()
        self._send("power_set.start", node, ctx, to_power=target)
        new = self._save(attrs.evolve(node, power_state=target))
        self._send("power_set.end", new, ctx, to_power=target)
        self._end("power")

    def deploy(self, uuid: str, instance: str) -> None:
        """Deploy an ``available`` node for ``instance``: it ends ``active`` and powered on."""
        node = self.node(uuid)
        if node.provision_state != "available" or node.maintenance:
            raise OperationError(f"node {uuid} is {node.provision_state}, not available")
        self._provision(node, "deploy", "active", instance=instance, power="power on")
        self._end("deploy")

    def undeploy(self, uuid: str) -> None:
        """Tear an ``active`` node down: ``available``, no instance, powered off."""
        node = self.node(uuid)
        if node.provision_state != "active":
            raise OperationError(f"node {uuid} is {node.provision_state}, not active")
        self._provision(node, "deleted", "available", instance=None, power="power off")
        self._end("undeploy")

    def set_maintenance(self, uuid: str, reason: str | None) -> None:
        """Maintenance on with ``reason``, or off (``reason`` None); ``maintenance_set.*`` from the API."""
        node = self.node(uuid)
        self._begin()
        ctx = self._ctx()
        self._send("maintenance_set.start", node, ctx, api=True)
        new = self._save(attrs.evolve(node, maintenance=reason is not None, maintenance_reason=reason))
        self._send("maintenance_set.end", new, ctx, api=True)
        self._end("maintenance")

    def enroll(self, name: str | None = None) -> str:
        """A new node (``POST /v1/nodes``): ``enroll``, no power state, ``updated_at`` null;
        ``create.start``/``.end`` from the API. Returns its uuid."""
        u = uuid4(self.ids)
        number = len(self.places) + 1
        self._begin()
        ctx = self._ctx()
        node = BaremetalNode(u, self._sec, name or f"bm-{number:02d}", None, "enroll", False, None,
                             RESOURCE_CLASSES[number % len(RESOURCE_CLASSES)], None,
                             {"compute_node_id": number} if number % 2 else {})
        self.rows[u] = NodeRow(self._sec, None, CONTROLLERS[number % len(CONTROLLERS)],
                               {"cpus": 64, "memory_mb": 262_144, "local_gb": 1_800, "cpu_arch": "x86_64"})
        self._send("create.start", node, ctx, api=True)
        self.nodes[u] = node
        self.places.append(u)
        self._send("create.end", node, ctx, api=True)
        self._end("enroll")
        return u

    def delete(self, uuid: str) -> None:
        """Delete a node (``DELETE /v1/nodes/{uuid}``; not while ``active``):
        ``delete.start``/``.end`` from the API, both with the node as it was."""
        node = self.node(uuid)
        if node.provision_state not in DELETABLE:
            raise OperationError(f"node {uuid} is {node.provision_state}: Ironic does not delete it")
        self._begin()
        ctx = self._ctx()
        self._send("delete.start", node, ctx, api=True)
        del self.nodes[uuid]
        self._send("delete.end", node, ctx, api=True)
        self._end("node_delete")

    def _provision(self, node: BaremetalNode, event: str, state: str, *, instance: str | None,
                   power: str | None = None) -> None:
        self._begin()
        ctx = self._ctx()
        before = node.provision_state
        target = "active" if state == "active" else "available"
        self._send("provision_set.start", node, ctx, event=event, previous=before, target=target)
        self._phase()
        new = self._save(attrs.evolve(node, provision_state=state, instance_uuid=instance,
                                      power_state=power or node.power_state))
        self._send("provision_set.end", new, ctx, event=event, previous=before, target=None)

    # ------------------------------------------------------------------ time and saving

    def _begin(self) -> None:
        self._sec = self.compute.clock_us // S * S + (1 + int(self.rng.random() * 3)) * S
        self._now = self._sec + 1_000 + int(self.rng.random() * 100_000)

    def _phase(self) -> None:
        self._sec = self._now // S * S + (1 + int(self.rng.random() * 2)) * S
        self._now = self._sec + 1_000 + int(self.rng.random() * 100_000)

    def _end(self, kind: str) -> None:
        self.compute.clock_us = max(self.compute.clock_us, self._now)
        self.counters["baremetal_ops"] += 1
        self.counters[kind] += 1

    def _save(self, new: BaremetalNode) -> BaremetalNode:
        new = attrs.evolve(new, version=self._sec)
        self.nodes[new.uuid] = new
        self.rows[new.uuid].updated_at = self._sec
        return new

    # ------------------------------------------------------------------ notifications

    def _ctx(self) -> tuple[str, str, str]:
        return ("req-" + uuid4(self.ids), self.emit.admin_user, self.emit.admin_project)

    def _send(self, action: str, node: BaremetalNode, ctx: tuple[str, str, str], *, api: bool = False,
              to_power: str | None = None, event: str | None = None, previous: str | None = None,
              target: str | None = None) -> None:
        family = action.rsplit(".", 1)[0]
        name, version = PAYLOADS[family]
        data = self.payload_data(node)
        if family == "power_set":
            data["to_power"] = to_power
            if action.endswith(".start"):
                data["target_power_state"] = to_power
        elif family in ("create", "delete"):
            data.update(chassis_uuid=None, instance_info={}, driver_info={"ipmi_address": "10.0.0.1"})
        elif family == "provision_set":
            data.update(instance_info={}, driver_internal_info={}, event=event,
                        previous_provision_state=previous, previous_target_provision_state=None)
            data["target_provision_state"] = target
        row = self.rows[node.uuid]
        publisher = ("ironic-api." if api else "ironic-conductor.") + row.conductor
        self._now = min(self._now + 200 + int(self.rng.random() * 30_000), self._sec + 999_999)
        inner = N.message(
            event_type="baremetal.node." + action, publisher_id=publisher,
            payload={"ironic_object.name": name, "ironic_object.namespace": "ironic",
                     "ironic_object.version": version, "ironic_object.data": data},
            timestamp=self._now, message_id=uuid4(self.ids), unique_id=uuid4(self.ids).replace("-", ""),
            request_id=ctx[0], user_id=ctx[1], project_id=ctx[2], is_admin=True,
        )
        self.emit.raw.append(N.wire(inner))

    def payload_data(self, node: BaremetalNode) -> dict[str, Any]:
        """``NodePayload`` 1.17's fields for a node now."""
        row = self.rows[node.uuid]
        return {
            "boot_mode": "uefi", "clean_step": {}, "conductor_group": "", "console_enabled": False,
            "created_at": isotime(row.created_at), "deploy_step": {}, "description": None,
            "disable_power_off": False, "driver": "ipmi", "extra": dict(node.extra), "fault": None,
            "inspection_finished_at": None, "inspection_started_at": None, "instance_uuid": node.instance_uuid,
            "last_error": None, "lessee": None, "maintenance": node.maintenance,
            "maintenance_reason": node.maintenance_reason, "name": node.name, "owner": None,
            "power_state": node.power_state, "properties": dict(row.properties), "protected": False,
            "protected_reason": None, "provision_state": node.provision_state,
            "provision_updated_at": isotime(row.updated_at), "resource_class": node.resource_class,
            "retired": False, "retired_reason": None, "secure_boot": None, "target_power_state": None,
            "target_provision_state": None, "traits": [], "updated_at": isotime(row.updated_at),
            "uuid": node.uuid,
            **{f"{k}_interface": v for k, v in (
                ("bios", "no-bios"), ("boot", "ipxe"), ("console", "no-console"), ("deploy", "direct"),
                ("firmware", "no-firmware"), ("inspect", "no-inspect"), ("management", "ipmitool"),
                ("network", "flat"), ("power", "ipmitool"), ("raid", "no-raid"), ("rescue", "no-rescue"),
                ("storage", "noop"), ("vendor", "ipmitool"))},
        }
