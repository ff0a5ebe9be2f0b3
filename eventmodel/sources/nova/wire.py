"""Nova's notifications on the wire: oslo.messaging envelopes unwrapped, the envelope
fields checked (:func:`parse_message`). Accepted forms:

- the oslo.messaging 2.0 wire envelope ``{"oslo.version": "2.0", "oslo.message": "<JSON>"}``
  as bytes, str or dict;
- the inner message dict (``message_id``, ``publisher_id``, ``event_type``, ``priority``,
  ``payload``, ``timestamp``, ``_context_*``...);
- a bare sample (``event_type``, ``payload``, ``priority``, ``publisher_id``) as in Nova's
  ``doc/notification_samples``. Without ``message_id`` the id is derived from a hash of
  the message's canonical JSON (sorted keys), so the same message always gets the same
  event ids; without ``timestamp`` the notification time is ``recorded_at``.

Envelope errors (not JSON, not an object, wrong ``oslo.version``, no ``event_type`` or
``publisher_id``, a bad ``timestamp``) raise :class:`~eventmodel.sources.nova.values.Invalid`.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timezone
from typing import Any

import attrs
import msgspec

from eventmodel.sources.nova.values import Invalid, kind, time_of

_SECOND = 1_000_000


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


_json_decode = msgspec.json.decode


def _decode_json(data: bytes | str, what: str) -> Any:
    try:
        return _json_decode(data)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise Invalid(f"{what} is not valid JSON: {exc}") from None


def unwrap(raw: object) -> dict[str, Any]:
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
        raise Invalid(f"message is a JSON {kind(outer)}, not an object")
    if "oslo.message" in outer or "oslo.version" in outer:
        version = outer.get("oslo.version")
        if version != "2.0":
            raise Invalid(f"unsupported oslo.version {version!r} (expected '2.0')")
        inner = outer.get("oslo.message")
        if type(inner) is str:
            inner = _decode_json(inner, "oslo.message")
        elif type(inner) is not dict:
            raise Invalid(f"oslo.message is {kind(inner)}, not a JSON string")
        if type(inner) is not dict:
            raise Invalid(f"oslo.message is a JSON {kind(inner)}, not an object")
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
            "missing event_type" if event_type is None else f"event_type is {kind(event_type)}, not a string"
        )
    publisher = body.get("publisher_id")
    if type(publisher) is not str or not publisher:
        raise Invalid(
            f"{event_type}: missing publisher_id"
            if publisher is None
            else f"{event_type}: publisher_id must be a non-empty string, got {kind(publisher)}"
        )
    message_id = body.get("message_id")
    filled = None
    if message_id is None:
        filled = dict(body)
        message_id = filled["message_id"] = _derived_message_id(body)
    elif type(message_id) is not str or not message_id:
        raise Invalid(f"{event_type}: message_id must be a non-empty string, got {kind(message_id)}")
    occurred_at = time_of(body.get("timestamp"), f"{event_type}: timestamp")
    timestamped = occurred_at is not None
    if occurred_at is None:
        occurred_at = recorded_at
        if filled is None:
            filled = dict(body)
        filled["timestamp"] = nova_time(recorded_at)
    return Message(filled if filled is not None else body, event_type, sys.intern(publisher), message_id,
                   occurred_at, timestamped)


def guess_event_type(raw: object) -> str:
    """Best effort, for the reason of a dead message: its event_type if one can be seen."""
    try:
        body = unwrap(raw)
    except Exception:  # noqa: BLE001
        return ""
    et = body.get("event_type")
    return et if type(et) is str else ""
