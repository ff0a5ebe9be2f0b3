"""The decision table: which Nova notification becomes which event, and why the others
are irrelevant. The table, with a note per row, is drawn in
``ADR/0017-nova-decision-table.md``; a test holds the two together.

Each handled type maps to a :class:`Handler`: the event class it produces and the
function that builds it, so the event class is written once, here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventmodel import events as ev
from eventmodel.sources.nova.wire import Message
from eventmodel.sources.tables import DecisionTable, Handler, Phases, entity_handler

if TYPE_CHECKING:
    from eventmodel.sources.nova.normalizer import NovaNormalizer


def _instance(cls: type, **extra: Any) -> Handler:
    return entity_handler(cls, "instance", **extra)


def _state(action: str) -> Handler:
    return _instance(ev.InstanceStateChanged, action=action)


def _update(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload:
    """``instance.update``; one that says the instance is deleted is a delete: the
    ``delete.end`` that follows it may be lost or arrive first."""
    inst = n.instance(data)
    if inst.vm_state == "deleted":
        return ev.InstanceDeleted(inst)
    return ev.InstanceUpdated(inst, action="update")


def _resized(action: str) -> Handler:
    def build(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload:
        old = data.get("old_flavor")
        old_flavor = n.flavor(old, "old_flavor") if old is not None else None
        return ev.InstanceResized(n.instance(data), old_flavor=old_flavor, action=action)

    return Handler(ev.InstanceResized, build)


def _service_changed(change: str | None) -> Handler:
    def build(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload | None:
        svc = n.service(data, msg.notified_at)
        if svc is None:
            return None
        what = change
        if what is None:
            what = "forced_down" if svc.forced_down else "disabled" if svc.disabled else "enabled"
        return ev.ComputeServiceChanged(svc, change=what)

    return Handler(ev.ComputeServiceChanged, build)


def _service_deleted(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload | None:
    svc = n.service(data, msg.notified_at)
    return None if svc is None else ev.ComputeServiceDeleted(svc)


def _aggregate_changed(change: str) -> Handler:
    def build(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload:
        return ev.AggregateChanged(n.aggregate(data), change=change)

    return Handler(ev.AggregateChanged, build)


def _aggregate_deleted(n: NovaNormalizer, data: dict, msg: Message) -> ev.Payload:
    return ev.AggregateDeleted(n.aggregate(data))


#: event type → its handler
HANDLERS: dict[str, Handler] = {
    "instance.create.start": _instance(ev.InstanceUpdated, action="create.start"),
    "instance.create.end": _instance(ev.InstanceCreated),
    "instance.update": Handler(ev.InstanceUpdated, _update),
    "instance.delete.end": _instance(ev.InstanceDeleted),
    **{f"instance.{action}.end": _state(action) for action in (
        "soft_delete", "restore", "power_on", "power_off", "pause", "unpause", "suspend", "resume", "rescue",
        "unrescue", "shutdown", "shelve", "shelve_offload",
    )},
    "instance.unshelve.end": _instance(ev.InstanceMigrated, method="unshelve"),
    "instance.lock": _instance(ev.InstanceLockChanged),
    "instance.unlock": _instance(ev.InstanceLockChanged),
    "instance.live_migration_post_dest.end": _instance(ev.InstanceMigrated, method="live"),
    "instance.live_migration_rollback.end": _instance(ev.InstanceUpdated, action="live_migration_rollback"),
    "instance.resize_finish.end": _resized("resize"),
    "instance.resize_confirm.end": _resized("resize_confirm"),
    "instance.resize_revert.end": _resized("resize_revert"),
    "instance.evacuate": _instance(ev.InstanceMigrated, method="evacuate"),
    "instance.rebuild.end": _instance(ev.InstanceUpdated, action="rebuild"),
    "service.create": _service_changed("created"),
    "service.update": _service_changed(None),
    "service.delete": Handler(ev.ComputeServiceDeleted, _service_deleted),
    **{f"aggregate.{action}.end": _aggregate_changed(change) for action, change in (
        ("create", "created"), ("update_prop", "update_prop"), ("update_metadata", "update_metadata"),
        ("add_host", "add_host"), ("remove_host", "remove_host"),
    )},
    "aggregate.delete.end": Handler(ev.AggregateDeleted, _aggregate_deleted),
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
PREFIX_REASONS: tuple[tuple[str, str], ...] = (
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

#: the table: handlers, exact irrelevant types, then the families in order
TABLE = DecisionTable(HANDLERS, IRRELEVANT_TYPES, (
    ("instance.", Phases(
        start="start of {action}: nothing has changed yet, the .end notification carries the result",
        error=("{action} failed: the payload shows the instance mid-transition; what it becomes "
               "comes in its own notification or the next full sync"),
        other="a Nova instance notification this normalizer does not model",
    )),
    *PREFIX_REASONS,
    ("service.", "a Nova service notification this normalizer does not model"),
))
#: the event class each handled type produces (documentation and tests), from its handler
EVENT_CLASS: dict[str, type] = TABLE.event_class
#: why Nova's ``event_type`` is irrelevant, or None when it becomes events
irrelevance = TABLE.irrelevance
#: True when ``event_type`` is Nova's (handled, or known to be irrelevant)
knows = TABLE.knows


def is_nova_publisher(publisher_id: object) -> bool:
    return type(publisher_id) is str and publisher_id.startswith("nova-")
