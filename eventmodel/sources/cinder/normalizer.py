"""The Cinder normalizer: an unversioned Cinder notification (any wire form
:mod:`eventmodel.sources.nova.wire` accepts) becomes an
:class:`~eventmodel.sources.nova.Outcome` — one typed event (the table in
:mod:`.table`), ``irrelevant`` with the reason, or ``dead`` with the reason. It never
raises on bad input.

Payload errors are looked for only in the types that become events: a volume needs
``volume_id``, ``status`` and ``size``; a pool ``name_to_id``. The other keys follow
Cinder's value rules (:mod:`.values`): a missing optional key reads as null.
"""

from __future__ import annotations

from typing import Any

from eventmodel import events as ev
from eventmodel.sources.cinder import values as cv
from eventmodel.sources.cinder.table import REPLAY_REASON, TABLE, is_cinder_publisher
from eventmodel.sources.nova import fields as f
from eventmodel.sources.nova import values as v
from eventmodel.sources.nova.normalizer import TableNormalizer
from eventmodel.sources.nova.values import Invalid
from eventmodel.sources.nova.wire import Message


class CinderNormalizer(TableNormalizer):
    """Cinder's unversioned notifications (exchange ``openstack``, topic
    ``notifications``) → volume and pool events. Stateless."""

    table = TABLE

    def is_publisher(self, publisher_id: str) -> bool:
        return is_cinder_publisher(publisher_id)

    def data(self, msg: Message) -> dict:
        payload = msg.body.get("payload")
        if type(payload) is not dict:
            raise Invalid("missing payload" if payload is None else f"payload is {v.kind(payload)}, not an object")
        return payload

    def skip(self, data: dict, msg: Message) -> str | None:
        return REPLAY_REASON if cv.is_replay(data) else None

    # -- payload pieces --------------------------------------------------

    def volume(self, p: dict[str, Any], msg: Message | None = None) -> ev.Volume:
        """A volume from Cinder's usage payload (``_usage_from_volume``); its version is
        the time Cinder sent the message (:func:`~eventmodel.sources.cinder.values.volume_version`)."""
        return ev.Volume(
            f.req_str(p, "volume_id"),
            cv.volume_version(None if msg is None else msg.notified_at),
            cv.text_or_none(p.get("host"), "host"),
            cv.size_gb(p.get("size")),
            f.req_str(p, "status"),
            name=f.plain_str(p, "display_name"),
            project_id=f.opt_str(p, "tenant_id") or "",
            user_id=f.opt_str(p, "user_id") or "",
            volume_type_id=cv.text_or_none(p.get("volume_type"), "volume_type"),
            volume_type=None,  # the payload has the type's id only; the sync's type table names it
            availability_zone=v.zone(f.opt_str(p, "availability_zone")),
            attachments=cv.attachments(p.get("volume_attachment")),
            multiattach=cv.multiattach(p.get("volume_attachment")),
            bootable="glance_metadata" in p,
            snapshot_id=cv.text_or_none(p.get("snapshot_id"), "snapshot_id"),
            metadata=cv.metadata(p.get("metadata")),
            created_at=cv.created_at(p.get("created_at")),
        )

    def pool(self, p: dict[str, Any]) -> ev.StoragePool:
        """A pool's capacity from ``capacity.pool`` (``_usage_from_capacity``)."""
        name = f.req_str(p, "name_to_id")
        figures = [cv.capacity(p.get(k), k) for k in ("total", "free", "provisioned", "allocated", "virtual_free")]
        words = {word for _, word in figures if word is not None}
        unbounded = "infinite" if "infinite" in words else "unknown" if words else None
        (total, _), (free, _), (provisioned, _), (allocated, _), (virtual_free, _) = figures
        return ev.StoragePool(
            name, cv.pool_version(p.get("reported_at")), total, free, provisioned, allocated, virtual_free,
            total_volumes=None, unbounded=unbounded,
        )
