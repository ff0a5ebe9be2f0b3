"""Batches: the messages received since the last acknowledgement, already normalized,
and the dead letters made of them (bounded in size)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import attrs

from eventmodel.clock import now_us
from eventmodel.events import Envelope
from eventmodel.log.base import DeadLetter

#: why a message became a dead letter, as few labels as a dashboard needs (the full
#: reason is on the dead letter itself)
UNREADABLE = "unreadable_body"  # the AMQP body could not be read as bytes
REFUSED_BY_NORMALIZER = "normalizer"  # the normalizer said it is malformed / not a notification
NORMALIZER_ERROR = "normalizer_error"  # the normalizer raised (a bug)
UNENCODABLE = "unencodable"  # its events cannot be encoded for the log
REFUSED_BY_LOG = "refused_by_log"  # the log refused its records for good (too large, invalid)
OTHER = "other"
DEAD_LETTER_KINDS: tuple[str, ...] = (
    UNREADABLE, REFUSED_BY_NORMALIZER, NORMALIZER_ERROR, UNENCODABLE, REFUSED_BY_LOG, OTHER,
)


@attrs.define
class Batch:
    """Messages received since the last acknowledgement, already normalized."""

    opened: float  # monotonic time the first message arrived
    tags: list[int] = attrs.field(factory=list)
    events: list[Envelope] = attrs.field(factory=list)
    letters: list[DeadLetter] = attrs.field(factory=list)
    event_messages: int = 0
    irrelevant: int = 0
    events_stored: bool = False
    letters_stored: bool = False
    #: the log refused some dead letters; ``letters`` now holds them without their bytes
    letters_stripped: bool = False
    #: per message with events: (raw bytes, dead-letter source, its events), to set
    #: aside a message whose events the log cannot encode (see BatchWriter)
    origins: list[tuple[bytes, str, tuple[Envelope, ...]]] = attrs.field(factory=list)
    #: dead-lettered messages of this batch by kind (see DEAD_LETTER_KINDS)
    dead_kinds: Counter[str] = attrs.field(factory=Counter)

    def __len__(self) -> int:
        return len(self.tags)

    def add_events(self, raw: bytes, source: str, events: Sequence[Envelope]) -> None:
        self.events.extend(events)
        self.event_messages += 1
        self.origins.append((raw, source, tuple(events)))

    def add_letter(self, letter: DeadLetter, kind: str) -> None:
        """A message of this batch becomes a dead letter of this kind."""
        self.letters.append(letter)
        self.dead_kinds[kind] += 1

    def letters_by_kind(self) -> dict[str, int]:
        """Dead letters by kind; letters added without one count as ``other``."""
        kinds = dict(self.dead_kinds)
        rest = len(self.letters) - sum(kinds.values())
        if rest > 0 and not self.letters_stripped:
            kinds[OTHER] = kinds.get(OTHER, 0) + rest
        return kinds

    def set_aside(self, is_bad: Callable[[Envelope], str | None]) -> int:
        """Turn messages with an event ``is_bad`` objects to into dead letters; returns
        how many. ``is_bad`` returns the reason, or None for a good event."""
        reasons = [next((r for r in map(is_bad, events) if r), None) for _, _, events in self.origins]
        return self._move({i: r for i, r in enumerate(reasons) if r is not None}, UNENCODABLE)

    def reject(self, rejected: dict[int, str]) -> int:
        """The log refused the events at these indexes of ``events`` for good: their
        messages become dead letters (the other events were stored). Returns how many."""
        owner: list[int] = []
        for i, (_, _, events) in enumerate(self.origins):
            owner.extend([i] * len(events))
        reasons: dict[int, str] = {}
        for index, reason in sorted(rejected.items()):
            if 0 <= index < len(owner):
                reasons.setdefault(owner[index], f"refused by the log: {reason}")
        return self._move(reasons, REFUSED_BY_LOG)

    def _move(self, reasons: dict[int, str], kind: str) -> int:
        """Dead-letter the messages of ``origins`` at these indexes, with these reasons."""
        if not reasons:
            return 0
        keep: list[tuple[bytes, str, tuple[Envelope, ...]]] = []
        for i, (raw, source, events) in enumerate(self.origins):
            if i in reasons:
                self.add_letter(DeadLetter.of(raw, reasons[i], source, now_us()), kind)
            else:
                keep.append((raw, source, events))
        self.origins = keep
        self.events = [e for _, _, evs in keep for e in evs]
        self.event_messages -= len(reasons)
        return len(reasons)

    @property
    def last_tag(self) -> int:
        return self.tags[-1]


def _size(letter: DeadLetter) -> int:
    return letter.size if letter.size >= 0 else len(letter.raw)


def _stripped(letter: DeadLetter, why: str) -> DeadLetter:
    """``letter`` without its bytes (their size and hash kept), for a log that refused it."""
    import hashlib

    sha = letter.sha256 or (hashlib.sha256(letter.raw).hexdigest() if letter.size < 0 else "")
    return attrs.evolve(letter, raw=b"", size=_size(letter), sha256=sha,
                        reason=f"{letter.reason} (bytes not kept: the log refused them: {why})")

