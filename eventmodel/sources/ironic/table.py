"""Ironic's decision table: which versioned notification becomes which event, and why
the others are irrelevant (drawn in ``ADR/0018-storage-and-baremetal.md``; a test
holds the two together). Event types are ``baremetal.<object>.<action>.<status>``
(``ironic/objects/notification.py``), status one of start, end, error, success.
"""

from __future__ import annotations

from eventmodel import events as ev
from eventmodel.sources.tables import DecisionTable, Handler, Phases, entity_handler

#: event type → its handler
HANDLERS: dict[str, Handler] = {
    **{f"baremetal.node.{action}": entity_handler(ev.BaremetalNodeChanged, "node", change=change)
       for action, change in (
        ("create.end", "created"), ("update.end", "updated"), ("power_set.end", "power_set"),
        ("power_state_corrected.success", "power_state_corrected"), ("provision_set.end", "provision_set"),
        ("provision_set.success", "provision_set"), ("maintenance_set.end", "maintenance_set"),
    )},
    "baremetal.node.delete.end": entity_handler(ev.BaremetalNodeDeleted, "node"),
}

#: exact node event types that are irrelevant, with the reason
IRRELEVANT_TYPES: dict[str, str] = {
    **{f"baremetal.node.{action}.{status}": "the serial console's state is not part of the baremetal model"
       for action in ("console_set", "console_restore") for status in ("start", "end", "error")},
}

#: the table: handlers, exact irrelevant types, then the families in order
TABLE = DecisionTable(HANDLERS, IRRELEVANT_TYPES, (
    ("baremetal.node.", Phases(
        start="start of {action}: nothing has changed yet, its .end carries the result",
        error=("{action} failed: the node's resulting state comes in its own notification "
               "(power_state_corrected, provision_set) or the next full sync"),
        other="an Ironic node notification this normalizer does not model",
    )),
    ("baremetal.", "Ironic's ports, port groups, chassis, allocations, deploy templates, volume connectors "
                   "and targets are not part of the baremetal model (only nodes are)"),
))
#: the event class each handled type produces, from its handler
EVENT_CLASS: dict[str, type] = TABLE.event_class
#: why Ironic's ``event_type`` is irrelevant, or None when it becomes events
irrelevance = TABLE.irrelevance
#: True when ``event_type`` is one of Ironic's (``baremetal.*``)
knows = TABLE.knows


def is_ironic_publisher(publisher_id: object) -> bool:
    """``ironic-api.<host>`` or ``ironic-conductor.<host>``."""
    return type(publisher_id) is str and publisher_id.startswith("ironic-")
