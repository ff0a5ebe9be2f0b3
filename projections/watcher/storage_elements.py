"""Building Watcher's storage and Ironic elements cheaply (imports Watcher).

- :func:`build`: an element of Watcher's own class holding values already typed as its
  fields coerce them (the view's value functions produce exactly that; a unit test
  compares every element with the one Watcher's constructor builds, ``==`` included),
  without running each field's coercion: about 50 µs less per volume, which is most of
  a first ``get_all_volumes()`` at 20,000 volumes (``tests/bench/bench_watcher_storage.py``).
  The changed-field set is filled in the order Watcher's constructor fills it, so
  ``obj_to_primitive`` (Watcher's ``==``) is the same.
- :class:`Volume`: Watcher's ``Volume`` for a volume whose project the model does not
  know. Watcher's ``project_id`` field refuses ``""`` and None, and its storage audit scope
  reads every volume's ``project_id``: such a volume holds ``""``, set past the field's
  coercion; this subclass (same class name, fields, XML tag and checks) keeps it so
  through ``copy.deepcopy``, which re-coerces every field in oslo.versionedobjects.
"""

from __future__ import annotations

from typing import Any

from oslo_versionedobjects import fields as _ovo_fields
from watcher.decision_engine.model import element as _element

from projections.watcher.elements import fill


def build(cls: type, values: dict[str, Any]) -> Any:
    """An element of ``cls`` holding ``values`` (typed as its fields coerce them), every
    field marked changed in the order Watcher's constructor marks them (given ones, then
    defaults of the others)."""
    obj = cls.__new__(cls)
    d = obj.__dict__
    fill(d, values)
    changed = d["_changed_fields"]
    for name, field in cls.fields.items():
        if name not in values and not field.nullable and field.default != _ovo_fields.UnspecifiedDefault:
            changed.add(name)
            d["_obj_" + name] = field.default
    return obj


class Volume(_element.Volume):
    """Watcher's ``Volume`` whose ``project_id`` is ``""`` (unknown)."""

    @classmethod
    def of(cls, values: dict[str, Any]) -> Volume:
        """A volume of ``values`` (without ``project_id``) whose project is ``""``."""
        el = build(cls, values)
        el._obj_project_id = ""
        return el

    def __deepcopy__(self, memo: dict[int, Any]) -> Volume:
        blank = self.__dict__.get("_obj_project_id") == ""
        if blank:
            del self.__dict__["_obj_project_id"]
        try:
            new = super().__deepcopy__(memo)
        finally:
            if blank:
                self._obj_project_id = ""
        if blank:
            new._obj_project_id = ""
        return new
