"""What the simulated Nova puts on the bus: messages around the payloads, and their delivery.

:class:`Emitter` wraps the payloads :mod:`eventmodel.sim.notifications` builds into
oslo.messaging messages (message and request ids, the request context, the publisher
and its clock), queues them while an operation runs, and hands them to the
:class:`~eventmodel.sim.faults.Delivery` when the operation is over. It also keeps
what a payload says beyond the truth's entities (:meth:`Emitter.extras`) and the
``updated_at``-null quirk of a new instance's first notifications.
"""

from __future__ import annotations

import random

from eventmodel.events import Aggregate, ComputeService, Flavor, Instance
from eventmodel.sim import notifications as N
from eventmodel.sim.faults import Delivery, Faults
from eventmodel.sim.timing import PhaseClock
from eventmodel.sim.truth import GroundTruth, S
from eventmodel.sim.world import hex_id, uuid4

#: the controllers whose nova-api and nova-conductor publish
CONTROLLERS = ("controller-1", "controller-2", "controller-3")
IMAGES = (
    "0b5a8c5e-0d4f-4d3a-9f50-1f3a2d6c8e71",  # ubuntu-24.04
    "5f1c2b8e-6a8d-4b39-a0e2-9c47d3b8f412",  # ubuntu-22.04
    "9d2e7a61-3c5b-4f08-8e1a-b6c4d2f9a530",  # debian-12
    "c4a9e0f3-7b21-4d6c-9a85-2e1f6b3d7c98",  # rocky-9
)

Ctx = tuple[str, str, str, bool]  # request_id, user_id, project_id, is_admin


