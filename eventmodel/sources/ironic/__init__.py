"""Ironic's versioned notifications → bare metal node events, by role:

- :mod:`.values` — Ironic's value rules (version, ``extra``);
- :mod:`.table` — which notification becomes which event (ADR 0018);
- :mod:`.normalizer` — :class:`IronicNormalizer`.
"""

from __future__ import annotations

from eventmodel.sources.ironic.normalizer import IronicNormalizer
from eventmodel.sources.ironic.table import EVENT_CLASS, HANDLERS, IRRELEVANT_TYPES, irrelevance, is_ironic_publisher, knows

__all__ = ["EVENT_CLASS", "HANDLERS", "IRRELEVANT_TYPES", "IronicNormalizer", "irrelevance", "is_ironic_publisher",
           "knows"]
