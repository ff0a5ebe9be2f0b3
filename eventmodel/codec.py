"""Encoding of envelopes to bytes and back: msgspec JSON and cattrs, with upcasting.

Wire form (one JSON object per record)::

    {"event_id": ..., "type": "instance.migrated", "schema": 1, "key": ..., "source": ...,
     "occurred_at": <µs>, "recorded_at": <µs>, "payload": {...}}

A record whose ``schema`` is older than the class's ``VERSION`` is passed through the
registered upcasters (one per version step) before it is structured. A record of a
type this process does not know decodes to :class:`~eventmodel.events.Unknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import msgspec
from cattrs.preconf.msgspec import make_converter

from eventmodel.errors import Error
from eventmodel import events as ev

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DecodeError(Error, ValueError):
    """A record's bytes are not a valid envelope."""


class EventTypes:
    """The payload classes a process knows, by type name, and their upcasters."""

    def __init__(self, classes: Iterable[type] = ()) -> None:
        self._classes: dict[str, type] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in classes:
            self.register(cls)

    @classmethod
    def builtin(cls) -> EventTypes:
        """The built-in vocabulary, with the upcasters of its old schema versions."""
        types = cls(ev.BUILTIN_PAYLOADS)
        # instance.migrated v0 (before "method" existed) had a "live" boolean.
        types.add_upcaster(ev.InstanceMigrated.TYPE, 0, _migrated_v0_to_v1)
        return types

    def register(self, cls: type, upcasters: dict[int, Upcaster] | None = None) -> None:
        if not attrs.has(cls) or not getattr(cls, "TYPE", None):
            raise TypeError(f"{cls!r} is not an attrs event class with a TYPE")
        existing = self._classes.get(cls.TYPE)
        if existing is not None and existing is not cls:
            raise ValueError(f"event type {cls.TYPE!r} is already registered by {existing!r}")
        self._classes[cls.TYPE] = cls
        for version, fn in (upcasters or {}).items():
            self.add_upcaster(cls.TYPE, version, fn)

    def add_upcaster(self, type_name: str, from_version: int, fn: Upcaster) -> None:
        """``fn`` turns a payload dict of ``from_version`` into ``from_version + 1``."""
        self._upcasters[(type_name, from_version)] = fn

    def get(self, type_name: str) -> type | None:
        return self._classes.get(type_name)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def upcast(self, type_name: str, schema: int, data: dict[str, Any]) -> dict[str, Any]:
        cls = self._classes[type_name]
        while schema < cls.VERSION:
            fn = self._upcasters.get((type_name, schema))
            if fn is None:
                raise DecodeError(f"no upcaster for {type_name} schema {schema}")
            data = fn(data)
            schema += 1
        if schema > cls.VERSION:
            raise DecodeError(
                f"{type_name} schema {schema} is newer than this process knows ({cls.VERSION})"
            )
        return data


def _migrated_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    live = data.pop("live", True)
    data.setdefault("method", "live" if live else "cold")
    return data


class _Head(msgspec.Struct):
    """The envelope with its payload left undecoded until the type is known."""

    event_id: str
    type: str
    key: str
    source: str
    occurred_at: int
    recorded_at: int
    payload: msgspec.Raw
    schema: int = 1


