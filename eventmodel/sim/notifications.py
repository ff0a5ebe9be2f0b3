"""Builders for Nova versioned notifications, as Nova puts them on the wire.

Field names, nova_object names and versions follow Nova's own notification
samples (``doc/notification_samples`` in openstack/nova): ``InstanceActionPayload``
1.9, ``InstanceUpdatePayload`` 2.1, ``InstanceCreatePayload`` 1.13,
``InstanceActionResizePrepPayload`` 1.4, ``ServiceStatusPayload`` 1.1,
``AggregatePayload`` 1.1 and the nested ``FlavorPayload`` 1.4, ``IpPayload`` 1.0, ``InstanceStateUpdatePayload`` 1.0,
``AuditPeriodPayload`` 1.0.

A message on the wire is an oslo.messaging 2.0 envelope (driver ``messagingv2``)::

    {"oslo.version": "2.0", "oslo.message": "<JSON string of the message>"}

Times: ``updated_at`` and friends use Nova's ``2012-10-29T13:42:11Z`` (whole
seconds); the message ``timestamp`` is naive UTC ``2012-10-29 13:42:11.123456``.
All times here are integers in µs since the epoch.
"""

from __future__ import annotations

import functools
import uuid as _uuid
from datetime import datetime, timedelta
from typing import Any

import attrs
import msgspec

from eventmodel.events import Aggregate, ComputeService, Flavor, Instance

NAMESPACE = "nova"

INSTANCE_ACTION = ("InstanceActionPayload", "1.9")
INSTANCE_UPDATE = ("InstanceUpdatePayload", "2.1")
INSTANCE_CREATE = ("InstanceCreatePayload", "1.13")
INSTANCE_RESIZE_PREP = ("InstanceActionResizePrepPayload", "1.4")
SERVICE_STATUS = ("ServiceStatusPayload", "1.1")
AGGREGATE = ("AggregatePayload", "1.1")
FLAVOR = ("FlavorPayload", "1.4")
IP = ("IpPayload", "1.0")
STATE_UPDATE = ("InstanceStateUpdatePayload", "1.0")
AUDIT_PERIOD = ("AuditPeriodPayload", "1.0")

#: Nova's service version (``nova.objects.service.SERVICE_VERSION``) around 2024.x
SERVICE_RPC_VERSION = 66

_EPOCH = datetime(1970, 1, 1)
_encode = msgspec.json.Encoder().encode
_PORT_NS = _uuid.UUID("0c3a57c4-95c7-4a4e-8d1f-6f1d0c9e2b11")


# ---------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def nova_time(us: int | None) -> str | None:
    """µs → Nova's payload time ``2012-10-29T13:42:11Z`` (seconds, truncated); None stays None."""
    if us is None:
        return None
    return _nova_second(us // 1_000_000)


@functools.lru_cache(maxsize=65_536)
def _nova_second(seconds: int) -> str:
    d = _dt(seconds * 1_000_000)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


def wire_time(us: int) -> str:
    """µs → the message ``timestamp``: naive UTC ``2012-10-29 13:42:11.123456``."""
    d = _dt(us)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}"
    )


def _month_start(us: int) -> str:
    d = _dt(us)
    return f"{d.year:04d}-{d.month:02d}-01T00:00:00Z"


# ---------------------------------------------------------------------------
# Nested objects
# ---------------------------------------------------------------------------


def nova_object(name_version: tuple[str, str], data: dict[str, Any]) -> dict[str, Any]:
    name, version = name_version
    return {
        "nova_object.data": data,
        "nova_object.name": name,
        "nova_object.namespace": NAMESPACE,
        "nova_object.version": version,
    }


def flavor_id(name: str) -> str:
    """A stable flavorid for a flavor name (Nova's are uuids or short strings)."""
    return str(_uuid.uuid5(_PORT_NS, "flavor:" + name))


@functools.lru_cache(maxsize=256)
def _flavor_payload_cached(flavor: Flavor) -> dict[str, Any]:
    return nova_object(
        FLAVOR,
        {
            "description": None,
            "disabled": False,
            "ephemeral_gb": flavor.ephemeral_gb,
            "extra_specs": flavor.extra_specs,
            "flavorid": flavor_id(flavor.name),
            "is_public": True,
            "memory_mb": flavor.memory_mb,
            "name": flavor.name,
            "projects": None,
            "root_gb": flavor.root_gb,
            "rxtx_factor": 1.0,
            "swap": flavor.swap_mb,
            "vcpu_weight": 0,
            "vcpus": flavor.vcpus,
        },
    )


