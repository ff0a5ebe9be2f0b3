"""Nova versioned notifications → typed events.

:class:`NovaNormalizer` takes one notification in any of three forms and returns an
:class:`Outcome`: ``events`` (one typed envelope, for the types below), ``irrelevant``
(a known or unknown type that changes nothing the model holds, with the reason) or
``dead`` (input that cannot be read, with the reason; the caller dead-letters the raw
bytes). It never raises on bad input.

Accepted forms:

- the oslo.messaging 2.0 wire envelope ``{"oslo.version": "2.0", "oslo.message": "<JSON>"}``
  as bytes, str or dict;
- the inner message dict (``message_id``, ``publisher_id``, ``event_type``, ``priority``,
  ``payload``, ``timestamp``, ``_context_*``...);
- a bare sample (``event_type``, ``payload``, ``priority``, ``publisher_id``) as in Nova's
  ``doc/notification_samples``. Without ``message_id`` the id is derived from a hash of
  the message's canonical JSON (sorted keys), so the same message always gets the same
  event ids; without ``timestamp`` the notification time is ``recorded_at``.

Envelope errors (not JSON, not an object, wrong ``oslo.version``, no ``event_type`` or
``publisher_id``, a bad ``timestamp``) are dead for every event type. Payload errors are
only looked for in the types that become events: a missing or mistyped required field
(instance ``uuid`` and ``state``, flavor ``vcpus``/``memory_mb``/``root_gb``/``ephemeral_gb``,
service ``host``/``binary``) is dead, and the reason names the field and the event type.
Payload fields this module does not read are ignored, so older and newer payload
versions (e.g. InstanceUpdatePayload 1.x with fields 2.x dropped) normalize alike;
optional fields that an older version lacks take their defaults (``locked`` False,
``locked_reason``/``availability_zone``/``power_state``/``task_state`` None, flavor
``swap`` 0 and ``name`` "").

Decision table
==============

Events (one per notification; every instance event carries the whole instance after
the change, so the fold never needs the previous event)::

    event type                               event                   action / method / note
    ---------------------------------------  ----------------------  ----------------------------------------
    instance.create.start                    instance.updated        create.start: first sight of a building
                                                                     instance (host null until the claim);
                                                                     with notify_on_state_change off it is
                                                                     the only notice before create.end
    instance.create.end                      instance.created
    instance.update                          instance.updated        update (also building, host null)
    instance.delete.end                      instance.deleted        also the compute-down and not-scheduled
                                                                     variants (published by nova-api)
    instance.soft_delete.end                 instance.state_changed  soft_delete (instance stays, SOFT_DELETED)
    instance.restore.end                     instance.state_changed  restore
    instance.power_on.end                    instance.state_changed  power_on
    instance.power_off.end                   instance.state_changed  power_off
    instance.pause.end / unpause.end         instance.state_changed  pause / unpause
    instance.suspend.end / resume.end        instance.state_changed  suspend / resume
    instance.rescue.end / unrescue.end       instance.state_changed  rescue / unrescue
    instance.shutdown.end                    instance.state_changed  shutdown (part of a delete)
    instance.shelve.end                      instance.state_changed  shelve (stays on its host)
    instance.shelve_offload.end              instance.state_changed  shelve_offload (host and node null)
    instance.unshelve.end                    instance.migrated       method=unshelve: Nova sends it only when
                                                                     an OFFLOADED instance was placed on a
                                                                     host (unshelving a non-offloaded one is
                                                                     a power_on); source_host null
    instance.lock / instance.unlock          instance.lock_changed
    instance.live_migration_post_dest.end    instance.migrated       method=live, names the destination;
                                                                     source_host null (not in the payload)
    instance.live_migration_rollback.end     instance.updated        live_migration_rollback (stays on source,
                                                                     task_state cleared)
    instance.resize_finish.end               instance.resized        resize: new host and new flavor. Also the
                                                                     end of a cold migration (same flavor);
                                                                     old_flavor/source_host null (not in the
                                                                     payload; "old_flavor" is read if present)
    instance.resize_confirm.end              instance.resized        resize_confirm (vm_state resized → active)
    instance.resize_revert.end               instance.resized        resize_revert (back on the source, old flavor)
    instance.evacuate                        instance.migrated       method=evacuate, names the destination
    instance.rebuild.end                     instance.updated        rebuild (also completes an evacuation)
    service.create                           compute_service.changed change=created
    service.update                           compute_service.changed change=forced_down if forced_down, else
                                                                     disabled if disabled, else enabled
    service.delete                           compute_service.deleted
    aggregate.create.end                     aggregate.changed       created
    aggregate.update_prop.end                aggregate.changed       update_prop (name, zone)
    aggregate.update_metadata.end            aggregate.changed       update_metadata (the zone is the
                                                                     ``availability_zone`` metadata key)
    aggregate.add_host.end / remove_host.end aggregate.changed       add_host / remove_host
    aggregate.delete.end                     aggregate.deleted

Instances carry their ``metadata`` and ``created_at``, flavors their ``extra_specs``,
services their ``availability_zone``. AggregatePayload has no time: every aggregate
record has the lowest version, so log order decides between them.

Irrelevant (counted and skipped by the caller)::

    event type                               why
    ---------------------------------------  -------------------------------------------------------------
    instance.<action>.start (but create)     the action has only begun; its .end carries the result
    instance.<action>.error                  a failed action reports the instance mid-transition; what it
                                             becomes (rollback, ERROR, reschedule) comes in its own
                                             notification or the next full sync (also create.error)
    instance.exists                          periodic usage audit, no change
    instance.reboot.end                      host, flavor and vm_state unchanged
    instance.snapshot.end, trigger_crash_dump.end
                                             nothing the model holds changes
    instance.interface_attach/detach.end, volume_attach/detach/swap.end, share_attach/detach.end
                                             ports, volumes and shares are not in the model
    instance.rebuild_scheduled               conductor picked a host; nothing moved yet
    instance.live_migration_pre.end          destination prepared; still on the source
    instance.live_migration_abort.end        only a request: rollback.end (or post_dest.end) follows
    instance.live_migration_force_complete.end
                                             only a request: post_dest.end follows
    instance.live_migration_post.end         the source's stale copy, sent AFTER post_dest.end: still the
                                             source host and its older updated_at (with clock skew between
                                             the two computes it may even look newer, so no version rule
                                             could be trusted with it)
    instance.live_migration_rollback_dest.end
                                             the destination's stale copy (task_state migrating);
                                             the source's rollback.end is authoritative
    instance.resize_prep.end, instance.resize.end
                                             destination claimed / disk copied; the instance still names
                                             the source and its old flavor until resize_finish.end
    service.* of another binary than nova-compute
                                             only compute services hold instances
    aggregate.<action>.start                 the .end carries the result
    aggregate.cache_images.*                 image pre-caching changes no aggregate or host
    flavor.*, keypair.*, server_group.*, scheduler.*, compute_task.*, compute.exception,
    libvirt.*, metrics.update, volume.usage
                                             not part of the model (see the reasons in _PREFIX_REASONS)
    any other type                           unknown to this normalizer (a plugin may claim it)

Versions
========

An instance's version is its ``updated_at``, else its ``created_at`` (Nova sends
several ``instance.update``s for a new instance before its first save, with
``updated_at`` null), else the lowest version; in µs floored to the whole second,
because Nova's ``updated_at`` has one-second resolution. A service's version is its
``updated_at``/``created_at`` when the payload has them (ServiceStatusPayload has
neither), else ``last_seen_up`` — Nova's own time of the service's last heartbeat —
floored likewise. Neither the notification's timestamp nor any clock of ours is ever
a version: hosts' clocks differ and notifications can be re-published days later.
``occurred_at`` is the notification timestamp, unfloored, for history only.

Values Nova means as one are held as one: an ``availability_zone`` of ``''`` (the
API's form for an offloaded instance) and ``null`` (the notification's) are both
``None``. In a service notification ``None`` means "not known", never "no zone":
ServiceStatusPayload's ``availability_zone`` is null in real notifications, because
the service object Nova notifies about has not loaded its zone (the zone of a host
comes from its aggregates); the fold keeps the zone it knows.

Liveness
========

A service's ``up`` is derived as Nova's servicegroup DB driver derives it
(``ServiceGroup API.service_is_up`` and ``DbDriver.is_up``), with the notification's
own ``timestamp`` as "now" — Nova's clock when it notified, never ours::

    up = not forced_down
         and abs(timestamp - heartbeat) <= service_down_time

where ``heartbeat`` is ``last_seen_up``, else ``updated_at``, else ``created_at``
(ServiceStatusPayload carries only ``last_seen_up``), and ``service_down_time`` is the
normalizer's setting (Nova's ``[DEFAULT] service_down_time``, 60 s by default; give
the cloud's value). Like Nova, a heartbeat more than ``service_down_time`` *after*
"now" (clock skew) is down too. Both times are Nova's, so replaying the same
notification always gives the same ``up``.

Fallback: when the notification has no ``timestamp`` (a bare sample; its
``occurred_at`` is then ``recorded_at``, our clock) or no heartbeat time at all,
``up`` is ``not forced_down``: nothing of Nova's says the service stopped reporting,
and our clock must not decide (a replay would decide differently). A ``timestamp``
that is not a time kills the message (see above), so it never reaches this rule.

"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs
import msgspec

from eventmodel.errors import SourceError
from eventmodel import events as ev
from eventmodel.clock import now_us, parse_time
from eventmodel.codec import EventTypes
from eventmodel.log.base import DeadLetter

EVENTS = "events"
IRRELEVANT = "irrelevant"
DEAD = "dead"

_intern = sys.intern
_SECOND = 1_000_000


@attrs.frozen(slots=True)
class Outcome:
    """What became of one notification."""

    status: str  # "events" | "irrelevant" | "dead"
    events: tuple[ev.Envelope, ...] = ()
    reason: str = ""  # why irrelevant / why dead
    event_type: str = ""  # the notification's event_type if known

    @property
    def ok(self) -> bool:
        """Not dead: the message can be acknowledged once its events are stored."""
        return self.status != DEAD


def dead(reason: str, event_type: str = "") -> Outcome:
    return Outcome(DEAD, (), reason, event_type)


def irrelevant(reason: str, event_type: str = "") -> Outcome:
    return Outcome(IRRELEVANT, (), reason, event_type)


class Invalid(SourceError, ValueError):
    """The notification cannot become events; the message is the reason."""


@attrs.frozen(slots=True)
class Message:
    """An unwrapped notification, its envelope fields checked.

    ``body`` is the inner message dict as received, plus ``message_id`` and
    ``timestamp`` filled in when the input (a bare sample) had none.
    """

    body: dict[str, Any]
    event_type: str
    publisher_id: str
    message_id: str
    occurred_at: int  # µs, the notification timestamp (or recorded_at)
    #: True when ``occurred_at`` is the notification's own ``timestamp`` (Nova's clock);
    #: False when the input had none and ``occurred_at`` is ``recorded_at`` (ours)
    timestamped: bool = True

    @property
    def notified_at(self) -> int | None:
        """The notification's own timestamp in µs; None when it had none."""
        return self.occurred_at if self.timestamped else None

    @property
    def payload(self) -> Any:
        return self.body.get("payload")


