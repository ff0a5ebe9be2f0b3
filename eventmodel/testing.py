"""For those who test against the model (a Watcher plugin author, a strategy's tests):
an in-memory partitioned log that needs no SQLite file or Kafka broker, a reader's
interleaving of its partitions, and record builders.

    log = MemLog(partitions=2)
    log.append(envelopes_of([InstanceCreated(inst), SnapshotStarted("s1", COMPUTE_KINDS)]))
    state = fold(ClusterState.empty(2), interleave(log.parts, random.Random(0)))

``MemLog`` keys records like the Kafka backend (one key, one partition; snapshot markers
on every partition), so what holds on it holds on the real logs' contract.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence

from eventmodel import events as ev
from eventmodel.records import Position, Record
from eventmodel.log.kafka.partitioner import partition_for

__all__ = ["MemLog", "envelopes_of", "interleave", "records_of"]


class MemLog:
    """An in-memory partitioned log: ``append``, ``end``, ``read``, ``partitions``; its
    records are in ``parts`` (one list per partition) and ``appended`` (append order)."""

    url = "mem://test"
    log_id = "mem"

    def __init__(self, partitions: int = 1) -> None:
        self.parts: list[list[Record]] = [[] for _ in range(partitions)]
        self.appended: list[ev.Envelope] = []

    def partitions(self) -> int:
        return len(self.parts)

    def end(self) -> Position:
        return Position(tuple(len(p) for p in self.parts))

    def read(self, start: Position | None = None, end: Position | None = None,
             batch: int = 5000) -> Iterator[list[Record]]:
        """Records from ``start`` to ``end`` (default: all), partition by partition."""
        start = start or Position.zero(len(self.parts))
        end = end or self.end()
        out = [r for p, part in enumerate(self.parts) for r in part[start.offsets[p]: end.offsets[p]]]
        for k in range(0, len(out), batch):
            yield out[k: k + batch]

    def append(self, envelopes: Sequence[ev.Envelope], only: Sequence[int] | None = None) -> None:
        """Store envelopes; a broadcast marker goes to every partition, or to ``only``
        (a marker that reached some partitions only)."""
        for e in envelopes:
            self.appended.append(e)
            if e.broadcast:
                targets: Iterable[int] = range(len(self.parts)) if only is None else only
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


def envelopes_of(payloads: Iterable[object], *, source: str = "test", start: int = 0) -> list[ev.Envelope]:
    """Envelopes for payloads, one source message each (message ids ``start``, ``start+1``, …;
    times the same numbers)."""
    return [ev.envelope(p, source=source, message_id=str(n), occurred_at=n, recorded_at=n)
            for n, p in enumerate(payloads, start)]


def records_of(payloads: Iterable[object], *, source: str = "test") -> list[Record]:
    """One partition's records for payloads, in order: ``fold(state, records_of([...]))``."""
    return [Record(0, n, e) for n, e in enumerate(envelopes_of(payloads, source=source))]
