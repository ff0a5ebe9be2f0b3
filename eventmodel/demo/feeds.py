"""Where the demo sends the simulated cloud's notifications: straight through the
normalizer onto the log (:class:`DirectFeed`), or through RabbitMQ and the bridge
(:class:`eventmodel.demo.amqp.AmqpFeed`, the same interface).

The direct feed normalizes with the sources' composite normalizer
(:meth:`~eventmodel.sources.plugins.CompositeNormalizer.from_entry_points`: Nova's and
whatever else is installed), so Cinder's notifications become events where a Cinder
normalizer exists and are counted irrelevant where none does (the full syncs then
carry the storage model alone)."""

from __future__ import annotations

from typing import Protocol

from eventmodel.clock import now_us
from eventmodel.events import COMPUTE_KINDS
from eventmodel.log import EventLog
from eventmodel.sources.nova import MessageNormalizer
from eventmodel.sources.plugins import CompositeNormalizer


class Feed(Protocol):
    """Notifications in; counters of what reached the log."""

    events: int
    dead: int
    irrelevant: int

    def send(self, notifications: list[bytes]) -> None: ...

    def drain(self, timeout: float) -> None: ...

    def close(self) -> None: ...


class DirectFeed:
    """Notifications → normalizer → log, in this process (the embedded path)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.normalizer = CompositeNormalizer.from_entry_points()
        self.events = 0
        self.dead = 0
        self.irrelevant = 0

    def send(self, notifications: list[bytes]) -> None:
        envelopes = []
        letters = []
        now = now_us()
        for raw in notifications:
            out = self.normalizer.normalize(raw, recorded_at=now)
            if out.status == "events":
                envelopes.extend(out.events)
            elif out.status == "dead":
                letters.append(self.normalizer.dead_letter(raw, out, source="demo"))
            else:
                self.irrelevant += 1
        self.log.append(envelopes)
        self.log.append_dead_letters(letters)
        self.events += len(envelopes)
        self.dead += len(letters)

    def drain(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        return None


def live_events(normalizer: MessageNormalizer, notifications: list[bytes],
                kinds: tuple[str, ...] = COMPUTE_KINDS) -> int:
    """How many events of ``notifications`` create, change or delete an entity of
    ``kinds`` (the ones the compute sync reading while they arrive re-reads in its
    follow-up rounds; start notifications, and Cinder's, which the later storage sync
    reads, are not)."""
    n = 0
    for raw in notifications:
        out = normalizer.normalize(raw, recorded_at=0)
        if out.status == "events":
            n += sum(1 for e in out.events
                     if getattr(e.payload, "EFFECT", None) in ("upsert", "delete") and e.payload.KIND in kinds)
    return n
