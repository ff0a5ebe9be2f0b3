"""The values a log speaks in, with no I/O: a reader's :class:`Position` and the
records it reads. The pure fold and the model import these, never the log's contract
(:mod:`eventmodel.log.base`), which re-exports them."""

from __future__ import annotations

import attrs
import msgspec

from eventmodel.errors import ConfigError
from eventmodel.events import Envelope


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
            raise ConfigError(f"not a position: {text!r} (use N or P:N,P:N,...)") from exc
        if [p for p, _ in pairs] != list(range(len(pairs))):
            raise ConfigError(f"not a position: {text!r} (partitions must be 0..n-1)")
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
