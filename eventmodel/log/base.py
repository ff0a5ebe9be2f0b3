"""The log contract every backend implements, and the values it speaks in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import attrs
import msgspec

from eventmodel.errors import Error
from eventmodel.codec import Codec, DecodeError
from eventmodel.events import Envelope, Unknown

_log = logging.getLogger(__name__)


class LogError(Error, RuntimeError):
    """The log could not do what was asked (unreachable, refused, misconfigured).

    Raised by ``append`` it means *transient*: some records of the batch may have been
    stored, none is refused for good, and the same batch may be appended again (the
    fold recognises the copies by ``event_id``)."""


class RecordsRejected(LogError):
    """The log refused some records of a batch *permanently* (too large, invalid for
    its rules): appending them again cannot help, the caller dead-letters them.

    ``rejected`` maps the index of each refused record in the batch to the reason.
    Every other record of the batch was stored durably."""

    def __init__(self, rejected: dict[int, str]) -> None:
        self.rejected = dict(rejected)
        first = next(iter(self.rejected.items()), (None, ""))
        super().__init__(f"{len(self.rejected)} record(s) refused permanently, e.g. #{first[0]}: {first[1]}")


class PositionNotCovered(LogError):
    """A read position that this log does not hold: records before it were deleted
    (retention, a truncated or recreated log) or it lies past the end (a checkpoint or
    follower of another incarnation of the log). Reading on would lose records
    silently, so the reader must be told; the message says what to do."""


class PartitionsChanged(PositionNotCovered):
    """The log's partition count is not the one a position (or an open log object)
    was made for: partitions were added to a live topic, so keys now map to other
    partitions and per-key order does not hold across the change. Raised by reads of
    a position with another number of offsets, and by ``append`` on a log object
    opened before the change. ``expected`` and ``actual`` are the two counts."""

    def __init__(self, message: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class BroadcastIncomplete(LogError):
    """A broadcast record (a snapshot marker) of the batch did not reach every
    partition. ``markers`` maps the index of each such envelope in the batch to
    ``(stored, missing)``: the partitions that hold it and those that do not.

    Transient like any :class:`LogError`: appending the batch again puts the marker
    on every partition (the copies carry the same ``event_id``); a syncer may instead
    give up and abort the snapshot."""

    def __init__(self, message: str, markers: dict[int, tuple[frozenset[int], frozenset[int]]]) -> None:
        super().__init__(message)
        self.markers = dict(markers)


@attrs.frozen(slots=True)
class Position:
    """Where a reader is: the next offset to read in each partition.

    Text form: ``"120"`` for one partition, ``"0:120,1:98"`` for several.
    """

    offsets: tuple[int, ...]

    @classmethod
    def zero(cls, partitions: int) -> Position:
        return cls((0,) * partitions)

    @classmethod
    def parse(cls, text: str) -> Position:
        text = text.strip()
        try:
            if ":" not in text:
                return cls((int(text),))
            pairs = sorted(
                (int(p), int(o)) for p, o in (part.split(":", 1) for part in text.split(","))
            )
        except ValueError as exc:
            raise ValueError(f"not a position: {text!r} (use N or P:N,P:N,...)") from exc
        if [p for p, _ in pairs] != list(range(len(pairs))):
            raise ValueError(f"not a position: {text!r} (partitions must be 0..n-1)")
        return cls(tuple(o for _, o in pairs))

    def __str__(self) -> str:
        if len(self.offsets) == 1:
            return str(self.offsets[0])
        return ",".join(f"{p}:{o}" for p, o in enumerate(self.offsets))

    @property
    def total(self) -> int:
        """Records before this position, summed over partitions."""
        return sum(self.offsets)

    def advance(self, partition: int, offset: int) -> Position:
        """The position after reading ``offset`` in ``partition``."""
        offs = list(self.offsets)
        offs[partition] = max(offs[partition], offset + 1)
        return Position(tuple(offs))

    def covers(self, other: Position) -> bool:
        """True when every partition of this position is at or past ``other``."""
        return all(a >= b for a, b in zip(self.offsets, other.offsets, strict=True))


class RawRecord(msgspec.Struct, frozen=True, gc=False):
    """A stored record, undecoded. (Structs: built per record read, ~7× cheaper than attrs.)"""

    partition: int
    offset: int
    value: bytes




class Record(msgspec.Struct, frozen=True, gc=False):
    """A stored record, decoded."""

    partition: int
    offset: int
    envelope: Envelope


#: raw bytes kept in a dead letter; the rest is dropped (its size and hash stay)
DEAD_LETTER_MAX_BYTES = 64 * 1024


@attrs.frozen(slots=True)
class DeadLetter:
    """Input that could not become events: kept with (a bounded prefix of) its bytes,
    its full size and SHA-256, and the reason."""

    raw: bytes
    reason: str
    source: str
    at: int  # µs
    offset: int = -1
    size: int = -1  # the input's full size in bytes (-1: unknown, ``raw`` is whole)
    sha256: str = ""  # hex digest of the full input ("" : not computed)

    @classmethod
    def of(cls, raw: bytes, reason: str, source: str, at: int,
           max_bytes: int = DEAD_LETTER_MAX_BYTES) -> DeadLetter:
        """A dead letter for ``raw``, truncated to ``max_bytes`` (size and hash of the whole kept)."""
        import hashlib

        data = bytes(raw)
        return cls(data[:max_bytes], reason, source, at, -1, len(data), hashlib.sha256(data).hexdigest())

    @property
    def truncated(self) -> bool:
        return self.size > len(self.raw)


#: the longest reason / source kept in a dead letter (characters)
DEAD_LETTER_MAX_TEXT = 4096


def bounded_dead_letter(d: DeadLetter, max_bytes: int = DEAD_LETTER_MAX_BYTES) -> DeadLetter:
    """``d`` as a backend stores it: size and SHA-256 of the whole input filled in when
    unknown, raw bytes cut to ``max_bytes`` and reason/source to
    :data:`DEAD_LETTER_MAX_TEXT` characters, so that storing a dead letter never fails
    because of its size."""
    raw = bytes(d.raw)
    size, digest = d.size, d.sha256
    if size < 0:
        size = len(raw)  # raw is whole when its size is unknown (DeadLetter.of fills both in)
    if not digest and size == len(raw):
        import hashlib

        digest = hashlib.sha256(raw).hexdigest()
    reason, source = d.reason, d.source
    if len(reason) > DEAD_LETTER_MAX_TEXT:
        reason = reason[:DEAD_LETTER_MAX_TEXT - 14] + " [… truncated]"
    if len(source) > DEAD_LETTER_MAX_TEXT:
        source = source[:DEAD_LETTER_MAX_TEXT]
    return DeadLetter(raw[:max_bytes], reason, source, d.at, d.offset, size, digest)


@runtime_checkable
class EventLog(Protocol):
    """An append-only, partitioned log of envelopes.

    ``append`` is durable when it returns; records of one key keep their order (they
    go to one partition); snapshot markers (``Envelope.broadcast``) go to every
    partition. Readers see a position vector, never a consumer-group share.
    """

    url: str  # for display; secrets masked
    log_id: str  # identity of the log itself (checkpoints are only used on the log that made them)
    max_record_bytes: int  # a record (key + value) larger than this is refused: RecordsRejected

    def partitions(self) -> int:
        """How many partitions the log has now (re-read from the log, not cached for long)."""
        ...

    def start(self) -> Position:
        """The first position the log still holds (records before it were deleted)."""
        ...

    def append(self, envelopes: Sequence[Envelope]) -> None:
        """Store a batch durably; raise LogError if any record could not be stored."""
        ...

    def end(self) -> Position:
        """The position just past the last stored record."""
        ...

    def read_raw(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[RawRecord]]:
        """Undecoded records from ``start`` up to ``end`` (default: the end now), in batches."""
        ...

    def read(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[Record]]:
        """Decoded records, in batches; undecodable ones are reported, not raised."""
        ...

    def position_at(self, time_us: int) -> Position:
        """The first position whose records were recorded after ``time_us``."""
        ...

    def append_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store input that could not become events, durably."""
        ...

    def dead_letters(self) -> Iterator[DeadLetter]:
        """Every stored dead letter, oldest first."""
        ...

    def close(self) -> None: ...