class Emitter:
    """Builds, queues and delivers the notifications of the operations on ``truth``."""

    def __init__(
        self,
        truth: GroundTruth,
        clock: PhaseClock,
        *,
        ids: random.Random,
        delivery_rng: random.Random,
        faults: Faults,
        counters: dict[str, int],
        admin: tuple[str, str],
    ) -> None:
        self.truth = truth
        self.clock = clock
        self.faults = faults
        self._ids = ids
        self._rng = clock.rng  # the operations' stream: publishers and timestamps are part of the run
        self.admin_user, self.admin_project = admin
        self.raw: list[bytes] = []
        self.delivery = Delivery(delivery_rng, counters)
        #: booting instances whose notifications carry ``updated_at`` null (no save yet)
        self.unsaved: set[str] = set()

    # -- delivery ------------------------------------------------------------

    def deliver(self) -> list[bytes]:
        """What reaches the bus of the notifications queued since the last call."""
        raw, self.raw = self.raw, []
        return self.delivery.deliver(raw, self.faults)

    def flush(self) -> list[bytes]:
        return self.delivery.flush()

    def release(self, n: int | None = None) -> list[bytes]:
        """Up to ``n`` held notifications (all when None), in the order they were held."""
        return self.delivery.release(n)

    @property
    def held(self) -> int:
        return self.delivery.held

    # -- contexts and publishers -----------------------------------------------

    def req(self) -> str:
        return "req-" + uuid4(self._ids)

    def ctx(self, user: str, project: str) -> Ctx:
        return (self.req(), user, project, False)

    def user_ctx(self, inst: Instance) -> Ctx:
        return (self.req(), inst.user_id, inst.project_id, False)

    def admin_ctx(self) -> Ctx:
        return (self.req(), self.admin_user, self.admin_project, True)

    def api(self) -> str:
        """A nova-api publisher on one of the controllers."""
        return "nova-api:" + CONTROLLERS[int(self._rng.random() * len(CONTROLLERS))]

    # -- sending ---------------------------------------------------------------

    def send(self, event_type: str, publisher: str, payload: dict, ctx: Ctx) -> None:
        clock = self.clock
        clock.tick()
        ids = self._ids
        inner = N.message(
            event_type=event_type,
            publisher_id=publisher,
            payload=payload,
            timestamp=clock.stamp(publisher),
            message_id=uuid4(ids),
            unique_id=hex_id(ids),
            request_id=ctx[0],
            user_id=ctx[1],
            project_id=ctx[2],
            is_admin=ctx[3],
        )
        self.raw.append(N.wire(inner))

    def data(self, inst: Instance, ctx: Ctx, deleted: int | None = None) -> dict:
        d = N.instance_data(
            inst,
            self.extras(inst),
            request_id=ctx[0],
            initiator_user=ctx[1],
            initiator_project=ctx[2],
            deleted_at=deleted,
            terminated_at=deleted,
        )
        if inst.uuid in self.unsaved:
            d["updated_at"] = None  # Nova: no save since the instance was created
        return d

    def action(self, event_type: str, pub: str, inst: Instance, ctx: Ctx, deleted: int | None = None) -> None:
        self.send(event_type, pub, N.instance_action_payload(self.data(inst, ctx, deleted)), ctx)

    def update(
        self, pub: str, inst: Instance, ctx: Ctx, old_state: str, old_task: str | None, deleted: int | None = None
    ) -> None:
        payload = N.instance_update_payload(
            self.data(inst, ctx, deleted), old_state=old_state, old_task_state=old_task,
            audit_period_ending=self.clock.sec,
        )  # fmt: skip
        self.send("instance.update", pub, payload, ctx)

    def create(self, event_type: str, pub: str, inst: Instance, ctx: Ctx) -> None:
        payload = N.instance_create_payload(self.data(inst, ctx), self.extras(inst))
        self.send(event_type, pub, payload, ctx)

    def resize_prep(self, event_type: str, pub: str, inst: Instance, new: Flavor, ctx: Ctx) -> None:
        self.send(event_type, pub, N.instance_resize_prep_payload(self.data(inst, ctx), new), ctx)

    def service(self, svc: ComputeService) -> None:
        """``service.update`` for a service just changed (by the API, as an admin)."""
        t0 = self.clock.sec
        payload = N.service_status_payload(
            svc,
            last_seen_up=t0 - (3 + int(self._rng.random() * 7)) * S,
            report_count=(t0 - self.truth.start_us) // (10 * S) + 86_400,
        )
        self.send("service.update", self.api(), payload, self.admin_ctx())

    def aggregate(self, action: str, before: Aggregate | None, after: Aggregate, *, creating: bool = False) -> None:
        """``aggregate.<action>.start`` with the state before and ``.end`` with the state
        after, from nova-api as an admin (``creating``: the start has no id and hosts)."""
        ctx = self.admin_ctx()
        pub = self.api()
        start = N.aggregate_payload(None, creating=after) if creating else N.aggregate_payload(before or after)
        self.send(f"aggregate.{action}.start", pub, start, ctx)
        self.send(f"aggregate.{action}.end", pub, N.aggregate_payload(after), ctx)

    # -- what payloads say beyond the truth's entities ----------------------------------

    def pre_created(self, u: str) -> int:
        """created_at of an instance that existed before the sim started (derived from its uuid)."""
        return self.truth.start_us - (86_400 + int(u[-8:], 16) % (180 * 86_400)) * S

    def extras(self, inst: Instance | str) -> N.InstanceExtras:
        """What payloads say of an instance (or a uuid) beyond its entity."""
        if isinstance(inst, str):
            u = inst
            found = self.truth.instances.get(u)
            created_at = found.created_at if found is not None else None
        else:
            u, created_at = inst.uuid, inst.created_at
        created = created_at if created_at is not None else self.pre_created(u)
        launched = self.truth.launched[u] if u in self.truth.launched else created + 30 * S
        h = int(u[:8], 16)
        return N.InstanceExtras(
            created_at=created,
            launched_at=launched,
            image_uuid=IMAGES[h % len(IMAGES)],
            reservation_id="r-" + u[-8:],
            instance_name="instance-" + u[:8],
            ip_address=f"10.{(h >> 16) & 255}.{(h >> 8) & 255}.{(h & 253) + 2}",
            mac=f"fa:16:3e:{u[9:11]}:{u[11:13]}:{u[14:16]}",
        )