def flavor_payload(flavor: Flavor) -> dict[str, Any]:
    """FlavorPayload 1.4 (``swap`` is in MB, as in Nova; ``extra_specs`` the flavor's).
    Shared: do not mutate."""
    return _flavor_payload_cached(flavor)


@attrs.frozen(slots=True)
class InstanceExtras:
    """What a payload says about an instance beyond :class:`Instance` itself."""

    created_at: int  # µs; an instance's own ``created_at``, when set, wins
    launched_at: int | None  # µs
    image_uuid: str
    reservation_id: str
    instance_name: str  # the hypervisor's domain name, e.g. "instance-0000a1b2"
    ip_address: str
    mac: str
    key_name: str | None = None


def ip_payload(instance_uuid: str, extras: InstanceExtras) -> dict[str, Any]:
    port = str(_uuid.uuid5(_PORT_NS, instance_uuid))
    return nova_object(
        IP,
        {
            "address": extras.ip_address,
            "device_name": "tap" + port[:11],
            "label": "private",
            "mac": extras.mac,
            "meta": {},
            "port_uuid": port,
            "version": 4,
        },
    )


# ---------------------------------------------------------------------------
# Instance payloads
# ---------------------------------------------------------------------------


def instance_data(
    inst: Instance,
    extras: InstanceExtras,
    *,
    request_id: str,
    initiator_user: str,
    initiator_project: str,
    deleted_at: int | None = None,
    terminated_at: int | None = None,
) -> dict[str, Any]:
    """The fields every instance payload (InstancePayload 1.x) has, except ``fault``.

    ``updated_at`` is ``inst.version`` (whole seconds); ``state`` is vm_state,
    ``tenant_id`` the project, ``host_name`` the hostname, ``node`` the hypervisor,
    ``metadata`` the server's user metadata, ``created_at`` the instance's (else the extras').
    """
    created = inst.created_at if inst.created_at is not None else extras.created_at
    return {
        "action_initiator_project": initiator_project,
        "action_initiator_user": initiator_user,
        "architecture": "x86_64",
        "auto_disk_config": "MANUAL",
        "availability_zone": inst.availability_zone,
        "block_devices": [],
        "created_at": nova_time(created),
        "deleted_at": nova_time(deleted_at),
        "display_description": inst.name,
        "display_name": inst.name,
        "flavor": flavor_payload(inst.flavor),
        "host": inst.host,
        "host_name": inst.name,
        "image_uuid": extras.image_uuid,
        "ip_addresses": [ip_payload(inst.uuid, extras)],
        "kernel_id": "",
        "key_name": extras.key_name,
        "launched_at": nova_time(extras.launched_at),
        "locked": inst.locked,
        "locked_reason": inst.locked_reason,
        "metadata": inst.metadata,
        "node": inst.node,
        "os_type": None,
        "power_state": inst.power_state,
        "progress": 0,
        "ramdisk_id": "",
        "request_id": request_id,
        "reservation_id": extras.reservation_id,
        "shares": [],
        "state": inst.vm_state,
        "task_state": inst.task_state,
        "tenant_id": inst.project_id,
        "terminated_at": nova_time(terminated_at),
        "updated_at": nova_time(inst.version),
        "user_id": inst.user_id,
        "uuid": inst.uuid,
    }


def instance_action_payload(data: dict[str, Any]) -> dict[str, Any]:
    """InstanceActionPayload 1.9: the instance plus ``fault``."""
    data["fault"] = None
    return nova_object(INSTANCE_ACTION, data)


def instance_update_payload(
    data: dict[str, Any],
    *,
    old_state: str,
    old_task_state: str | None,
    audit_period_ending: int,
) -> dict[str, Any]:
    """InstanceUpdatePayload 2.1: the instance plus what changed in its states."""
    data["audit_period"] = nova_object(
        AUDIT_PERIOD,
        {
            "audit_period_beginning": _month_start(audit_period_ending),
            "audit_period_ending": nova_time(audit_period_ending),
        },
    )
    data["old_display_name"] = None
    data["state_update"] = nova_object(
        STATE_UPDATE,
        {
            "new_task_state": data["task_state"],
            "old_state": old_state,
            "old_task_state": old_task_state,
            "state": data["state"],
        },
    )
    data["tags"] = []
    return nova_object(INSTANCE_UPDATE, data)


