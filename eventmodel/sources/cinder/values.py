"""Cinder's value rules, written once: what a value of Cinder's unversioned
notifications means (ADR 0018). Where the rule is Nova's (times, zones, string maps)
it is :mod:`eventmodel.sources.nova.values`' function, called from here.

- **Volume version**: the time Cinder sent the notification (its ``timestamp``,
  Cinder's clock, taken just after the save that set the row's ``updated_at``),
  floored to the second as ``updated_at`` is stored; the lowest when the message has
  none. A volume payload has no ``updated_at``, and its ``created_at`` is not a version
  (every change would tie with the creation). ADR 0018 says why this one exception to
  ADR 0004's rule is safe.
- **Pool version**: ``reported_at``, the time the backend's report was taken (the
  cinder-volume's clock), in µs as sent — not floored: it is not a database column of
  whole seconds, and the scheduler's pool listing shows the same instant to the µs as
  the pool's ``timestamp``. No ``reported_at``: the lowest.
- **Capacity**: a number (JSON number or its text) in GB; ``infinite`` and ``unknown``
  (any case) and null are no number: None, with the word kept (``unknown`` for null).
- **Metadata**: Cinder's list of ``{"key", "value"}`` rows (the form its payload has)
  or a map (the API's, and Watcher's test files) → a string map (Nova's rule).
- **Attachments**: the payload lists every attachment row that is not ``detached``;
  the model keeps, as the API lists them, those whose ``attach_status`` is
  ``attached`` (a row without ``attach_status`` — Watcher's test files — counts as
  attached) and that name a server (``instance_uuid``; Watcher's form ``server_id``).
  The attachment id is the row's ``id`` (Watcher's ``attachment_id``), ``''`` if none.
- **Text that may be empty**: ``''`` and null mean the same (no host, no snapshot, no
  type): None.
- **Multi-attach, bootable**: not payload keys. Multi-attach is read from the volume
  row joined to an attachment row, else False; bootable is whether the payload has
  ``glance_metadata`` (Cinder adds it only for a volume with image metadata; Watcher's rule).
- **Replays**: a payload with ``audit_period_beginning`` was sent by Cinder's usage
  audit (``cinder-volume-usage-audit``), long after the fact, with the volume's row as
  it is when the audit runs.

A value that cannot be read raises :class:`~eventmodel.sources.nova.values.Invalid`,
its message naming the field.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from eventmodel import events as ev
from eventmodel.sources.nova.values import Invalid, kind, str_map, time_of, version

_intern = sys.intern

def volume_version(notified_at: int | None) -> int:
    """A volume record's version from a notification: the time Cinder sent it (µs,
    Cinder's clock), floored to the second; the lowest when it has none."""
    return version(notified_at)

#: the payload key that marks a usage-audit replay (``volume.exists`` and the replayed
#: ``create.*``/``delete.*`` of ``cinder-volume-usage-audit``)
AUDIT_KEY = "audit_period_beginning"
#: the words a backend reports instead of a capacity
UNBOUNDED_WORDS = ("infinite", "unknown")
#: attachment statuses the model keeps (the API lists only these)
ATTACHED = "attached"


def is_replay(payload: dict[str, Any]) -> bool:
    """True when ``payload`` comes from Cinder's usage audit, not from the change itself."""
    return AUDIT_KEY in payload


def text_or_none(value: object, what: str) -> str | None:
    """A string where ``''`` and null both mean none."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return _intern(value)
    raise Invalid(f"field {what!r} must be a string or null, got {kind(value)}")


def size_gb(value: object) -> int:
    """A volume's size in GB: a non-negative integer (its text is accepted: Watcher's
    test files write ``"40"``)."""
    if type(value) is int and value >= 0:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    if value is None:
        raise Invalid("missing required field 'size'")
    raise Invalid(f"field 'size' must be a non-negative integer, got {kind(value)} {str(value)[:32]}")


def capacity(value: object, what: str) -> tuple[float | None, str | None]:
    """A capacity in GB and, when it is no number, the word the backend said instead."""
    if value is None:
        return None, "unknown"
    if type(value) is str:
        word = value.strip().lower()
        if word in UNBOUNDED_WORDS:
            return None, word
        try:
            number = float(word)
        except ValueError:
            raise Invalid(f"field {what!r} must be a number, 'infinite' or 'unknown', got {value[:32]!r}") from None
    elif type(value) in (int, float):
        number = float(value)
    else:
        raise Invalid(f"field {what!r} must be a number, 'infinite' or 'unknown', got {kind(value)}")
    if not math.isfinite(number):
        raise Invalid(f"field {what!r} is not a finite number: {str(value)[:32]}")
    return number, None


def pool_version(reported_at: object) -> int:
    """A pool's version: ``reported_at`` in µs, else the lowest."""
    us = time_of(reported_at, "field 'reported_at'")
    return ev.LOWEST_VERSION if us is None else us


def metadata(value: object) -> dict[str, str]:
    """Volume metadata: Cinder's ``[{"key": k, "value": v}, ...]`` or a map."""
    if type(value) is not list:
        return str_map(value, "'metadata'")
    rows: dict[str, Any] = {}
    for row in value:
        if type(row) is not dict or type(row.get("key")) is not str:
            raise Invalid(f"field 'metadata' must list {{key, value}} objects, got {kind(row)} {str(row)[:48]}")
        rows[row["key"]] = row.get("value")
    return str_map(rows, "'metadata'")


def attachments(value: object) -> tuple[ev.VolumeAttachment, ...]:
    """The attachments the model keeps, from the payload's ``volume_attachment`` rows."""
    if value is None:
        return ()
    if type(value) is not list:
        raise Invalid(f"field 'volume_attachment' must be a list or null, got {kind(value)}")
    out = []
    for row in value:
        if type(row) is not dict:
            raise Invalid(f"field 'volume_attachment' must list objects, got {kind(row)}")
        status = row.get("attach_status", ATTACHED)
        if status != ATTACHED:
            if status is not None and type(status) is not str:
                raise Invalid(f"field 'volume_attachment.attach_status' must be a string, got {kind(status)}")
            continue
        server = text_or_none(row.get("instance_uuid", row.get("server_id")), "volume_attachment.instance_uuid")
        if server is None:
            continue  # attached to a host, not to a server
        att_id = text_or_none(row.get("id", row.get("attachment_id")), "volume_attachment.id")
        out.append(ev.VolumeAttachment(server, att_id or ""))
    return tuple(out)


def created_at(value: object) -> int | None:
    """``created_at`` in µs (Cinder writes ``…+00:00``, the API ``….000000``: parsed, never compared as text)."""
    return time_of(value, "field 'created_at'")


def multiattach(value: object) -> bool:
    """Whether the volume is multi-attach, as far as the payload says: the payload has
    no such key, but each attachment row carries its joined ``volume`` row; without
    one (no attachment) it reads False and the sync says (ADR 0018)."""
    if type(value) is not list:
        return False
    for row in value:
        joined = row.get("volume") if type(row) is dict else None
        if type(joined) is dict and type(joined.get("multiattach")) is bool:
            return joined["multiattach"]
    return False
