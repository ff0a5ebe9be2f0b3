"""Nova's value rules, written once: what a Nova value means, whichever path it came by.

The notification normalizer (:mod:`eventmodel.sources.nova.normalizer`) and the sync
reader (:mod:`eventmodel.sources.openstack`) both call these, so ADR 0004's central
rule cannot drift between them. Pure functions of Nova's own fields; no clock of ours.

- **Version**: the first time present of ``updated_at``, ``created_at`` (and, for a
  service notification, ``last_seen_up``), in µs floored to the whole second (Nova's
  ``updated_at`` has one-second resolution); :data:`~eventmodel.events.LOWEST_VERSION`
  when there is none. A null or ``''`` time is absent.
- **Zone**: ``''`` (the API's form for an offloaded instance) and null (the
  notifications') are both None.
- **String map** (metadata, extra specs): null is empty, a null value ``''``, a number
  or boolean its text; anything else cannot be read.
- **Liveness**: a service is up when not forced down and its last heartbeat is within
  ``service_down_time`` of Nova's "now", either side (servicegroup DB driver).

A value that cannot be read raises :class:`Invalid` (a ``ValueError``), its message
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventmodel.clock import floor_second, parse_time
from eventmodel.errors import SourceError
from eventmodel.events import LOWEST_VERSION

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


class Invalid(SourceError, ValueError):
    """The notification cannot become events; the message is the reason."""


def kind(value: object) -> str:
    """The JSON kind of ``value`` for a message: ``null``, ``str``, ``int``..."""
    return "null" if value is None else type(value).__name__


def time_of(stamp: object, what: str) -> int | None:
    """A time field in µs; None when null or ``''``; Invalid naming ``what`` otherwise."""
    if stamp is None or stamp == "":
        return None
    if type(stamp) is not str:
        raise Invalid(f"{what} must be a string or null, got {kind(stamp)}")
    try:
        return parse_time(stamp)
    except ValueError:
        raise Invalid(f"{what} is not a time: {stamp[:64]!r}") from None


def version(*times: int | None) -> int:
    """The first of ``times`` (µs) that is known, floored to the whole second; the
    lowest version when none is. Never a clock of ours nor a notification's timestamp."""
    for us in times:
        if us is not None:
            return floor_second(us)
    return LOWEST_VERSION


def first_time(data: Mapping[str, Any], fields: tuple[str, ...]) -> int | None:
    """The first of ``fields`` that holds a time in ``data``, in µs; None when none does."""
    for name in fields:
        us = time_of(data.get(name), f"field {name!r}")
        if us is not None:
            return us
    return None


def version_of(data: Mapping[str, Any], fields: tuple[str, ...]) -> int:
    """:func:`version` of the first time ``data`` holds under ``fields``."""
    return version(first_time(data, fields))


def zone(value: str | None) -> str | None:
    """An availability zone as the model holds it: ``''`` and null are both None."""
    return value or None


def str_map(value: object, what: str) -> dict[str, str]:
    """A string→string map (instance metadata, flavor extra specs, aggregate metadata):
    null is empty; a null value ``''`` and a number or boolean its text. The decoded
    dict itself is returned when it already is one (it belongs to nobody else)."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise Invalid(f"field {what} must be an object or null, got {kind(value)}")
    if all(type(x) is str for x in value.values()):
        return value
    out = {}
    for k, x in value.items():
        if type(x) is str:
            out[k] = x
        elif x is None or isinstance(x, (int, float, bool)):
            out[k] = "" if x is None else str(x)
        else:
            raise Invalid(f"field {what}: value of {k!r} is {kind(x)}, not a string")
    return out


def service_up(forced_down: bool, now: int | None, heartbeat: int | None, down_us: int) -> bool:
    """Nova's ``service_is_up``: not forced down, and the last heartbeat within
    ``down_us`` of ``now`` (either side, as Nova's ``abs(elapsed)``); ``not
    forced_down`` when ``now`` (the notification's own timestamp) or the heartbeat is
    unknown, because no clock of ours may decide."""
    if forced_down:
        return False
    if now is None or heartbeat is None:
        return True
    return abs(now - heartbeat) <= down_us
