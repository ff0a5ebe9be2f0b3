"""Reading the fields of a versioned notification's payload (``nova_object.data``):
each reader returns the field or raises :class:`~eventmodel.sources.nova.values.Invalid`
naming it. Fields a reader is not asked for are ignored, so older and newer payload
versions read alike."""

from __future__ import annotations

import sys
from typing import Any

from eventmodel.sources.nova.values import Invalid, kind

_intern = sys.intern


def req_str(d: dict, key: str, where: str = "") -> str:
    """A required non-empty string."""
    v = d.get(key)
    if type(v) is str and v:
        return v
    if v is None:
        raise Invalid(f"missing required field {where}{key!r}")
    raise Invalid(f"field {where}{key!r} must be a non-empty string, got {kind(v)}")


def opt_str(d: dict, key: str, where: str = "") -> str | None:
    """An optional string, interned (hosts, states, zones repeat)."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) is str:
        return _intern(v)
    raise Invalid(f"field {where}{key!r} must be a string or null, got {kind(v)}")


def opt_bool(d: dict, key: str, default: bool) -> bool:
    v = d.get(key)
    if v is None:
        return default
    if v is True or v is False:
        return v
    raise Invalid(f"field {key!r} must be a boolean, got {kind(v)}")


def count(d: dict, key: str, where: str = "") -> int:
    """A required non-negative integer."""
    v = d.get(key)
    if type(v) is int and v >= 0:
        return v
    if v is None:
        raise Invalid(f"missing required field {where}{key!r}")
    raise Invalid(f"field {where}{key!r} must be a non-negative integer, got {kind(v)} {str(v)[:32]}")


def plain_str(d: dict, key: str) -> str:
    """A string, null read as ``''``."""
    v = d.get(key)
    if v is None:
        return ""
    if type(v) is str:
        return v
    raise Invalid(f"field {key!r} must be a string or null, got {kind(v)}")


def str_or_none(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is None or type(v) is str:
        return v
    raise Invalid(f"field {key!r} must be a string or null, got {kind(v)}")


def nova_data(obj: Any, where: str) -> dict:
    """The ``nova_object.data`` of a versioned object (an unwrapped dict is accepted too)."""
    if type(obj) is not dict:
        raise Invalid(f"missing required field {where!r}" if obj is None else f"field {where!r} is {kind(obj)}, not an object")
    data = obj.get("nova_object.data", obj)
    if type(data) is not dict:
        raise Invalid(f"field '{where}.nova_object.data' is {kind(data)}, not an object")
    return data


def object_name(body: dict) -> str:
    """`` (InstanceActionPayload 1.8)``: the payload's object name and version, for reasons."""
    payload = body.get("payload")
    if type(payload) is dict:
        name, version = payload.get("nova_object.name"), payload.get("nova_object.version")
        if type(name) is str:
            return f" ({name} {version})" if type(version) is str else f" ({name})"
    return ""


def versioned_data(payload: Any, namespace: str) -> dict:
    """The ``<namespace>.data`` of a versioned notification's payload (``nova_object``,
    ``ironic_object``); Invalid when it has none."""
    if type(payload) is not dict:
        raise Invalid("missing payload" if payload is None else f"payload is {kind(payload)}, not an object")
    data = payload.get(f"{namespace}.data")
    if type(data) is not dict:
        raise Invalid(
            f"payload has no {namespace}.data (not a versioned notification)"
            if data is None
            else f"payload {namespace}.data is {kind(data)}, not an object"
        )
    return data
