"""Ironic's value rules for its versioned node notifications (ADR 0018). Times are
Nova's rule (:mod:`eventmodel.sources.nova.values`): Ironic's ``updated_at`` is a
database column of whole seconds, as Nova's.

- **Version**: ``updated_at``, else ``created_at``, else the lowest; floored to the
  second.
- **extra**: a JSON object kept verbatim (operators put ``compute_node_id`` and
  their own keys there); null is empty.
"""

from __future__ import annotations

from typing import Any

from eventmodel.sources.nova.values import Invalid, kind

#: where a node's version comes from, in order
NODE_VERSION_FIELDS = ("updated_at", "created_at")


def extra(value: object) -> dict[str, Any]:
    """A node's ``extra``: an object, null read as empty."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise Invalid(f"field 'extra' must be an object or null, got {kind(value)}")
    return value
