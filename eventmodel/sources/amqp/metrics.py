"""The bridge's Prometheus metrics, on a registry the caller owns.

Counters and gauges are read from the bridge's :class:`BridgeStats` when Prometheus
scrapes (the bridge counts once, in one place); the append latency is a histogram the
writer observes; retries go to ``eventmodel_retries_total{component="bridge.connect"|
"bridge.append"}`` (:class:`eventmodel.metrics.RetryMetrics`).

    registry = new_registry()
    metrics = BridgeMetrics(registry)
    bridge = Bridge(log, config, metrics=metrics)
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from eventmodel.metrics import RetryMetrics
from eventmodel.sources.amqp.batching import DEAD_LETTER_KINDS
from eventmodel.sources.amqp.stats import BridgeStats

#: append latency buckets (seconds): a healthy log answers in ms, a stalled one in minutes
APPEND_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: (metric name without the ``eventmodel_bridge_`` prefix, BridgeStats field, help)
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages_received", "received", "Messages delivered by RabbitMQ (redeliveries included)."),
    ("messages_acked", "acked", "Messages acknowledged after their batch was stored."),
    ("event_messages", "event_messages", "Acknowledged messages that produced events."),
    ("irrelevant_messages", "irrelevant", "Acknowledged messages that produced no event, by design."),
    ("events_appended", "events", "Events appended to the log."),
    ("batches", "batches", "Batches stored and acknowledged."),
    ("append_failures", "append_failures", "Failed append attempts (each retried)."),
    ("reconnects", "reconnects", "Connection attempts after a lost or refused connection."),
    ("messages_abandoned", "abandoned", "Received messages left unacknowledged (RabbitMQ redelivers them)."),
    ("records_rejected", "rejected", "Records the log refused for good (their messages dead-lettered)."),
)


class BridgeMetrics:
    """The metrics of one bridge. ``Bridge(..., metrics=...)`` calls :meth:`watch`."""

    def __init__(self, registry: CollectorRegistry, retries: RetryMetrics | None = None) -> None:
        self.registry = registry
        #: retries by component; pass one to share it with other components of the process
        self.retries = retries if retries is not None else RetryMetrics(registry)
        self.append_seconds = Histogram(
            "eventmodel_bridge_append_seconds", "Time one successful append to the log took.",
            buckets=APPEND_BUCKETS, registry=registry,
        )
        self._stats: BridgeStats | None = None
        registry.register(_StatsCollector(self))

    def watch(self, stats: BridgeStats) -> None:
        """Report these stats (the bridge's own object, read at each scrape)."""
        self._stats = stats

    def on_append(self, seconds: float) -> None:
        """One append succeeded after ``seconds``."""
        self.append_seconds.observe(seconds)

    @property
    def stats(self) -> BridgeStats | None:
        return self._stats


class _StatsCollector(Collector):
    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return self._families(BridgeStats())

    def collect(self) -> Iterator[Metric]:
        stats = self.metrics.stats
        return self._families(stats if stats is not None else BridgeStats())

    @staticmethod
    def _families(s: BridgeStats) -> Iterator[Metric]:
        for name, field, text in _COUNTERS:
            yield CounterMetricFamily(f"eventmodel_bridge_{name}", text, value=getattr(s, field))
        dead = CounterMetricFamily(
            "eventmodel_bridge_dead_letters", "Acknowledged messages stored as dead letters, by kind.",
            labels=["reason"],
        )
        by_kind = dict(s.dead_by_kind)
        for kind in DEAD_LETTER_KINDS:
            dead.add_metric([kind], by_kind.pop(kind, 0))
        for kind, n in sorted(by_kind.items()):
            dead.add_metric([kind], n)
        yield dead
        yield GaugeMetricFamily("eventmodel_bridge_connected", "1 while connected to RabbitMQ.", value=int(s.connected))
        yield GaugeMetricFamily("eventmodel_bridge_consuming", "1 while consuming (0 on a hot standby's reconnect).",
                                value=int(s.consuming))
        if s.queue_depth is not None:
            yield GaugeMetricFamily("eventmodel_bridge_queue_messages",
                                    "Messages ready in the bridge's queue when last asked.", value=s.queue_depth)
        if s.last_error_at is not None:
            yield GaugeMetricFamily("eventmodel_bridge_last_error_timestamp_seconds",
                                    "When the last error happened (Unix time).", value=s.last_error_at / 1e6)
