"""The Nova normalizer: a notification in any accepted form (:mod:`.wire`) becomes an
:class:`Outcome` — one typed envelope (the types in :mod:`.table`), ``irrelevant``
with the reason, or ``dead`` with the reason (the caller dead-letters the raw bytes).
It never raises on bad input.

Payload errors are only looked for in the types that become events: a missing or
mistyped required field (instance ``uuid`` and ``state``, flavor
``vcpus``/``memory_mb``/``root_gb``/``ephemeral_gb``, service ``host``/``binary``) is
dead, and the reason names the field and the event type. Optional fields an older
payload version lacks take their defaults (``locked`` False,
``locked_reason``/``availability_zone``/``power_state``/``task_state`` None, flavor
``swap`` 0 and ``name`` ""). Versions, zones, maps and liveness follow Nova's value
rules (:mod:`.values`, ADR 0004).
"""

from __future__ import annotations

import math
import sys
from typing import Any, ClassVar, Final, Literal

import attrs

from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.codec import EventTypes
from eventmodel.errors import ConfigError
from eventmodel.log.dead_letters import DeadLetter, letter_of
from eventmodel.sources.nova import fields as f
from eventmodel.sources.nova import values as v
from eventmodel.sources.nova.table import TABLE, is_nova_publisher
from eventmodel.sources.nova.values import Invalid
from eventmodel.sources.nova.wire import Message, guess_event_type, parse_message
from eventmodel.sources.tables import DecisionTable

EVENTS: Final = "events"
IRRELEVANT: Final = "irrelevant"
DEAD: Final = "dead"

#: what became of a notification
Status = Literal["events", "irrelevant", "dead"]

_intern = sys.intern
_SECOND = 1_000_000


@attrs.frozen(slots=True)
class Outcome:
    """What became of one notification."""

    status: Status
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


def dead_letter(raw: bytes | str | dict, outcome: Outcome, *, source: str = "amqp") -> DeadLetter:
    """A dead-letter record for ``raw`` (credentials redacted, bounded in size) with the
    outcome's reason, prefixed by its event type."""
    reason = outcome.reason or f"status {outcome.status}"
    if outcome.event_type and not reason.startswith(outcome.event_type):
        reason = f"{outcome.event_type}: {reason}"
    return letter_of(raw, reason, source, now_us())


def event_outcome(event: ev.Payload, msg: Message, recorded_at: int) -> Outcome:
    """The outcome of a notification that became the one event ``event``: its envelope
    keyed by the entity, its id derived from the publisher and the message id."""
    entity = ev.entity_of(event)
    env = ev.Envelope(
        ev.event_id(msg.publisher_id, msg.message_id, 0),
        event.TYPE,
        entity.key if entity is not None else "",
        msg.publisher_id,
        msg.occurred_at,
        recorded_at,
        event,
        event.VERSION,
    )
    return Outcome(EVENTS, (env,), "", msg.event_type)


def check_service_down_time(seconds: object) -> float:
    """``seconds`` if it is a finite number of seconds > 0; ConfigError (a ValueError) otherwise."""
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and math.isfinite(seconds) \
            and seconds > 0:
        return seconds
    raise ConfigError(f"service_down_time must be a number of seconds > 0, got {seconds!r}")


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


