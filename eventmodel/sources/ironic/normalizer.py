"""The Ironic normalizer: a versioned ``baremetal.*`` notification becomes one
:class:`~eventmodel.events.BaremetalNodeChanged` or
:class:`~eventmodel.events.BaremetalNodeDeleted` (:mod:`.table`), ``irrelevant`` or
``dead`` with the reason. It never raises on bad input.

A node needs ``uuid``; the other fields of ``NodePayload`` it reads (``name``,
``power_state``, ``provision_state``, ``maintenance``, ``maintenance_reason``,
``resource_class``, ``instance_uuid``, ``extra``) read as null (``maintenance``
False) when an older payload version lacks them.
"""

from __future__ import annotations

from typing import Any

from eventmodel import events as ev
from eventmodel.sources.ironic import values as iv
from eventmodel.sources.ironic.table import TABLE, is_ironic_publisher
from eventmodel.sources.nova import fields as f
from eventmodel.sources.nova import values as v
from eventmodel.sources.nova.normalizer import TableNormalizer
from eventmodel.sources.nova.wire import Message


class IronicNormalizer(TableNormalizer):
    """Ironic's versioned notifications (exchange ``ironic``, topic
    ``ironic_versioned_notifications``) → bare metal node events. Stateless."""

    table = TABLE

    def is_publisher(self, publisher_id: str) -> bool:
        return is_ironic_publisher(publisher_id)

    def data(self, msg: Message) -> dict:
        return f.versioned_data(msg.body.get("payload"), "ironic_object")

    def node(self, data: dict[str, Any]) -> ev.BaremetalNode:
        """A node from ``NodePayload`` (and its CRUD / power / provision variants)."""
        return ev.BaremetalNode(
            f.req_str(data, "uuid"),
            v.version_of(data, iv.NODE_VERSION_FIELDS),
            f.str_or_none(data, "name"),
            f.opt_str(data, "power_state"),
            f.opt_str(data, "provision_state"),
            f.opt_bool(data, "maintenance", False),
            f.str_or_none(data, "maintenance_reason"),
            f.opt_str(data, "resource_class"),
            f.opt_str(data, "instance_uuid"),
            iv.extra(data.get("extra")),
        )
