"""What the bridge has done: its counters, as a stats line, a dict, and (see
:mod:`eventmodel.sources.amqp.metrics`) Prometheus samples."""

from __future__ import annotations

from typing import Any

import attrs

from eventmodel.clock import now_us


@attrs.define
class BridgeStats:
    """What the bridge has done. Outcome counters count messages acknowledged."""

    received: int = 0  # messages delivered by RabbitMQ (redeliveries included)
    acked: int = 0  # messages acknowledged after their batch was stored
    event_messages: int = 0  # acknowledged messages that produced events
    events: int = 0  # events appended
    irrelevant: int = 0  # acknowledged messages that produced no event, by design
    dead: int = 0  # acknowledged messages stored as dead letters
    #: ``dead`` by kind (eventmodel.sources.amqp.batching.DEAD_LETTER_KINDS)
    dead_by_kind: dict[str, int] = attrs.field(factory=dict)
    batches: int = 0  # batches stored and acknowledged
    append_failures: int = 0  # failed append attempts (each retried)
    reconnects: int = 0  # connections lost and re-established (attempted)
    abandoned: int = 0  # received messages left unacknowledged (redelivered later)
    rejected: int = 0  # records the log refused for good (their messages dead-lettered)
    unstorable: int = 0  # dead letters refused even without their bytes (logged, acknowledged)
    in_flight: bool = False  # stopped while an append was still running (its batch unacknowledged)
    last_error: str | None = None
    last_error_at: int | None = None  # µs
    connected: bool = False
    #: messages ready in the bridge's queue when last asked (None: not known yet)
    queue_depth: int | None = None
    consuming: bool = False
    started_at: int = attrs.field(factory=now_us)

    def snapshot(self) -> BridgeStats:
        return attrs.evolve(self, dead_by_kind=dict(self.dead_by_kind))

    def line(self) -> str:
        secs = max((now_us() - self.started_at) / 1e6, 1e-6)
        text = (
            f"received={self.received} acked={self.acked} events={self.events} "
            f"event_messages={self.event_messages} irrelevant={self.irrelevant} "
            f"dead={self.dead} batches={self.batches} reconnects={self.reconnects} "
            f"append_failures={self.append_failures} rate={self.acked / secs:.0f}/s"
        )
        if self.last_error:
            text += f" last_error={self.last_error!r}"
        return text

    def summary(self) -> str:
        """What the bridge did, in one sentence, for when it stopped."""
        return (
            f"{self.acked} messages stored and acknowledged "
            f"({self.event_messages} with events, {self.events} events, {self.irrelevant} irrelevant, "
            f"{self.dead} dead letters) in {self.batches} batches; {self.reconnects} reconnects"
            + (f"; {self.abandoned} left unacknowledged for redelivery" if self.abandoned else "")
            + (f"; {self.rejected} records refused by the log (dead-lettered)" if self.rejected else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)
