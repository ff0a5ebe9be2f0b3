"""Plugins: other publishers' notifications (Cinder, Ironic, a site's own) as typed events.

A plugin is a distribution that declares an entry point in the group
``eventmodel.plugins``::

    [project.entry-points."eventmodel.plugins"]
    cinder = "eventmodel_cinder:plugin"

The entry point names either an object or a zero-argument callable returning one
(a class, a factory function). The object has:

- ``name``: str — shown in logs (the entry point's name is used when missing);
- ``event_types``: list of payload classes — attrs classes with ``TYPE``, ``VERSION``,
  ``KIND`` and ``EFFECT`` (and ``ENTITY`` when the entity state is not in the attribute
  named after the kind), the :class:`eventmodel.events.Payload` protocol; they are registered
  with the process's :class:`~eventmodel.codec.EventTypes`, so the codec encodes and
  decodes them and the log stores them like built-in events;
- ``normalizers``: list of objects with ``accepts(message: dict) -> bool`` and
  ``normalize(message: dict, *, recorded_at: int) -> Outcome``;
- optionally ``upcasters``: ``{type name: {from_version: fn}}`` for older schemas.

``message`` is the inner notification dict (the oslo envelope already removed). It
always has a string ``event_type``, ``publisher_id``, ``message_id`` and ``timestamp``
(filled in for bare messages), so a normalizer can build its envelopes with
:func:`eventmodel.events.envelope` using :func:`occurred_at` for the time.

:class:`CompositeNormalizer` routes each message: Nova's own types from a ``nova-*``
publisher go to :class:`~eventmodel.sources.nova.NovaNormalizer`; anything else goes
to the first plugin normalizer that accepts it (so a site's plugin may take over a
built-in's types); then to the built-in normalizer that claims it — Cinder's types
from a Cinder publisher (:class:`~eventmodel.sources.cinder.CinderNormalizer`),
``baremetal.*`` from an ``ironic-*`` publisher
(:class:`~eventmodel.sources.ironic.IronicNormalizer`); what nobody takes goes back to
Nova's normalizer, which calls it irrelevant. A plugin that fails to load is logged with its entry point's name and
skipped. A plugin normalizer that raises, returns something other than an Outcome, or
emits an event type nobody registered makes that message dead (its bytes are kept in
the dead letters, so nothing is lost when the plugin is fixed); it never crashes the
caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import attrs

from eventmodel.clock import parse_time
from eventmodel.codec import EventTypes, Upcaster
from eventmodel.events import Envelope
from eventmodel.log.base import DeadLetter
from eventmodel.sources.cinder import CinderNormalizer
from eventmodel.sources.ironic import IronicNormalizer
from eventmodel.sources.nova import (
    DEAD,
    DEFAULT_SERVICE_DOWN_TIME,
    EVENTS,
    IRRELEVANT,
    Message,
    MessageNormalizer,
    NovaNormalizer,
    Outcome,
    dead,
    dead_letter,
)
from eventmodel.sources.nova.normalizer import TableNormalizer

__all__ = [
    "GROUP",
    "CompositeNormalizer",
    "Plugin",
    "PluginFailure",
    "PluginNormalizer",
    "load_plugins",
    "occurred_at",
]

GROUP = "eventmodel.plugins"

_log = logging.getLogger(__name__)


@runtime_checkable
class PluginNormalizer(Protocol):
    def accepts(self, message: dict) -> bool: ...

    def normalize(self, message: dict, *, recorded_at: int) -> Outcome: ...


@attrs.frozen(slots=True)
class Plugin:
    """A loaded plugin."""

    name: str
    event_types: tuple[type, ...]
    normalizers: tuple[PluginNormalizer, ...]
    entry_point: str = ""  # "name = module:attr"
    distribution: str = ""  # "name version" of the distribution that declared it


@attrs.frozen(slots=True)
class PluginFailure:
    """A plugin that was not loaded, and why."""

    entry_point: str
    reason: str


def occurred_at(message: dict) -> int:
    """The notification time of a message handed to a plugin normalizer, in µs."""
    return parse_time(message["timestamp"])


def _describe(ep: metadata.EntryPoint) -> str:
    return f"{ep.name} = {ep.value}"


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ""
    try:
        return f"{dist.metadata['Name']} {dist.version}"
    except Exception:  # noqa: BLE001
        return ""


def _check(obj: Any, ep_name: str) -> tuple[str, tuple[type, ...], tuple[Any, ...], dict[str, dict[int, Upcaster]]]:
    """Validate a loaded plugin object; raise TypeError/ValueError with what is wrong."""
    if not hasattr(obj, "normalizers") and not hasattr(obj, "event_types") and callable(obj):
        obj = obj()
    name = getattr(obj, "name", None) or ep_name
    if not isinstance(name, str):
        raise TypeError(f"name is {type(name).__name__}, not a string")
    event_types = tuple(getattr(obj, "event_types", ()) or ())
    for cls in event_types:
        if not isinstance(cls, type) or not attrs.has(cls) or not isinstance(getattr(cls, "TYPE", None), str):
            raise TypeError(f"event type {cls!r} is not an attrs class with a TYPE")
        if not isinstance(getattr(cls, "VERSION", 1), int):
            raise TypeError(f"event type {cls.TYPE!r} has a VERSION that is not an int")
    normalizers = tuple(getattr(obj, "normalizers", ()) or ())
    for n in normalizers:
        if not callable(getattr(n, "accepts", None)) or not callable(getattr(n, "normalize", None)):
            raise TypeError(f"normalizer {n!r} lacks accepts(message) or normalize(message, *, recorded_at)")
    upcasters = getattr(obj, "upcasters", None) or {}
    if not isinstance(upcasters, dict):
        raise TypeError("upcasters is not a dict {type name: {from_version: fn}}")
    if not event_types and not normalizers:
        raise ValueError("declares neither event_types nor normalizers")
    return name, event_types, normalizers, upcasters


def load_plugins(
    types: EventTypes,
    *,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    failures: list[PluginFailure] | None = None,
) -> list[Plugin]:
    """Load every plugin of the ``eventmodel.plugins`` group and register its event types.

    A plugin that cannot be imported, is malformed, or whose event types clash with
    types already registered is logged (with its entry point's name), appended to
    ``failures`` when given, and skipped: its types are not registered at all.
    """
    if entry_points is None:
        try:
            entry_points = metadata.entry_points(group=GROUP)
        except Exception as exc:  # noqa: BLE001 - a broken installed distribution
            _log.error("cannot list %s entry points: %s", GROUP, exc)
            entry_points = ()
    plugins: list[Plugin] = []
    seen: set[str] = set()
    for ep in entry_points:
        where = _describe(ep)
        if ep.name in seen:
            _fail(failures, where, "another plugin with this entry point name is already loaded")
            continue
        try:
            obj = ep.load()
            name, event_types, normalizers, upcasters = _check(obj, ep.name)
            for cls in event_types:
                existing = types.get(cls.TYPE)
                if existing is not None and existing is not cls:
                    raise ValueError(f"event type {cls.TYPE!r} is already registered by {existing.__module__}.{existing.__qualname__}")
            names = {cls.TYPE for cls in event_types}
            if len(names) != len(event_types):
                raise ValueError("declares one event type name twice")
            unknown = set(upcasters) - names
            if unknown:
                raise ValueError(f"upcasters for types the plugin does not declare: {sorted(unknown)}")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never stop the process
            _fail(failures, where, f"{type(exc).__name__}: {exc}")
            continue
        for cls in event_types:
            types.register(cls, upcasters.get(cls.TYPE))
        seen.add(ep.name)
        plugins.append(Plugin(name, event_types, normalizers, where, _distribution(ep)))
        _log.info("plugin %s loaded (%s): types %s", name, where, sorted(names) or "-")
    return plugins


def _fail(failures: list[PluginFailure] | None, where: str, reason: str) -> None:
    _log.error("plugin %s skipped: %s", where, reason)
    if failures is not None:
        failures.append(PluginFailure(where, reason))


class CompositeNormalizer(MessageNormalizer):
    """Nova's normalizer, the plugins' and the other built-in services' (Cinder,
    Ironic) behind the same interface: the default normalizer of the bridge and of
    ``eventmodel normalize``."""

    def __init__(
        self,
        plugins: Sequence[Plugin] = (),
        *,
        types: EventTypes | None = None,
        nova: NovaNormalizer | None = None,
        builtins: Sequence[TableNormalizer] | None = None,
    ) -> None:
        """``builtins``: the other services' normalizers, asked (``claims``) after the
        plugins; default Cinder's and Ironic's."""
        self.types = types or (nova.types if nova is not None else EventTypes.builtin())
        self.nova = nova or NovaNormalizer(self.types)
        self.plugins = tuple(plugins)
        self.builtins: tuple[TableNormalizer, ...] = (
            (CinderNormalizer(self.types), IronicNormalizer(self.types)) if builtins is None else tuple(builtins)
        )
        self._routes: list[tuple[Plugin, Any]] = [(p, n) for p in self.plugins for n in p.normalizers]

    @classmethod
    def from_entry_points(
        cls, types: EventTypes | None = None, *, service_down_time: float = DEFAULT_SERVICE_DOWN_TIME
    ) -> CompositeNormalizer:
        """Load the installed plugins into ``types`` (default: the built-in ones);
        ``service_down_time`` as in :class:`NovaNormalizer`."""
        types = types or EventTypes.builtin()
        nova = NovaNormalizer(types, service_down_time=service_down_time)
        return cls(load_plugins(types), types=types, nova=nova)

    def normalize_message(self, msg: Message, *, recorded_at: int) -> Outcome:
        if self.nova.claims(msg):
            return self.nova.normalize_message(msg, recorded_at=recorded_at)
        for plugin, normalizer in self._routes:
            try:
                accepted = normalizer.accepts(msg.body)
            except Exception as exc:  # noqa: BLE001
                _log.exception("plugin %s: accepts() failed on %s", plugin.name, msg.event_type)
                return dead(f"plugin {plugin.name}: accepts() failed: {type(exc).__name__}: {exc}", msg.event_type)
            if accepted:
                return self._run(plugin, normalizer, msg, recorded_at)
        for builtin in self.builtins:
            if builtin.claims(msg):
                return builtin.normalize_message(msg, recorded_at=recorded_at)
        return self.nova.normalize_message(msg, recorded_at=recorded_at)

    def _run(self, plugin: Plugin, normalizer: Any, msg: Message, recorded_at: int) -> Outcome:
        et = msg.event_type
        try:
            out = normalizer.normalize(msg.body, recorded_at=recorded_at)
        except Exception as exc:  # noqa: BLE001
            _log.exception("plugin %s: normalize() failed on %s", plugin.name, et)
            return dead(f"plugin {plugin.name}: normalize() failed: {type(exc).__name__}: {exc}", et)
        if not isinstance(out, Outcome):
            return dead(f"plugin {plugin.name} returned {type(out).__name__}, not an Outcome", et)
        if out.status not in (EVENTS, IRRELEVANT, DEAD):
            return dead(f"plugin {plugin.name} returned status {out.status!r}", et)
        for env in out.events:
            if not isinstance(env, Envelope):
                return dead(f"plugin {plugin.name} returned {type(env).__name__}, not an Envelope", et)
            if self.types.get(env.type) is None:
                return dead(f"plugin {plugin.name} emitted unregistered event type {env.type!r}", et)
        if out.status == EVENTS and not out.events:
            return Outcome(IRRELEVANT, (), out.reason or f"plugin {plugin.name} produced no events", out.event_type or et)
        if out.status != EVENTS and not out.reason:
            out = attrs.evolve(out, reason=f"plugin {plugin.name} gave no reason")
        if not out.event_type:
            out = attrs.evolve(out, event_type=et)
        return out

    def dead_letter(self, raw: bytes, outcome: Outcome, *, source: str = "amqp") -> DeadLetter:
        return dead_letter(raw, outcome, source=source)