# ---------------------------------------------------------------------------
# Unwrapping
# ---------------------------------------------------------------------------

_json_decode = msgspec.json.decode


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _decode_json(data: bytes | str, what: str) -> Any:
    try:
        return _json_decode(data)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise Invalid(f"{what} is not valid JSON: {exc}") from None


def unwrap(raw: bytes | bytearray | memoryview | str | dict) -> dict[str, Any]:
    """The inner notification dict of any accepted form; raises Invalid."""
    if isinstance(raw, dict):
        outer: Any = raw
    elif isinstance(raw, (bytes, str)):
        outer = _decode_json(raw, "message")
    elif isinstance(raw, (bytearray, memoryview)):
        outer = _decode_json(bytes(raw), "message")
    else:
        raise Invalid(f"message is a {type(raw).__name__}, not bytes, str or dict")
    if type(outer) is not dict:
        raise Invalid(f"message is a JSON {_kind(outer)}, not an object")
    if "oslo.message" in outer or "oslo.version" in outer:
        version = outer.get("oslo.version")
        if version != "2.0":
            raise Invalid(f"unsupported oslo.version {version!r} (expected '2.0')")
        inner = outer.get("oslo.message")
        if type(inner) is str:
            inner = _decode_json(inner, "oslo.message")
        elif type(inner) is not dict:
            raise Invalid(f"oslo.message is {_kind(inner)}, not a JSON string")
        if type(inner) is not dict:
            raise Invalid(f"oslo.message is a JSON {_kind(inner)}, not an object")
        return inner
    return outer


