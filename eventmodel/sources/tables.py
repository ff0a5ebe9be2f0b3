"""Decision tables, the shape every notification normalizer shares: which event types
become which event (a :class:`Handler` each), which are irrelevant and why (exact
types, then families by prefix). Nova's, Cinder's and Ironic's tables are instances
(``sources/<service>/table.py``), drawn in ADR 0017 and ADR 0018.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

#: builds the payload from the normalizer, the payload data and the message; None when
#: the notification is irrelevant after all (e.g. another service binary)
Build = Callable[[Any, dict, Any], Any]


@attrs.frozen(slots=True)
class Handler:
    """How one event type is handled: the event class it produces (another only where
    ``build`` says so, e.g. an update that reports a deletion) and the builder."""

    event: type
    build: Build

    def __call__(self, normalizer: Any, data: dict, msg: Any) -> Any:
        return self.build(normalizer, data, msg)


def entity_handler(cls: type, entity: str, *, with_message: bool = False, **extra: Any) -> Handler:
    """The handler whose event is ``cls(normalizer.<entity>(data), **extra)``: the
    normalizer's method named ``entity`` reads the entity from the payload data (and
    from the message itself, e.g. its timestamp, ``with_message``)."""

    if with_message:
        def build(normalizer: Any, data: dict, msg: Any) -> Any:
            return cls(getattr(normalizer, entity)(data, msg), **extra)
    else:
        def build(normalizer: Any, data: dict, msg: Any) -> Any:
            return cls(getattr(normalizer, entity)(data), **extra)

    return Handler(cls, build)


@attrs.frozen(slots=True)
class Phases:
    """The reasons for a family's types by their last part (``<family><action>.<phase>``):
    ``start`` and ``error`` are formatted with ``action``; ``other`` is the rest's."""

    start: str
    error: str
    other: str

    def __call__(self, rest: str) -> str:
        action, _, phase = rest.rpartition(".")
        if phase == "start":
            return self.start.format(action=action)
        if phase == "error":
            return self.error.format(action=action)
        return self.other


@attrs.frozen(slots=True)
class DecisionTable:
    """Handled types, irrelevant exact types, then families (prefix → a reason, or
    :class:`Phases` given the part after the prefix), first match wins."""

    handlers: Mapping[str, Handler]
    irrelevant: Mapping[str, str]
    families: tuple[tuple[str, str | Phases], ...]
    _prefixes: tuple[str, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_prefixes", tuple(p for p, _ in self.families))

    @property
    def event_class(self) -> dict[str, type]:
        """The event class each handled type produces, from its handler."""
        return {event_type: h.event for event_type, h in self.handlers.items()}

    def irrelevance(self, event_type: str) -> str | None:
        """Why ``event_type`` is irrelevant, or None when it becomes events."""
        if event_type in self.handlers:
            return None
        reason = self.irrelevant.get(event_type)
        if reason is not None:
            return reason
        for prefix, rule in self.families:
            if event_type.startswith(prefix):
                return rule if isinstance(rule, str) else rule(event_type[len(prefix):])
        return f"unknown event type {event_type!r}"

    def knows(self, event_type: str) -> bool:
        """True when ``event_type`` is handled, listed, or in one of the families."""
        return event_type in self.handlers or event_type in self.irrelevant or event_type.startswith(self._prefixes)
