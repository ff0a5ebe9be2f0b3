"""Cinder's decision table: which unversioned notification becomes which event, and
why the others are irrelevant. Drawn, with a note per row, in
``ADR/0018-storage-and-baremetal.md``; a test holds the two together.

Each handled type maps to a :class:`~eventmodel.sources.tables.Handler` naming
the event class it produces. :data:`VOLUME_EVENT_TYPES` lists every ``volume.*`` type
Cinder 29 emits (``volume/volume_utils.py`` ``notify_about_volume_usage`` callers);
each is handled or has its reason here.
"""

from __future__ import annotations

from eventmodel import events as ev
from eventmodel.sources.tables import DecisionTable, Handler, Phases, entity_handler

#: event type → its handler
HANDLERS: dict[str, Handler] = {
    **{f"volume.{action}": entity_handler(ev.VolumeChanged, "volume", with_message=True, change=change) for action, change in (
        ("create.end", "created"), ("manage_existing.end", "managed"), ("update.end", "updated"),
        ("attach.end", "attached"), ("detach.end", "detached"), ("resize.end", "resized"), ("retype", "retyped"),
        ("revert.end", "reverted"), ("transfer.accept.end", "transferred"), ("reset_status.end", "reset_status"),
    )},
    "volume.delete.end": entity_handler(ev.VolumeDeleted, "volume", with_message=True),
    "volume.unmanage.end": entity_handler(ev.VolumeDeleted, "volume", with_message=True),
    "capacity.pool": entity_handler(ev.PoolChanged, "pool"),
}

_START = "the action has only begun; its .end notification carries the result"

#: exact event types that are irrelevant, with the reason
IRRELEVANT_TYPES: dict[str, str] = {
    "volume.create.start": f"{_START} (no .end follows a failed create: the sync sees the error)",
    "volume.manage_existing.start": _START,
    "volume.update.start": _START,
    "volume.attach.start": (
        "the backend is exporting the volume; attach.end (status in-use, the attachment attached) carries the result"
    ),
    "volume.detach.start": _START,
    "volume.resize.start": f"{_START} (with the new size)",
    "volume.revert.start": _START,
    "volume.delete.start": "the volume is being deleted; delete.end removes it (a failed delete shows in the sync)",
    "volume.unmanage.start": _START,
    "volume.reset_status.start": _START,
    "volume.transfer.create.start": "a transfer offer changes no volume; only its acceptance changes the owner",
    "volume.transfer.create.end": "a transfer offer changes no volume; only its acceptance changes the owner",
    "volume.transfer.delete.start": "a withdrawn transfer offer changes no volume",
    "volume.transfer.delete.end": "a withdrawn transfer offer changes no volume",
    "volume.transfer.accept.start": f"{_START} (the new owner)",
    "volume.exists": "periodic usage audit: describes the volume without changing it",
    "capacity.backend": "the sum of a backend's pools; each changed pool comes as its own capacity.pool",
}

#: the ``volume.*`` types Cinder 29 emits, each handled or irrelevant above (a test checks it)
VOLUME_EVENT_TYPES: tuple[str, ...] = tuple(sorted(
    t for t in (*HANDLERS, *IRRELEVANT_TYPES) if t.startswith("volume.")
))

#: the reason for a usage-audit replay, whatever its type
REPLAY_REASON = (
    "a usage-audit replay (the payload has audit_period_beginning): sent long after the fact with the "
    "volume's row as the audit read it, possibly already deleted; the live notification carried the change"
)

_NOT_IN_MODEL = "are not part of the storage model"

#: Cinder notification families that are irrelevant, by prefix, with the reason
PREFIX_REASONS: tuple[tuple[str, str], ...] = (
    ("snapshot.", f"snapshots {_NOT_IN_MODEL}; a pool's usage comes in capacity.pool"),
    ("backup.", f"backups {_NOT_IN_MODEL}; a restore's target volume is seen by the sync"),
    ("group_snapshot.", f"group snapshots {_NOT_IN_MODEL}"),
    ("groupsnapshots.", f"group snapshots {_NOT_IN_MODEL}"),
    ("group_type_specs.", f"group types {_NOT_IN_MODEL}"),
    ("group_type.", f"group types {_NOT_IN_MODEL}"),
    ("groups.", f"volume groups {_NOT_IN_MODEL}"),
    ("group.", f"volume groups {_NOT_IN_MODEL}; their volumes' own notifications carry volume changes"),
    ("consistencygroup.", f"consistency groups {_NOT_IN_MODEL}"),
    ("cgsnapshot.", f"consistency group snapshots {_NOT_IN_MODEL}"),
    ("volume_type_extra_specs.", (
        "an extra spec change names only the key, not its value: the sync reads volume types "
        "(names, volume_backend_name)"
    )),
    ("volume_type_encryption.", f"encryption specs {_NOT_IN_MODEL}"),
    ("volume_type_project.", "type access lists: the sync reads volume types"),
    ("volume_type.", "volume types are read by the sync (id → name, volume_backend_name)"),
    ("qos_specs.", f"QoS specs {_NOT_IN_MODEL}"),
    ("image_volume_cache.", "the image-volume cache's hits and evictions change no volume the model holds"),
    ("scheduler.", "a scheduling failure; the volume's resulting status (error) is seen by the sync"),
    ("capacity.", "a capacity report of another level than a pool"),
)

#: the table: handlers, exact irrelevant types, then the families in order
TABLE = DecisionTable(HANDLERS, IRRELEVANT_TYPES, (
    ("volume.", Phases(start=_START, error="a Cinder volume notification this normalizer does not model",
                       other="a Cinder volume notification this normalizer does not model")),
    *PREFIX_REASONS,
))
#: the event class each handled type produces, from its handler
EVENT_CLASS: dict[str, type] = TABLE.event_class
#: why Cinder's ``event_type`` is irrelevant, or None when it becomes events
irrelevance = TABLE.irrelevance
#: True when ``event_type`` is in one of Cinder's notification families
knows = TABLE.knows

#: the service part of Cinder's publisher ids (``<service>.<host>``, ``cinder/rpc.py``)
PUBLISHER_SERVICES: frozenset[str] = frozenset({
    "volume", "capacity", "snapshot", "backup", "scheduler", "volumeType", "volumeTypeExtraSpecs",
    "volumeTypeEncryption", "volume_type_project", "QoSSpecs", "groupType", "groupTypeSpecs", "group",
    "group_snapshot", "groupStatusUpdate", "groupSnapshotStatusUpdate", "consistencygroup", "cgsnapshot",
})


def is_cinder_publisher(publisher_id: object) -> bool:
    """``volume.host@lvm``, ``capacity.sched-1``...: a publisher id Cinder's notifier makes."""
    return type(publisher_id) is str and publisher_id.partition(".")[0] in PUBLISHER_SERVICES
