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
  both objects for every ``node in list``;
- :meth:`Instance.lazy` makes an element that holds only its uuid and how to get its
  other values: they are filled in on the first access to anything else (a field, a
  setter, ``obj_to_primitive``, ``==`` between equal uuids, a deep copy), so listing
  50,000 instances costs one small object each and a strategy pays for the fields of
  the instances it reads.
"""

from __future__ import annotations

from collections.abc import Callable
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
_getattribute = object.__getattribute__


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


def fill(d: dict[str, Any], values: dict[str, Any]) -> None:
    """Set ``values`` as an element's fields in ``d`` (its ``__dict__``), each marked changed."""
    d["_context"] = None
    # Watcher's == compares list(changed fields): the set must iterate as the one Watcher's
    # constructor fills one field at a time (set(values) presizes and can iterate otherwise)
    changed: set[str] = set()
    d["_changed_fields"] = changed
    for k, v in values.items():
        changed.add(k)
        d["_obj_" + k] = v


def _build(cls: type, values: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    fill(obj.__dict__, values)
    return obj




# A lazy element holds two attributes, set one by one so that Python keeps them in the
# object itself (no ``__dict__`` is made until something asks for it): one object for
# the garbage collector to track per element, not two. ``_lazy`` is None on the class.


def _shell(cls: type, uuid: str, load: Callable[[str], dict[str, Any]]) -> Any:
    obj = cls.__new__(cls)
    obj._obj_uuid = uuid
    obj._lazy = load
    return obj


def loaded(obj: Any) -> bool:
    """Whether ``obj``'s values are filled in (always, but for a :meth:`Instance.lazy` one not
    read yet; Watcher's own elements, e.g. added by a strategy, always)."""
    return getattr(obj, "_lazy", None) is None


def _load(self: Any) -> bool:
    """Fill in a lazy element's values; False when there is nothing to fill."""
    lazy = self._lazy
    if lazy is None:
        return False
    d = self.__dict__
    del d["_lazy"]
    fill(d, lazy(d["_obj_uuid"]))
    return True


def _getattr(self: Any, name: str) -> Any:
    # only called when normal lookup fails: a lazy element fills itself in and looks again
    if _load(self):
        return getattr(self, name)
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _deepcopy(self: Any, memo: dict[int, Any]) -> Any:
    if self._lazy is not None:  # a copy of a lazy element is lazy (same source, same values when read)
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        memo[id(self)] = new
        return new
    return _VersionedObject.__deepcopy__(self, memo)


def _fast_fields(cls: type) -> type:
    """Give ``cls`` a direct getter for every field (Watcher's reads through three calls);
    the setter stays Watcher's (coercion, change tracking), an unset field still raises."""
    for name in cls.fields:
        parent = getattr(cls.__mro__[1], name)
        key = "_obj_" + name

        def get(self: Any, key: str = key, parent: property = parent) -> Any:
            try:  # (not self.__dict__[key]: that would make a lazy element's __dict__)
                return _getattribute(self, key)
            except AttributeError:  # unset, or a lazy element's not filled in yet: Watcher's getter
                return parent.fget(self)

        def put(self: Any, value: Any, parent: property = parent) -> None:
            _load(self)  # a lazy element's values first, so that they cannot overwrite this one
            parent.fset(self, value)

        setattr(cls, name, property(get, put, doc=parent.__doc__))
    return cls


@_fast_fields
class Instance(_element.Instance):
    """Watcher's ``Instance`` (same class name and fields), built by :meth:`of`."""

    __eq__ = _fast_eq
    __ne__ = _fast_ne
    __hash__ = _element.Instance.__hash__  # identity, as Watcher's
    __getattr__ = _getattr
    __deepcopy__ = _deepcopy
    _lazy: Callable[[str], dict[str, Any]] | None = None

    @classmethod
    def of(cls, values: dict[str, Any]) -> Instance:
        """An element holding ``values`` (typed as Watcher's fields coerce them), all marked changed
        as Watcher's constructor marks them."""
        return _build(cls, values)

    @classmethod
    def lazy(cls, uuid: str, load: Callable[[str], dict[str, Any]]) -> Instance:
        """An element with ``uuid`` whose other values are ``load(uuid)`` (as :meth:`of`
        takes them, ``uuid`` included), filled in on first use."""
        return _shell(cls, uuid, load)


@_fast_fields
class ComputeNode(_element.ComputeNode):
    """Watcher's ``ComputeNode`` (same class name and fields), built by :meth:`of`."""

    __eq__ = _fast_eq
    __ne__ = _fast_ne
    __hash__ = _element.ComputeNode.__hash__
    __getattr__ = _getattr
    __deepcopy__ = _deepcopy
    _lazy: Callable[[str], dict[str, Any]] | None = None

    @classmethod
    def of(cls, values: dict[str, Any]) -> ComputeNode:
        """See :meth:`Instance.of`."""
        return _build(cls, values)

    @classmethod
    def lazy(cls, uuid: str, hostname: str, load: Callable[[str], dict[str, Any]]) -> ComputeNode:
        """A node with ``uuid`` and ``hostname`` (what an audit scope reads of every node)
        whose values are ``load(uuid)``, filled in on first use (see :meth:`Instance.lazy`)."""
        obj = _shell(cls, uuid, load)
        obj._obj_hostname = hostname
        return obj


INSTANCE_FIELDS: tuple[str, ...] = tuple(_element.Instance.fields)
NODE_FIELDS: tuple[str, ...] = tuple(_element.ComputeNode.fields)


def is_instance(obj: object) -> bool:
    return isinstance(obj, _element.Instance)


def is_node(obj: object) -> bool:
    return isinstance(obj, _element.ComputeNode)