class TableNormalizer(MessageNormalizer):
    """A normalizer driven by a :class:`~eventmodel.sources.tables.DecisionTable`: a
    handled type's payload data (:meth:`data`) goes to its handler, whose event becomes
    the outcome; an unhandled type is irrelevant with the table's reason. A payload that
    cannot be read is dead, never raised. Subclasses set ``table`` and say which
    publishers are theirs."""

    table: ClassVar[DecisionTable]

    def __init__(self, types: EventTypes | None = None) -> None:
        self.types = types or EventTypes.builtin()

    def is_publisher(self, publisher_id: str) -> bool:
        """True when ``publisher_id`` is the service's own."""
        raise NotImplementedError

    def claims(self, msg: Message) -> bool:
        """True when this normalizer should have ``msg``: the service's type from the service."""
        return self.table.knows(msg.event_type) and self.is_publisher(msg.publisher_id)

    def data(self, msg: Message) -> dict:
        """The payload data the handlers read; Invalid when there is none."""
        raise NotImplementedError

    def skip(self, data: dict, msg: Message) -> str | None:
        """Why a handled type is irrelevant after all, before it is built (None: it is not)."""
        return None

    def invalid_reason(self, exc: Invalid, msg: Message) -> str:
        return f"{msg.event_type}: {exc}"

    def none_reason(self, msg: Message) -> str:
        """Why a handler that built nothing made the message irrelevant."""
        return "the handler built no event"

    def normalize_message(self, msg: Message, *, recorded_at: int) -> Outcome:
        event_type = msg.event_type
        handler = self.table.handlers.get(event_type)
        if handler is None:
            return irrelevant(self.table.irrelevance(event_type) or "", event_type)
        try:
            data = self.data(msg)
            why = self.skip(data, msg)
            if why is not None:
                return irrelevant(why, event_type)
            event = handler(self, data, msg)
        except Invalid as exc:
            return dead(self.invalid_reason(exc, msg), event_type)
        except Exception as exc:  # noqa: BLE001 - never crash the bridge on input
            return dead(f"{event_type}: unreadable payload: {type(exc).__name__}: {exc}", event_type)
        if event is None:
            return irrelevant(self.none_reason(msg), event_type)
        return event_outcome(event, msg, recorded_at)

    def dead_letter(self, raw: bytes, outcome: Outcome, *, source: str = "amqp") -> DeadLetter:
        return dead_letter(raw, outcome, source=source)