def undecodable(raw: RawRecord, reason: str) -> Envelope:
    """A stand-in envelope for a stored record that does not decode.

    It keeps the reader's position moving and is ignored by the fold; history shows it.
    """
    return Envelope(
        f"undecodable:{raw.partition}:{raw.offset}", UNDECODABLE, "", "", 0, 0,
        Unknown(type=UNDECODABLE, data={"reason": reason, "bytes": len(raw.value)}),
    )


UNDECODABLE = "log.undecodable"


def decode_batches(
    raw_batches: Iterator[list[RawRecord]],
    codec: Codec,
    on_error: Callable[[RawRecord, Exception], None] | None = None,
) -> Iterator[list[Record]]:
    """Decode raw batches. A record that does not decode is reported (``on_error``,
    else a warning) and replaced by an :func:`undecodable` stand-in, never raised."""
    decode = codec.decode
    for raw in raw_batches:
        out: list[Record] = []
        append = out.append
        for r in raw:
            try:
                append(Record(r.partition, r.offset, decode(r.value)))
            except DecodeError as exc:
                if on_error is None:
                    _log.warning("undecodable record at %s/%s: %s", r.partition, r.offset, exc)
                else:
                    on_error(r, exc)
                append(Record(r.partition, r.offset, undecodable(r, str(exc))))
        yield out
