"""Cinder's unversioned notifications → typed events, by role (as :mod:`eventmodel.sources.nova`):

- :mod:`.values` — Cinder's value rules (versions, capacities, metadata, attachments);
- :mod:`.table` — which notification becomes which event, and why the rest are
  irrelevant (drawn in ``ADR/0018-storage-and-baremetal.md``);
- :mod:`.normalizer` — :class:`CinderNormalizer`.

The wire forms, :class:`~eventmodel.sources.nova.Outcome` and dead letters are
shared with Nova's normalizer.
"""

from __future__ import annotations

from eventmodel.sources.cinder.normalizer import CinderNormalizer
from eventmodel.sources.cinder.table import (
    EVENT_CLASS, HANDLERS, IRRELEVANT_TYPES, VOLUME_EVENT_TYPES, irrelevance, is_cinder_publisher, knows,
)

__all__ = [
    "EVENT_CLASS", "HANDLERS", "IRRELEVANT_TYPES", "VOLUME_EVENT_TYPES", "CinderNormalizer", "irrelevance",
    "is_cinder_publisher", "knows",
]