def instance_create_payload(data: dict[str, Any], extras: InstanceExtras) -> dict[str, Any]:
    """InstanceCreatePayload 1.13: an action payload plus the build request's details."""
    data["fault"] = None
    data["instance_name"] = extras.instance_name
    data["keypairs"] = []
    data["tags"] = []
    data["trusted_image_certificates"] = None
    return nova_object(INSTANCE_CREATE, data)


def instance_resize_prep_payload(data: dict[str, Any], new_flavor: Flavor) -> dict[str, Any]:
    """InstanceActionResizePrepPayload 1.4: ``flavor`` is the current one, ``new_flavor`` the target."""
    data["fault"] = None
    data["new_flavor"] = flavor_payload(new_flavor)
    return nova_object(INSTANCE_RESIZE_PREP, data)


# ---------------------------------------------------------------------------
# Service payload
# ---------------------------------------------------------------------------


def service_status_payload(
    service: ComputeService,
    *,
    last_seen_up: int | None,
    report_count: int,
    availability_zone: str | None = None,
) -> dict[str, Any]:
    """ServiceStatusPayload 1.1. It has no updated_at: the message timestamp dates it.

    ``availability_zone`` is null unless given, whatever ``service.availability_zone``
    says: Nova sends null (its notification sample ``service-update.json``; the
    host's zone is filled in by the os-services API only)."""
    return nova_object(
        SERVICE_STATUS,
        {
            "availability_zone": availability_zone,
            "binary": service.binary,
            "disabled": service.disabled,
            "disabled_reason": service.disabled_reason,
            "forced_down": service.forced_down,
            "host": service.host,
            "last_seen_up": nova_time(last_seen_up),
            "report_count": report_count,
            "topic": "compute",
            "uuid": service.uuid,
            "version": SERVICE_RPC_VERSION,
        },
    )


# ---------------------------------------------------------------------------
# Aggregate payload
# ---------------------------------------------------------------------------


def aggregate_payload(agg: Aggregate | None, *, creating: Aggregate | None = None) -> dict[str, Any]:
    """AggregatePayload 1.1: uuid, id, name, hosts, metadata (the zone is the
    ``availability_zone`` metadata key). It has no time.

    ``creating`` is an aggregate not yet in the database (``aggregate.create.start``):
    its ``id`` and ``hosts`` are null, as in Nova.
    """
    if creating is not None:
        return nova_object(
            AGGREGATE,
            {"hosts": None, "id": None, "metadata": dict(creating.metadata), "name": creating.name,
             "uuid": creating.uuid},
        )
    assert agg is not None
    return nova_object(
        AGGREGATE,
        {"hosts": list(agg.hosts), "id": agg.id, "metadata": dict(agg.metadata), "name": agg.name,
         "uuid": agg.uuid},
    )


# ---------------------------------------------------------------------------
# The wire
# ---------------------------------------------------------------------------


def message(
    *,
    event_type: str,
    publisher_id: str,
    payload: dict[str, Any],
    timestamp: int,
    message_id: str,
    unique_id: str,
    request_id: str,
    user_id: str | None,
    project_id: str | None,
    is_admin: bool = False,
) -> dict[str, Any]:
    """The inner message as oslo.messaging's notifier serialises it (``_context_*`` flattened)."""
    return {
        "message_id": message_id,
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": "INFO",
        "payload": payload,
        "timestamp": wire_time(timestamp),
        "_unique_id": unique_id,
        "_context_request_id": request_id,
        "_context_global_request_id": None,
        "_context_user_id": user_id,
        "_context_project_id": project_id,
        "_context_is_admin": is_admin,
        "_context_roles": ["admin", "member", "reader"] if is_admin else ["member", "reader"],
        "_context_read_only": False,
        "_context_show_deleted": False,
        "_context_timestamp": wire_time(timestamp).replace(" ", "T"),
    }


def wire(inner: dict[str, Any]) -> bytes:
    """Wrap an inner message in the oslo.messaging 2.0 envelope, as bytes."""
    return _encode({"oslo.version": "2.0", "oslo.message": _encode(inner).decode()})


def unwrap(raw: bytes) -> dict[str, Any]:
    """Inverse of :func:`wire` (for tests and tools): the inner message as a dict."""
    outer = msgspec.json.decode(raw)
    return msgspec.json.decode(outer["oslo.message"])