class Codec:
    """Turns envelopes into bytes and back.

    The hot path decodes JSON straight into the attrs classes with msgspec (typed
    decoders, one per payload type, built once); the cattrs converter handles the
    dict forms used by upcasting, checkpoints and exports.
    """

    def __init__(self, types: EventTypes | None = None) -> None:
        self.types = types or EventTypes.builtin()
        self.converter = make_converter()
        self._encoder = msgspec.json.Encoder()
        self._head = msgspec.json.Decoder(_Head)
        self._decoders: dict[type, msgspec.json.Decoder] = {}
        #: one Flavor object per distinct flavor read (a cloud has tens): instances
        #: decoded by this codec share it, ~170 bytes less per instance in a model
        self._flavors: dict[tuple, ev.Flavor] = {}
        #: the type name's bytes as stored -> (typed decoder, schema version, carries an
        #: instance); names are never re-registered to another class, so hits stay true
        self._fast: dict[bytes, tuple[msgspec.json.Decoder, int, bool]] = {}

    # -- payloads --------------------------------------------------------
    def unstructure_payload(self, payload: object) -> dict[str, Any]:
        if isinstance(payload, ev.Unknown):
            return payload.data
        return self.converter.unstructure(payload)

    def structure_payload(self, type_name: str, schema: int, data: dict[str, Any]) -> object:
        cls = self.types.get(type_name)
        if cls is None:
            return ev.Unknown(type=type_name, data=data)
        if schema != cls.VERSION:
            data = self.types.upcast(type_name, schema, data)
        return self.converter.structure(data, cls)

    # -- envelopes -------------------------------------------------------
    def to_dict(self, env: ev.Envelope) -> dict[str, Any]:
        return {
            "event_id": env.event_id,
            "type": env.type,
            "schema": env.schema,
            "key": env.key,
            "source": env.source,
            "occurred_at": env.occurred_at,
            "recorded_at": env.recorded_at,
            "payload": self.unstructure_payload(env.payload),
        }

    def from_dict(self, d: dict[str, Any]) -> ev.Envelope:
        try:
            type_name = d["type"]
            schema = d.get("schema", 1)
            payload = self.structure_payload(type_name, schema, d["payload"])
            return ev.Envelope(
                d["event_id"], type_name, d["key"], d["source"], d["occurred_at"],
                d["recorded_at"], payload, getattr(type(payload), "VERSION", schema),
            )
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any structure failure is a decode error
            raise DecodeError(f"bad envelope: {type(exc).__name__}: {exc}") from exc

    def encode(self, env: ev.Envelope) -> bytes:
        if isinstance(env.payload, ev.Unknown):
            return self._encoder.encode(self.to_dict(env))
        return self._encoder.encode(env)

    def _typed(self, cls: type) -> msgspec.json.Decoder:
        """A decoder for whole envelopes of one payload class (one parsing pass)."""
        dec = self._decoders.get(cls)
        if dec is None:
            dec = self._decoders[cls] = msgspec.json.Decoder(ev.Envelope[cls])  # type: ignore[index]
        return dec

    def decode(self, data: bytes) -> ev.Envelope:
        """bytes → Envelope; raises DecodeError with the reason when they are not one."""
        # Fast path: find the type name without parsing, then parse once into the
        # payload class. Falls back to the two-step path for anything unusual.
        i = data.find(b'"type":"')
        if i >= 0:
            tag = data[i + 8: data.find(b'"', i + 8)]
            fast = self._fast.get(tag)
            if fast is None:
                fast = self._fast_for(tag)
            if fast is not None:
                dec, version, has_instance = fast
                try:
                    e = dec.decode(data)
                except msgspec.DecodeError:
                    pass  # other schema version, or bad: the slow path says which
                else:
                    if e.schema == version:
                        if has_instance:
                            self._share_flavor(e.payload.instance)
                        return e
        return self._decode_slow(data)

    def _fast_for(self, tag: bytes) -> tuple[msgspec.json.Decoder, int, bool] | None:
        cls = self.types.get(tag.decode("utf-8", "replace"))
        if cls is None:
            return None  # not cached: a plugin may register it later
        has_instance = attrs.has(cls) and any(  # an Instance whose flavor may be shared
            a.name == "instance" and a.type in ("Instance", ev.Instance) for a in attrs.fields(cls))
        fast = self._fast[tag] = (self._typed(cls), cls.VERSION, has_instance)
        return fast

    def _share_flavor(self, inst: ev.Instance) -> None:
        """Point a freshly decoded instance (no one else holds it yet) at the shared Flavor
        equal to its own (found by its fields, then its extra specs compared)."""
        fl = inst.flavor
        k = (fl.name, fl.vcpus, fl.memory_mb, fl.root_gb, fl.ephemeral_gb, fl.swap_mb)
        shared = self._flavors.get(k)
        if shared is None:
            if len(self._flavors) < 10_000:  # a bound against a log of endless flavors
                self._flavors[k] = fl
        elif shared is not fl and shared.extra_specs == fl.extra_specs:
            object.__setattr__(inst, "flavor", shared)

    def type_of(self, data: bytes) -> str:
        """The record's type name, found without parsing (``""`` if not found)."""
        i = data.find(b'"type":"')
        if i < 0:
            return ""
        return data[i + 8: data.find(b'"', i + 8)].decode("utf-8", "replace")

    def key_of(self, data: bytes) -> str:
        """The record's entity key, parsing the envelope but not its payload."""
        try:
            return self._head.decode(data).key
        except msgspec.DecodeError as exc:
            raise DecodeError(f"bad envelope: {exc}") from exc

    def _decode_slow(self, data: bytes) -> ev.Envelope:
        try:
            h = self._head.decode(data)
        except msgspec.DecodeError as exc:
            raise DecodeError(f"bad envelope: {exc}") from exc
        cls = self.types.get(h.type)
        try:
            if cls is not None and h.schema == cls.VERSION:
                payload = msgspec.json.decode(h.payload, type=cls)
            else:
                raw = msgspec.json.decode(h.payload)
                if not isinstance(raw, dict):
                    raise DecodeError(f"{h.type} payload is not an object")
                payload = self.structure_payload(h.type, h.schema, raw)
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DecodeError(f"bad {h.type} payload: {exc}") from exc
        schema = cls.VERSION if cls is not None else h.schema
        return ev.Envelope(h.event_id, h.type, h.key, h.source, h.occurred_at, h.recorded_at, payload, schema)


def payload_type(payload: object) -> str:
    return getattr(payload, "TYPE")


def payload_schema(payload: object) -> int:
    return getattr(payload, "VERSION", 1)
