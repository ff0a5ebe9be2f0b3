"""Watcher's own element classes, built cheaply from values the view already knows are right.

Importing this module imports Watcher; :mod:`projections.watcher.view` imports it only
when a view is first used, so the core never needs Watcher installed.

:class:`Instance` and :class:`ComputeNode` are subclasses of Watcher's
``element.Instance`` / ``element.ComputeNode`` with the same class names, so
``isinstance`` checks, ``obj_name()``, ``as_xml_element()`` (the XML tag) and
``obj_to_primitive()`` are Watcher's. Two things differ, both measured in
``tests/bench/bench_watcher.py`` and described in ADR 0013:

- :meth:`of` stores already-typed values directly instead of running every field's
  coercion (the values come from :func:`projections.watcher.view.instance_values` /
  :func:`~projections.watcher.view.node_values`, which produce exactly what the
  coercion would; a unit test holds them to it);
- field reads go straight to the stored value (Watcher's getter makes three calls);
- ``==`` answers at once when both sides are the same object or have different
  uuids (then Watcher's field-by-field comparison is certainly False too), and
  falls back to Watcher's comparison otherwise: same result, without serialising
  both objects for every ``node in list``.
"""

from __future__ import annotations

from typing import Any

import networkx  # a dependency of Watcher
from oslo_versionedobjects.base import VersionedObject as _VersionedObject
from watcher.common import exception
from watcher.decision_engine.model import element as _element

#: Watcher's own classes, for isinstance checks and exact conversion
WatcherInstance = _element.Instance
WatcherComputeNode = _element.ComputeNode
NetworkXError = networkx.NetworkXError
exceptions = exception

_MISSING = object()


def _fast_eq(self: Any, other: Any) -> Any:
    if self is other:
        return True
    if type(other) is type(self):  # ours: uuids set or not, a difference means different primitives
        if self.__dict__.get("_obj_uuid", _MISSING) != other.__dict__.get("_obj_uuid", _MISSING):
            return False
    elif isinstance(other, _VersionedObject):
        mine = self.__dict__.get("_obj_uuid", _MISSING)
        theirs = other.__dict__.get("_obj_uuid", _MISSING)
        if mine is not _MISSING and theirs is not _MISSING and mine != theirs:
            return False
    return _element.Instance.__eq__(self, other)


def _fast_ne(self: Any, other: Any) -> Any:
    eq = _fast_eq(self, other)
    return eq if eq is NotImplemented else not eq


def _build(cls: type, values: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    d = obj.__dict__
    d["_context"] = None
    # Watcher's == compares list(changed fields): the set must iterate as the one Watcher's
    # constructor fills one field at a time (set(values) presizes and can iterate otherwise)
    changed: set[str] = set()
    d["_changed_fields"] = changed
    for k, v in values.items():
        changed.add(k)
        d["_obj_" + k] = v
    return obj


def _fast_fields(cls: type) -> type:
    """Give ``cls`` a direct getter for every field (Watcher's reads through three calls);
    the setter stays Watcher's (coercion, change tracking), an unset field still raises."""
    for name in cls.fields:
        parent = getattr(cls.__mro__[1], name)
        key = "_obj_" + name

        def get(self: Any, key: str = key, parent: property = parent) -> Any:
            try:
                return self.__dict__[key]
            except KeyError:
                return parent.fget(self)

        setattr(cls, name, property(get, parent.fset, doc=parent.__doc__))
    return cls


@_fast_fields
class Instance(_element.Instance):
    """Watcher's ``Instance`` (same class name and fields), built by :meth:`of`."""

    __eq__ = _fast_eq
    __ne__ = _fast_ne
    __hash__ = _element.Instance.__hash__  # identity, as Watcher's

    @classmethod
    def of(cls, values: dict[str, Any]) -> Instance:
        """An element holding ``values`` (typed as Watcher's fields coerce them), all marked changed
        as Watcher's constructor marks them."""
        return _build(cls, values)


@_fast_fields
class ComputeNode(_element.ComputeNode):
    """Watcher's ``ComputeNode`` (same class name and fields), built by :meth:`of`."""

    __eq__ = _fast_eq
    __ne__ = _fast_ne
    __hash__ = _element.ComputeNode.__hash__

    @classmethod
    def of(cls, values: dict[str, Any]) -> ComputeNode:
        """See :meth:`Instance.of`."""
        return _build(cls, values)


INSTANCE_FIELDS: tuple[str, ...] = tuple(_element.Instance.fields)
NODE_FIELDS: tuple[str, ...] = tuple(_element.ComputeNode.fields)


def is_instance(obj: object) -> bool:
    return isinstance(obj, _element.Instance)


def is_node(obj: object) -> bool:
    return isinstance(obj, _element.ComputeNode)
