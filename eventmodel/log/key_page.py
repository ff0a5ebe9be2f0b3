"""A page of one key's records read from the log's end: what the backends'
``read_key_back(key, before, limit)`` answers (SQLite walks its key index backwards;
Kafka scans the key's partition backwards within a budget)."""

from __future__ import annotations

import attrs

from eventmodel.log.base import Record


@attrs.frozen(slots=True)
class KeyPage:
    """Records of one key, newest first; ``before`` continues (the offset to read before),
    None when the key's first record is in the page."""

    records: list[Record]
    before: int | None