class NovaNormalizer(TableNormalizer):
    """Nova versioned notifications → typed event envelopes. Stateless apart from caches."""

    table = TABLE
    #: compute service binaries whose notifications become events
    COMPUTE_BINARIES = frozenset({"nova-compute"})

    def __init__(
        self, types: EventTypes | None = None, *, service_down_time: float = v.DEFAULT_SERVICE_DOWN_TIME
    ) -> None:
        """``service_down_time``: Nova's ``[DEFAULT] service_down_time`` in seconds (> 0):
        how long after its last heartbeat a service still counts as up
        (:func:`~eventmodel.sources.nova.values.service_up`)."""
        super().__init__(types)
        self.service_down_time = check_service_down_time(service_down_time)
        self._down_us = round(service_down_time * _SECOND)
        self._flavors: dict[tuple, ev.Flavor] = {}

    # -- the table's hooks -----------------------------------------------

    def is_publisher(self, publisher_id: str) -> bool:
        return is_nova_publisher(publisher_id)

    def data(self, msg: Message) -> dict:
        return _payload_data(msg)

    def invalid_reason(self, exc: Invalid, msg: Message) -> str:
        return f"{msg.event_type}: {exc}{f.object_name(msg.body)}"

    def none_reason(self, msg: Message) -> str:
        binary = (msg.body.get("payload") or {}).get("nova_object.data", {}).get("binary")
        return f"service binary {binary!r} is not a compute service"

    # -- payload pieces --------------------------------------------------
    def flavor(self, obj: Any, where: str = "flavor") -> ev.Flavor:
        data = f.nova_data(obj, where)
        w = where + "."
        vcpus = f.count(data, "vcpus", w)
        memory_mb = f.count(data, "memory_mb", w)
        root_gb = f.count(data, "root_gb", w)
        ephemeral_gb = f.count(data, "ephemeral_gb", w)
        swap = data.get("swap")
        swap_mb = 0 if swap is None or swap == "" else f.count(data, "swap", w)
        name = data.get("name")
        if name is None:
            name = data.get("flavorid")
            if type(name) is not str:
                name = ""
        elif type(name) is not str:
            raise Invalid(f"field {w}'name' must be a string, got {v.kind(name)}")
        specs = v.str_map(data.get("extra_specs"), f"{w}'extra_specs'")
        key = (name, vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb, tuple(sorted(specs.items())) if specs else ())
        flavor = self._flavors.get(key)
        if flavor is None:
            if len(self._flavors) >= 4096:
                self._flavors.clear()
            flavor = self._flavors[key] = ev.Flavor(_intern(name), vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb,
                                                    specs)
        return flavor

    def instance(self, data: dict) -> ev.Instance:
        uuid = f.req_str(data, "uuid")
        vm_state = _intern(f.req_str(data, "state"))
        flavor = self.flavor(data.get("flavor"))
        locked = data.get("locked")
        if locked is None:
            locked = False
        elif locked is not True and locked is not False:
            raise Invalid(f"field 'locked' must be a boolean, got {v.kind(locked)}")
        return ev.Instance(
            uuid,
            v.version_of(data, v.INSTANCE_VERSION_FIELDS),
            f.opt_str(data, "host"),
            f.opt_str(data, "node"),
            vm_state,
            flavor,
            f.opt_str(data, "power_state"),
            f.opt_str(data, "task_state"),
            f.opt_str(data, "tenant_id") or "",
            f.opt_str(data, "user_id") or "",
            f.plain_str(data, "display_name"),
            locked,
            f.str_or_none(data, "locked_reason"),
            v.zone(f.opt_str(data, "availability_zone")),
            v.str_map(data.get("metadata"), "'metadata'"),
            v.time_of(data.get("created_at"), "field 'created_at'"),
        )

    def service(self, data: dict, now: int | None = None) -> ev.ComputeService | None:
        """The service state, or None when it is not a compute service.

        ``now`` is the notification's own timestamp in µs (Nova's clock), None when it
        had none; ``up`` follows :func:`~eventmodel.sources.nova.values.service_up`.
        A null or ``''`` ``availability_zone`` is None: not known (ServiceStatusPayload's
        zone is not loaded when Nova notifies; the fold keeps the zone it knows).
        """
        binary = f.req_str(data, "binary")
        host = f.req_str(data, "host")
        forced_down = f.opt_bool(data, "forced_down", False)
        disabled = f.opt_bool(data, "disabled", False)
        if binary not in self.COMPUTE_BINARIES:
            return None
        # the heartbeat is read only when it can decide (as Nova's driver reads it)
        heartbeat = None if forced_down or now is None else v.first_time(data, v.SERVICE_HEARTBEAT_FIELDS)
        return ev.ComputeService(
            _intern(host),
            _intern(binary),
            v.version_of(data, v.SERVICE_VERSION_FIELDS),
            disabled,
            f.str_or_none(data, "disabled_reason"),
            forced_down,
            v.service_up(forced_down, now, heartbeat, self._down_us),
            f.opt_str(data, "uuid"),
            v.zone(f.opt_str(data, "availability_zone")),
        )

    def aggregate(self, data: dict) -> ev.Aggregate:
        """A host aggregate from Nova's AggregatePayload (which carries no time: lowest version)."""
        uuid = f.req_str(data, "uuid")
        agg_id = data.get("id")
        if agg_id is not None and type(agg_id) is not int:
            raise Invalid(f"field 'id' must be an integer or null, got {v.kind(agg_id)}")
        hosts = data.get("hosts")
        if hosts is None:
            hosts = []
        if type(hosts) is not list or any(type(h) is not str for h in hosts):
            raise Invalid("field 'hosts' must be a list of strings or null")
        metadata = v.str_map(data.get("metadata"), "'metadata'")
        return ev.Aggregate(
            uuid, ev.LOWEST_VERSION, agg_id, f.plain_str(data, "name"),
            v.zone(metadata.get("availability_zone")),
            tuple(sorted(_intern(h) for h in hosts)), metadata,
        )


def _payload_data(msg: Message) -> dict:
    """The ``nova_object.data`` of a message's payload; Invalid when it has none."""
    return f.versioned_data(msg.body.get("payload"), "nova_object")
