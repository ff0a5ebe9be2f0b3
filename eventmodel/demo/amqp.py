"""The demo's ``--bus`` path: notifications published to RabbitMQ as Nova publishes them,
consumed by an in-process bridge into the log (the production path, in one process)."""

from __future__ import annotations

import time

import kombu

from eventmodel.log import EventLog
from eventmodel.sources.amqp import Bridge
from eventmodel.sources.bus import open_bus

#: the demo's scratch queue: nothing but a demo reads it
DEMO_QUEUE = "eventmodel-demo"


def _fresh_queue(url: str, name: str) -> None:
    """Delete the demo's queue if an earlier run left it: its messages belong to
    another run's cloud, and an older version declared it with other arguments."""
    with kombu.Connection(url, connect_timeout=10) as conn:
        channel = conn.channel()
        try:
            channel.queue_delete(queue=name)
        finally:
            channel.close()


class AmqpFeed:
    """Same interface as the demo's direct feed: send(), drain(), close(), counters."""

    def __init__(self, log: EventLog, url: str) -> None:
        # The demo's own queue; no oslo default queue (nothing would ever read it).
        _fresh_queue(url, DEMO_QUEUE)
        self.bus = open_bus(url, declare_default_queue=False)
        self.bridge = Bridge(log, amqp_url=url, queue=DEMO_QUEUE)
        self.bridge.start()
        deadline = time.monotonic() + 60
        while not self.bridge.wait_ready(timeout=0.1):
            # a configuration RabbitMQ refuses (e.g. an old demo queue declared without
            # single-active-consumer) ends the bridge at once: say why, do not wait a minute
            if self.bridge.wait_done(0) or time.monotonic() > deadline:
                why = self.bridge.error or self.bridge.stats.last_error
                self.bus.close()
                raise RuntimeError(f"the bridge could not start consuming from {url}: {why}")
        self.published = 0

    @property
    def events(self) -> int:
        return self.bridge.stats.events

    @property
    def dead(self) -> int:
        return self.bridge.stats.dead

    @property
    def irrelevant(self) -> int:
        return self.bridge.stats.irrelevant

    def send(self, notifications: list[bytes]) -> None:
        self.published += self.bus.publish(notifications)

    def drain(self, timeout: float) -> None:
        """Wait until the bridge has stored and acknowledged everything published."""
        deadline = time.monotonic() + timeout
        while self.bridge.stats.acked < self.published:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge acknowledged {self.bridge.stats.acked} of {self.published} "
                                   f"within {timeout}s (last error: {self.bridge.stats.last_error})")
            time.sleep(0.01)

    def close(self) -> None:
        self.bridge.stop()
        self.bus.close()