def _derived_message_id(body: dict[str, Any]) -> str:
    try:
        canonical = msgspec.json.encode(body, order="sorted")
    except (TypeError, ValueError, OverflowError):  # not JSON-able (a dict built in Python)
        canonical = repr(sorted(body.items(), key=lambda kv: str(kv[0]))).encode("utf-8", "replace")
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:32]


def nova_time(us: int) -> str:
    """µs → Nova's notification timestamp form ``2026-11-25 15:31:37.996213``."""
    dt = datetime.fromtimestamp(us / _SECOND, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_message(raw: bytes | str | dict, recorded_at: int) -> Message:
    """Unwrap ``raw`` and check its envelope fields; raises Invalid."""
    body = unwrap(raw)
    event_type = body.get("event_type")
    if type(event_type) is not str or not event_type:
        raise Invalid(
            "missing event_type" if event_type is None else f"event_type is {_kind(event_type)}, not a string"
        )
    publisher = body.get("publisher_id")
    if type(publisher) is not str or not publisher:
        raise Invalid(
            f"{event_type}: missing publisher_id"
            if publisher is None
            else f"{event_type}: publisher_id must be a non-empty string, got {_kind(publisher)}"
        )
    message_id = body.get("message_id")
    stamp = body.get("timestamp")
    filled = None
    if message_id is None:
        filled = dict(body)
        message_id = filled["message_id"] = _derived_message_id(body)
    elif type(message_id) is not str or not message_id:
        raise Invalid(f"{event_type}: message_id must be a non-empty string, got {_kind(message_id)}")
    occurred_at = _time_field(stamp, f"{event_type}: timestamp")
    timestamped = occurred_at is not None
    if occurred_at is None:
        occurred_at = recorded_at
        if filled is None:
            filled = dict(body)
        filled["timestamp"] = nova_time(recorded_at)
    return Message(filled if filled is not None else body, event_type, _intern(publisher), message_id, occurred_at,
                   timestamped)


# ---------------------------------------------------------------------------
# Payload fields
# ---------------------------------------------------------------------------


def _req_str(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    if type(v) is str and v:
        return v
    if v is None:
        raise Invalid(f"missing required field {where}{key!r}")
    raise Invalid(f"field {where}{key!r} must be a non-empty string, got {_kind(v)}")


def _opt_str(d: dict, key: str, where: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if type(v) is str:
        return _intern(v)
    raise Invalid(f"field {where}{key!r} must be a string or null, got {_kind(v)}")


def _opt_bool(d: dict, key: str, where: str, default: bool) -> bool:
    v = d.get(key)
    if v is None:
        return default
    if v is True or v is False:
        return v
    raise Invalid(f"field {where}{key!r} must be a boolean, got {_kind(v)}")


def _int(d: dict, key: str, where: str, default: int | None = None) -> int:
    v = d.get(key)
    if type(v) is int and v >= 0:
        return v
    if v is None:
        if default is not None:
            return default
        raise Invalid(f"missing required field {where}{key!r}")
    raise Invalid(f"field {where}{key!r} must be a non-negative integer, got {_kind(v)} {str(v)[:32]}")


def _nova_data(obj: Any, where: str) -> dict:
    """The ``nova_object.data`` of a versioned object (an unwrapped dict is accepted too)."""
    if type(obj) is not dict:
        raise Invalid(f"missing required field {where!r}" if obj is None else f"field {where!r} is {_kind(obj)}, not an object")
    data = obj.get("nova_object.data", obj)
    if type(data) is not dict:
        raise Invalid(f"field '{where}.nova_object.data' is {_kind(data)}, not an object")
    return data


def _version_of(data: dict, fields: tuple[str, ...]) -> int:
    """The first of ``fields`` that holds a time, in µs floored to the whole second;
    :data:`~eventmodel.events.LOWEST_VERSION` when none does. Never a clock of ours
    nor the notification's timestamp: see the module docstring."""
    for name in fields:
        us = _time_field(data.get(name), f"field {name!r}")
        if us is not None:
            return us - us % _SECOND
    return ev.LOWEST_VERSION


#: where an instance's version comes from, in order (Nova leaves ``updated_at`` null
#: on a new instance's first notifications)
INSTANCE_VERSION_FIELDS = ("updated_at", "created_at")
#: a service's: ServiceStatusPayload has no updated_at; ``last_seen_up`` is Nova's own
#: time of the service's last heartbeat
SERVICE_VERSION_FIELDS = ("updated_at", "created_at", "last_seen_up")
#: where a service's last heartbeat comes from, in order (Nova's ``DbDriver.is_up``)
SERVICE_HEARTBEAT_FIELDS = ("last_seen_up", "updated_at", "created_at")
#: Nova's default ``[DEFAULT] service_down_time``, in seconds
DEFAULT_SERVICE_DOWN_TIME = 60


def _time_field(stamp: Any, what: str) -> int | None:
    """A time field of a notification in µs; None when absent; Invalid naming ``what``."""
    if stamp is None:
        return None
    if type(stamp) is not str:
        raise Invalid(f"{what} must be a string or null, got {_kind(stamp)}")
    try:
        return parse_time(stamp)
    except ValueError:
        raise Invalid(f"{what} is not a time: {stamp[:64]!r}") from None


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

_Handler = Callable[["NovaNormalizer", dict, Message], object]


def _instance_event(cls: type, **extra: Any) -> _Handler:
    def handle(self: NovaNormalizer, data: dict, msg: Message) -> object:
        return cls(self.instance(data, msg.occurred_at), **extra)

    return handle


def _update(self: NovaNormalizer, data: dict, msg: Message) -> object:
    """``instance.update``; one that says the instance is deleted is a delete: the
    ``delete.end`` that follows it may be lost or arrive first."""
    inst = self.instance(data, msg.occurred_at)
    if inst.vm_state == "deleted":
        return ev.InstanceDeleted(inst)
    return ev.InstanceUpdated(inst, action="update")


def _resized(action: str) -> _Handler:
    def handle(self: NovaNormalizer, data: dict, msg: Message) -> object:
        inst = self.instance(data, msg.occurred_at)
        old = data.get("old_flavor")
        old_flavor = self.flavor(old, "old_flavor") if old is not None else None
        return ev.InstanceResized(inst, old_flavor=old_flavor, action=action)

    return handle


def _service_changed(change: str | None) -> _Handler:
    def handle(self: NovaNormalizer, data: dict, msg: Message) -> object:
        svc = self.service(data, msg.notified_at)
        if svc is None:
            return None
        what = change
        if what is None:
            what = "forced_down" if svc.forced_down else "disabled" if svc.disabled else "enabled"
        return ev.ComputeServiceChanged(svc, change=what)

    return handle


def _service_deleted(self: NovaNormalizer, data: dict, msg: Message) -> object:
    svc = self.service(data, msg.notified_at)
    return None if svc is None else ev.ComputeServiceDeleted(svc)


def _aggregate_changed(change: str) -> _Handler:
    def handle(self: NovaNormalizer, data: dict, msg: Message) -> object:
        return ev.AggregateChanged(self.aggregate(data), change=change)

    return handle


def _aggregate_deleted(self: NovaNormalizer, data: dict, msg: Message) -> object:
    return ev.AggregateDeleted(self.aggregate(data))


def _state(action: str) -> _Handler:
    return _instance_event(ev.InstanceStateChanged, action=action)


#: event type → handler building the payload (None: irrelevant after all)
HANDLERS: dict[str, _Handler] = {
    "instance.create.start": _instance_event(ev.InstanceUpdated, action="create.start"),
    "instance.create.end": _instance_event(ev.InstanceCreated),
    "instance.update": _update,
    "instance.delete.end": _instance_event(ev.InstanceDeleted),
    "instance.soft_delete.end": _state("soft_delete"),
    "instance.restore.end": _state("restore"),
    "instance.power_on.end": _state("power_on"),
    "instance.power_off.end": _state("power_off"),
    "instance.pause.end": _state("pause"),
    "instance.unpause.end": _state("unpause"),
    "instance.suspend.end": _state("suspend"),
    "instance.resume.end": _state("resume"),
    "instance.rescue.end": _state("rescue"),
    "instance.unrescue.end": _state("unrescue"),
    "instance.shutdown.end": _state("shutdown"),
    "instance.shelve.end": _state("shelve"),
    "instance.shelve_offload.end": _state("shelve_offload"),
    "instance.unshelve.end": _instance_event(ev.InstanceMigrated, method="unshelve"),
    "instance.lock": _instance_event(ev.InstanceLockChanged),
    "instance.unlock": _instance_event(ev.InstanceLockChanged),
    "instance.live_migration_post_dest.end": _instance_event(ev.InstanceMigrated, method="live"),
    "instance.live_migration_rollback.end": _instance_event(ev.InstanceUpdated, action="live_migration_rollback"),
    "instance.resize_finish.end": _resized("resize"),
    "instance.resize_confirm.end": _resized("resize_confirm"),
    "instance.resize_revert.end": _resized("resize_revert"),
    "instance.evacuate": _instance_event(ev.InstanceMigrated, method="evacuate"),
    "instance.rebuild.end": _instance_event(ev.InstanceUpdated, action="rebuild"),
    "service.create": _service_changed("created"),
    "service.update": _service_changed(None),
    "service.delete": _service_deleted,
    "aggregate.create.end": _aggregate_changed("created"),
    "aggregate.update_prop.end": _aggregate_changed("update_prop"),
    "aggregate.update_metadata.end": _aggregate_changed("update_metadata"),
    "aggregate.add_host.end": _aggregate_changed("add_host"),
    "aggregate.remove_host.end": _aggregate_changed("remove_host"),
    "aggregate.delete.end": _aggregate_deleted,
}

#: the event class each handled type produces (documentation and tests)
EVENT_CLASS: dict[str, type] = {
    "instance.create.start": ev.InstanceUpdated,
    "instance.create.end": ev.InstanceCreated,
    "instance.update": ev.InstanceUpdated,
    "instance.delete.end": ev.InstanceDeleted,
    **{
        f"instance.{a}.end": ev.InstanceStateChanged
        for a in (
            "soft_delete", "restore", "power_on", "power_off", "pause", "unpause", "suspend",
            "resume", "rescue", "unrescue", "shutdown", "shelve", "shelve_offload",
        )
    },
    "instance.unshelve.end": ev.InstanceMigrated,
    "instance.lock": ev.InstanceLockChanged,
    "instance.unlock": ev.InstanceLockChanged,
    "instance.live_migration_post_dest.end": ev.InstanceMigrated,
    "instance.live_migration_rollback.end": ev.InstanceUpdated,
    "instance.resize_finish.end": ev.InstanceResized,
    "instance.resize_confirm.end": ev.InstanceResized,
    "instance.resize_revert.end": ev.InstanceResized,
    "instance.evacuate": ev.InstanceMigrated,
    "instance.rebuild.end": ev.InstanceUpdated,
    "service.create": ev.ComputeServiceChanged,
    "service.update": ev.ComputeServiceChanged,
    "service.delete": ev.ComputeServiceDeleted,
    **{f"aggregate.{a}.end": ev.AggregateChanged
       for a in ("create", "update_prop", "update_metadata", "add_host", "remove_host")},
    "aggregate.delete.end": ev.AggregateDeleted,
}

_NOT_IN_MODEL = "are not part of the model"

#: exact event types that are irrelevant, with the reason
IRRELEVANT_TYPES: dict[str, str] = {
    "instance.exists": "periodic usage audit: describes the instance without changing it",
    "instance.reboot.end": "a reboot leaves host, flavor and vm_state as they were",
    "instance.snapshot.end": "an image snapshot changes no placement, size or state",
    "instance.trigger_crash_dump.end": "a crash dump changes no placement, size or state",
    "instance.interface_attach.end": f"network interfaces {_NOT_IN_MODEL}",
    "instance.interface_detach.end": f"network interfaces {_NOT_IN_MODEL}",
    "instance.volume_attach.end": f"volumes {_NOT_IN_MODEL}",
    "instance.volume_detach.end": f"volumes {_NOT_IN_MODEL}",
    "instance.volume_swap.end": f"volumes {_NOT_IN_MODEL}",
    "instance.share_attach.end": f"shares {_NOT_IN_MODEL}",
    "instance.share_detach.end": f"shares {_NOT_IN_MODEL}",
    "instance.rebuild_scheduled": "the conductor picked a host for a rebuild/evacuation; nothing moved yet",
    "instance.live_migration_pre.end": "the destination is prepared; the instance is still on the source",
    "instance.live_migration_abort.end": (
        "an abort is only requested; live_migration_rollback.end (or post_dest.end) tells the outcome"
    ),
    "instance.live_migration_force_complete.end": (
        "force-complete is only requested; live_migration_post_dest.end tells the outcome"
    ),
    "instance.live_migration_post.end": (
        "the source's stale copy, sent after the destination's live_migration_post_dest.end: it still "
        "names the source host and its older updated_at (post_dest.end is authoritative)"
    ),
    "instance.live_migration_rollback_dest.end": (
        "the destination's stale copy after a rollback (task_state migrating); "
        "the source's live_migration_rollback.end is authoritative"
    ),
    "instance.resize_prep.end": (
        "the destination claimed resources; the instance keeps its host and old flavor until resize_finish.end"
    ),
    "instance.resize.end": (
        "the disk moved to the destination; the instance keeps its host and old flavor until resize_finish.end"
    ),
    "compute.exception": "an API/compute exception report; the instance's state comes in its own notification",
    "metrics.update": "compute monitor metrics (CPU frequency, load) are not part of the model",
    "volume.usage": "volume I/O usage counters are not part of the model",
}

#: Nova notification families that are irrelevant, by prefix, with the reason
_PREFIX_REASONS: tuple[tuple[str, str], ...] = (
    ("aggregate.cache_images.", "pre-caching images on an aggregate's hosts changes no aggregate or host"),
    ("aggregate.", "the start of an aggregate change: the .end notification carries the result"),
    ("flavor.", "a flavor definition changes no instance (each instance carries its own flavor copy)"),
    ("keypair.", f"keypairs {_NOT_IN_MODEL}"),
    ("server_group.", f"server groups {_NOT_IN_MODEL}"),
    ("scheduler.", "a scheduling decision; the instance moves when its compute host reports it"),
    ("compute_task.", "a conductor task failure; the payload is a request spec, not the instance"),
    ("libvirt.", "a hypervisor connection error; the service's status comes as service.update"),
    ("compute.", "a compute error report; the instance's state comes in its own notification"),
)

_NOVA_PREFIXES = ("instance.", "service.") + tuple(p for p, _ in _PREFIX_REASONS)


def irrelevance(event_type: str) -> str | None:
    """Why Nova's ``event_type`` is irrelevant, or None when it becomes events."""
    if event_type in HANDLERS:
        return None
    reason = IRRELEVANT_TYPES.get(event_type)
    if reason is not None:
        return reason
    if event_type.startswith("instance."):
        action, _, phase = event_type[len("instance."):].rpartition(".")
        if phase == "start":
            return f"start of {action}: nothing has changed yet, the .end notification carries the result"
        if phase == "error":
            return (
                f"{action} failed: the payload shows the instance mid-transition; what it becomes "
                "comes in its own notification or the next full sync"
            )
        return "a Nova instance notification this normalizer does not model"
    for prefix, reason in _PREFIX_REASONS:
        if event_type.startswith(prefix):
            return reason
    if event_type.startswith("service."):
        return "a Nova service notification this normalizer does not model"
    return f"unknown event type {event_type!r}"


def knows(event_type: str) -> bool:
    """True when ``event_type`` is Nova's (handled, or known to be irrelevant)."""
    return event_type in HANDLERS or event_type in IRRELEVANT_TYPES or event_type.startswith(_NOVA_PREFIXES)


def is_nova_publisher(publisher_id: object) -> bool:
    return type(publisher_id) is str and publisher_id.startswith("nova-")


# ---------------------------------------------------------------------------
# The normalizer
# ---------------------------------------------------------------------------


class MessageNormalizer:
    """Parses the wire form once; subclasses turn the parsed message into an Outcome."""

    def normalize(self, raw: bytes | str | dict, *, recorded_at: int | None = None) -> Outcome:
        """One notification → an Outcome. Never raises on bad input."""
        if recorded_at is None:
            recorded_at = now_us()
        try:
            msg = parse_message(raw, recorded_at)
        except Invalid as exc:
            return dead(str(exc), guess_event_type(raw))
        except Exception as exc:  # noqa: BLE001 - never crash the bridge on input
            return dead(f"unreadable message: {type(exc).__name__}: {exc}", guess_event_type(raw))
        return self.normalize_message(msg, recorded_at=recorded_at)

    def normalize_message(self, msg: Message, *, recorded_at: int) -> Outcome:
        raise NotImplementedError


class NovaNormalizer(MessageNormalizer):
    """Nova versioned notifications → typed event envelopes. Stateless apart from caches."""

    #: compute service binaries whose notifications become events
    COMPUTE_BINARIES = frozenset({"nova-compute"})

    def __init__(
        self, types: EventTypes | None = None, *, service_down_time: float = DEFAULT_SERVICE_DOWN_TIME
    ) -> None:
        """``service_down_time``: Nova's ``[DEFAULT] service_down_time`` in seconds (> 0):
        how long after its last heartbeat a service still counts as up (see Liveness in
        the module docstring)."""
        self.types = types or EventTypes.builtin()
        self.service_down_time = check_service_down_time(service_down_time)
        self._down_us = round(service_down_time * _SECOND)
        self._flavors: dict[tuple, ev.Flavor] = {}

    # -- the API ---------------------------------------------------------

    def claims(self, msg: Message) -> bool:
        """True when this normalizer should have ``msg`` rather than a plugin."""
        return knows(msg.event_type) and is_nova_publisher(msg.publisher_id)

    def normalize_message(self, msg: Message, *, recorded_at: int) -> Outcome:
        event_type = msg.event_type
        handler = HANDLERS.get(event_type)
        if handler is None:
            return irrelevant(irrelevance(event_type) or "", event_type)
        try:
            payload = msg.body.get("payload")
            if type(payload) is not dict:
                raise Invalid(
                    "missing payload" if payload is None else f"payload is {_kind(payload)}, not an object"
                )
            data = payload.get("nova_object.data")
            if type(data) is not dict:
                raise Invalid(
                    "payload has no nova_object.data (not a versioned notification)"
                    if data is None
                    else f"payload nova_object.data is {_kind(data)}, not an object"
                )
            event = handler(self, data, msg)
        except Invalid as exc:
            return dead(f"{event_type}: {exc}{_object_name(msg)}", event_type)
        except Exception as exc:  # noqa: BLE001
            return dead(f"{event_type}: unreadable payload: {type(exc).__name__}: {exc}", event_type)
        if event is None:
            binary = (msg.body.get("payload") or {}).get("nova_object.data", {}).get("binary")
            return irrelevant(f"service binary {binary!r} is not a compute service", event_type)
        entity = ev.entity_of(event)
        env = ev.Envelope(
            ev.event_id(msg.publisher_id, msg.message_id, 0),
            event.TYPE,  # type: ignore[attr-defined]
            entity.key if entity is not None else "",
            msg.publisher_id,
            msg.occurred_at,
            recorded_at,
            event,
            event.VERSION,  # type: ignore[attr-defined]
        )
        return Outcome(EVENTS, (env,), "", event_type)

    def dead_letter(self, raw: bytes, outcome: Outcome, *, source: str = "amqp") -> DeadLetter:
        return dead_letter(raw, outcome, source=source)

    # -- payload pieces --------------------------------------------------
    def flavor(self, obj: Any, where: str = "flavor") -> ev.Flavor:
        data = _nova_data(obj, where)
        w = where + "."
        vcpus = _int(data, "vcpus", w)
        memory_mb = _int(data, "memory_mb", w)
        root_gb = _int(data, "root_gb", w)
        ephemeral_gb = _int(data, "ephemeral_gb", w)
        swap = data.get("swap")
        swap_mb = 0 if swap is None or swap == "" else _int(data, "swap", w)
        name = data.get("name")
        if name is None:
            name = data.get("flavorid")
            if type(name) is not str:
                name = ""
        elif type(name) is not str:
            raise Invalid(f"field {w}'name' must be a string, got {_kind(name)}")
        specs = _str_dict(data, "extra_specs", w)
        key = (name, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb, tuple(sorted(specs.items())) if specs else ())
        flavor = self._flavors.get(key)
        if flavor is None:
            if len(self._flavors) >= 4096:
                self._flavors.clear()
            flavor = self._flavors[key] = ev.Flavor(_intern(name), vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb,
                                                    specs)
        return flavor

    def instance(self, data: dict, _occurred_at: int = 0) -> ev.Instance:
        uuid = _req_str(data, "uuid", "")
        vm_state = _intern(_req_str(data, "state", ""))
        flavor = self.flavor(data.get("flavor"))
        locked = data.get("locked")
        if locked is None:
            locked = False
        elif locked is not True and locked is not False:
            raise Invalid(f"field 'locked' must be a boolean, got {_kind(locked)}")
        return ev.Instance(
            uuid,
            _version_of(data, INSTANCE_VERSION_FIELDS),
            _opt_str(data, "host", ""),
            _opt_str(data, "node", ""),
            vm_state,
            flavor,
            _opt_str(data, "power_state", ""),
            _opt_str(data, "task_state", ""),
            _opt_str(data, "tenant_id", "") or "",
            _opt_str(data, "user_id", "") or "",
            _plain_str(data, "display_name"),
            locked,
            _plain_str_or_none(data, "locked_reason"),
            _opt_str(data, "availability_zone", "") or None,  # Nova means one thing by null and ''
            _str_dict(data, "metadata"),
            _time_field(data.get("created_at"), "field 'created_at'"),
        )

    def service(self, data: dict, now: int | None = None) -> ev.ComputeService | None:
        """The service state, or None when it is not a compute service.

        ``now`` is the notification's own timestamp in µs (Nova's clock), None when it
        had none; ``up`` follows Nova's servicegroup DB driver (module docstring,
        Liveness). A null or ``''`` ``availability_zone`` is None: not known.
        """
        binary = _req_str(data, "binary", "")
        host = _req_str(data, "host", "")
        forced_down = _opt_bool(data, "forced_down", "", False)
        disabled = _opt_bool(data, "disabled", "", False)
        if binary not in self.COMPUTE_BINARIES:
            return None
        return ev.ComputeService(
            _intern(host),
            _intern(binary),
            _version_of(data, SERVICE_VERSION_FIELDS),
            disabled,
            _plain_str_or_none(data, "disabled_reason"),
            forced_down,
            self._is_up(data, forced_down, now),
            _opt_str(data, "uuid", ""),
            _opt_str(data, "availability_zone", "") or None,  # null (not loaded) and '': not known
        )

    def _is_up(self, data: dict, forced_down: bool, now: int | None) -> bool:
        """Nova's ``service_is_up``: not forced down and the last heartbeat within
        ``service_down_time`` of ``now`` (either side, as Nova's ``abs(elapsed)``);
        ``not forced_down`` when ``now`` or the heartbeat is unknown."""
        if forced_down:
            return False
        if now is None:
            return True
        for name in SERVICE_HEARTBEAT_FIELDS:
            heartbeat = _time_field(data.get(name), f"field {name!r}")
            if heartbeat is not None:
                return abs(now - heartbeat) <= self._down_us
        return True

    def aggregate(self, data: dict) -> ev.Aggregate:
        """A host aggregate from Nova's AggregatePayload (which carries no time: lowest version)."""
        uuid = _req_str(data, "uuid", "")
        agg_id = data.get("id")
        if agg_id is not None and type(agg_id) is not int:
            raise Invalid(f"field 'id' must be an integer or null, got {_kind(agg_id)}")
        hosts = data.get("hosts")
        if hosts is None:
            hosts = []
        if type(hosts) is not list or any(type(h) is not str for h in hosts):
            raise Invalid("field 'hosts' must be a list of strings or null")
        metadata = _str_dict(data, "metadata")
        return ev.Aggregate(
            uuid, ev.LOWEST_VERSION, agg_id, _plain_str(data, "name"),
            metadata.get("availability_zone") or None,
            tuple(sorted(_intern(h) for h in hosts)), metadata,
        )


def check_service_down_time(seconds: object) -> float:
    """``seconds`` if it is a finite number of seconds > 0; ValueError otherwise."""
    if (
        type(seconds) not in (int, float)
        or not math.isfinite(seconds)  # type: ignore[arg-type]
        or seconds <= 0  # type: ignore[operator]
    ):
        raise ValueError(f"service_down_time must be a number of seconds > 0, got {seconds!r}")
    return seconds  # type: ignore[return-value]


def _str_dict(d: dict, key: str, where: str = "") -> dict[str, str]:
    """A string→string map field (instance metadata, flavor extra specs); null is empty."""
    v = d.get(key)
    if v is None:
        return {}
    if type(v) is not dict:
        raise Invalid(f"field {where}{key!r} must be an object or null, got {_kind(v)}")
    if all(type(x) is str for x in v.values()):
        return v
    out = {}
    for k, x in v.items():  # null and scalars as text; anything else is not a map of strings
        if type(x) is str:
            out[k] = x
        elif x is None or isinstance(x, (int, float, bool)):
            out[k] = "" if x is None else str(x)
        else:
            raise Invalid(f"field {where}{key!r}: value of {k!r} is {_kind(x)}, not a string")
    return out


def _plain_str(d: dict, key: str) -> str:
    v = d.get(key)
    if v is None:
        return ""
    if type(v) is str:
        return v
    raise Invalid(f"field {key!r} must be a string or null, got {_kind(v)}")


def _plain_str_or_none(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is None or type(v) is str:
        return v
    raise Invalid(f"field {key!r} must be a string or null, got {_kind(v)}")


def _object_name(msg: Message) -> str:
    payload = msg.body.get("payload")
    if type(payload) is dict:
        name, version = payload.get("nova_object.name"), payload.get("nova_object.version")
        if type(name) is str:
            return f" ({name} {version})" if type(version) is str else f" ({name})"
    return ""


def guess_event_type(raw: object) -> str:
    """Best effort, for the reason of a dead message: its event_type if one can be seen."""
    try:
        body = unwrap(raw)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001
        return ""
    et = body.get("event_type")
    return et if type(et) is str else ""


#: context keys (``_context_<name>`` in oslo's 2.0 envelope, ``_context.<name>`` in
#: its Kafka driver's form) whose values are credentials
_SECRET_WORDS = ("token", "password", "secret", "credential", "passwd")
_REDACTED = "***"
# A quoted key (quotes may be escaped once: the inner message is a JSON string inside
# the envelope), then a colon. Bounded, so the scan is linear in the input; whether the
# key names a secret and where its value ends are decided in Python, not by backtracking.
_KEY_RE = re.compile(rb'(\\?)"([^"\\]{1,128})\\?"\s{0,8}:\s{0,8}')
_SECRET_KEY_RE = re.compile(rb"token|password|secret|credential|passwd", re.IGNORECASE)


def _redact_pattern(data: bytes) -> bytes:
    """Redaction by pattern, for bytes that do not parse: the quoted value of every
    quoted key naming a secret becomes ``***`` (a value cut before its closing quote is
    redacted to the end)."""
    out: list[bytes] = []
    done = 0
    for m in _KEY_RE.finditer(data):
        if m.start() < done or not _SECRET_KEY_RE.search(m.group(2)):
            continue
        at = m.end()
        quote = b'\\"' if m.group(1) else b'"'
        if not data.startswith(quote, at):
            continue  # not a string value (a number, an object): nothing to hide here
        start = at + len(quote)
        end = start
        while True:  # the closing quote: one not escaped (for \", one not preceded by \\)
            end = data.find(quote, end)
            if end < 0 or not m.group(1) or data[end - 1: end] != b"\\":
                break
            end += 1
        if not m.group(1):
            while end > 0 and _escaped(data, end):
                end = data.find(quote, end + 1)
        end = len(data) if end < 0 else end
        out += [data[done:start], _REDACTED.encode()]
        done = end
    out.append(data[done:])
    return b"".join(out)


def _escaped(data: bytes, i: int) -> bool:
    """Whether the character at ``i`` is escaped (an odd run of backslashes before it)."""
    n = 0
    while i - n - 1 >= 0 and data[i - n - 1] == 0x5C:
        n += 1
    return n % 2 == 1


def _is_secret(key: object) -> bool:
    return type(key) is str and any(w in key.lower() for w in _SECRET_WORDS)


def _redact_context(body: dict) -> dict:
    out = {}
    for k, v in body.items():
        if type(k) is str and k.startswith("_context_") and _is_secret(k[len("_context_"):]):
            out[k] = _REDACTED
        elif k == "_context" and type(v) is dict:
            out[k] = {ck: (_REDACTED if _is_secret(ck) else cv) for ck, cv in v.items()}
        else:
            out[k] = v
    return out


def redact_credentials(data: bytes) -> bytes:
    """``data`` with the request context's credentials (auth tokens, passwords,
    secrets) replaced by ``***``; everything else kept. A message that parses is
    redacted field by field; one that does not, by pattern."""
    try:
        outer = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeError):
        return _redact_pattern(data)
    if type(outer) is not dict:
        return data
    inner = outer.get("oslo.message")
    if type(inner) is str:
        try:
            body = msgspec.json.decode(inner)
        except (msgspec.DecodeError, UnicodeError):
            return _redact_pattern(data)
        if type(body) is dict:
            redacted = _redact_context(body)
            if redacted != body:
                return msgspec.json.encode({**outer, "oslo.message": msgspec.json.encode(redacted).decode()})
        return data
    redacted = _redact_context(outer)
    return msgspec.json.encode(redacted) if redacted != outer else data


def dead_letter(raw: bytes | str | dict, outcome: Outcome, *, source: str = "amqp") -> DeadLetter:
    """A dead-letter record for ``raw``: its bytes (credentials redacted, bounded in
    size with the whole input's size and hash kept) and the outcome's reason."""
    if isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        try:
            data = msgspec.json.encode(raw)
        except Exception:  # noqa: BLE001
            data = repr(raw).encode("utf-8", "replace")
    reason = outcome.reason or f"status {outcome.status}"
    if outcome.event_type and not reason.startswith(outcome.event_type):
        reason = f"{outcome.event_type}: {reason}"
    return DeadLetter.of(redact_credentials(data), reason, source, now_us())
