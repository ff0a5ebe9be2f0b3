"""Nova versioned notifications → typed events, by role:

- :mod:`.wire` — oslo.messaging envelopes unwrapped, envelope fields checked;
- :mod:`.values` — Nova's value rules (version, zone, string maps, liveness), shared
  with the sync reader (ADR 0004);
- :mod:`.fields` — reading a payload's fields;
- :mod:`.table` — which notification becomes which event, and why the rest are
  irrelevant (drawn in ``ADR/0017-nova-decision-table.md``);
- :mod:`.normalizer` — :class:`NovaNormalizer` and the :class:`Outcome` it returns.

Dead letters (redaction, bounding) are with the log's: :mod:`eventmodel.log.dead_letters`.
The names below are the package's surface; import them from here.
"""

from __future__ import annotations

from eventmodel.log.dead_letters import redact_credentials
from eventmodel.sources.nova.normalizer import (
    DEAD, EVENTS, IRRELEVANT, MessageNormalizer, NovaNormalizer, Outcome, Status, check_service_down_time, dead,
    dead_letter, irrelevant,
)
from eventmodel.sources.nova.table import (
    EVENT_CLASS, HANDLERS, IRRELEVANT_TYPES, Handler, irrelevance, is_nova_publisher, knows,
)
from eventmodel.sources.nova.values import (
    DEFAULT_SERVICE_DOWN_TIME, INSTANCE_VERSION_FIELDS, SERVICE_HEARTBEAT_FIELDS, SERVICE_VERSION_FIELDS, Invalid,
)
from eventmodel.sources.nova.wire import Message, guess_event_type, nova_time, parse_message, unwrap

__all__ = [
    "DEAD", "DEFAULT_SERVICE_DOWN_TIME", "EVENTS", "EVENT_CLASS", "HANDLERS", "INSTANCE_VERSION_FIELDS", "IRRELEVANT",
    "IRRELEVANT_TYPES", "SERVICE_HEARTBEAT_FIELDS", "SERVICE_VERSION_FIELDS", "Handler", "Invalid", "Message",
    "MessageNormalizer", "NovaNormalizer", "Outcome", "Status", "check_service_down_time", "dead", "dead_letter",
    "guess_event_type", "irrelevance", "irrelevant", "is_nova_publisher", "knows", "nova_time", "parse_message",
    "redact_credentials", "unwrap",
]
