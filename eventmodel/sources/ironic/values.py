"""Ironic's value rules for its versioned node notifications (ADR 0018). Times are
Nova's rule (:mod:`eventmodel.sources.nova.values`): Ironic's ``updated_at`` is a
database column of whole seconds, as Nova's.

- **Version**: ``updated_at``, else ``created_at``, else the lowest; floored to the
  second.
- **extra**: a JSON object kept verbatim (operators put ``compute_node_id`` and
  their own keys there); null is empty.
"""

from __future__ import annotations

import math
from typing import Any

from eventmodel.sources.nova.values import Invalid, kind

#: where a node's version comes from, in order
NODE_VERSION_FIELDS = ("updated_at", "created_at")


def extra(value: object) -> dict[str, Any]:
    """A node's ``extra``: an object, null read as empty; what it holds must be JSON
    the log stores as it is (no NaN or infinity: a decoded dict may hold them)."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise Invalid(f"field 'extra' must be an object or null, got {kind(value)}")
    _check_json(value, 0)
    return value


def _check_json(value: object, depth: int) -> None:
    if depth > 64:
        raise Invalid("field 'extra' is nested more than 64 levels deep")
    if type(value) is float and not math.isfinite(value):
        raise Invalid(f"field 'extra' holds {value}, which JSON cannot carry")
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise Invalid(f"field 'extra' has a key that is {kind(k)}, not a string")
            _check_json(v, depth + 1)
    elif type(value) is list:
        for v in value:
            _check_json(v, depth + 1)
    elif value is not None and type(value) not in (str, int, float, bool):
        raise Invalid(f"field 'extra' holds {kind(value)}, which JSON cannot carry")
