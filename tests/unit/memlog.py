"""An in-memory partitioned log and a reader's interleaving of its partitions, for
the pure fold tests (unit tests may use fakes; the suite's integration tests use the
real logs)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from eventmodel import events as ev
from eventmodel.log.base import Position, Record
from eventmodel.log.kafka import partition_for


class MemLog:
    """An in-memory partitioned log for the pure fold tests (keyed like Kafka's)."""

    url = "mem://test"
    log_id = "mem"

    def __init__(self, partitions: int = 1) -> None:
        self.parts: list[list[Record]] = [[] for _ in range(partitions)]
        self.appended: list[ev.Envelope] = []

    def partitions(self) -> int:
        return len(self.parts)

    def end(self) -> Position:
        return Position(tuple(len(p) for p in self.parts))

    def read(self, start: Position | None = None, end: Position | None = None, batch: int = 5000):
        start = start or Position.zero(len(self.parts))
        end = end or self.end()
        out = [r for p, part in enumerate(self.parts) for r in part[start.offsets[p]: end.offsets[p]]]
        for k in range(0, len(out), batch):
            yield out[k: k + batch]

    def append(self, envelopes: Sequence[ev.Envelope], only: Sequence[int] | None = None) -> None:
        for e in envelopes:
            self.appended.append(e)
            if e.broadcast:
                targets = range(len(self.parts)) if only is None else only
            else:
                targets = [partition_for(e.key, len(self.parts))]
            for p in targets:
                self.parts[p].append(Record(p, len(self.parts[p]), e))


def interleave(parts: list[list[Record]], rng: random.Random) -> list[Record]:
    """One reader's order: each partition in its own order, partitions mixed at random."""
    idx = [0] * len(parts)
    out: list[Record] = []
    while True:
        ready = [p for p in range(len(parts)) if idx[p] < len(parts[p])]
        if not ready:
            return out
        p = rng.choice(ready)
        take = rng.randint(1, 4)
        out.extend(parts[p][idx[p]: idx[p] + take])
        idx[p] += take
