"""``/metrics``: a Prometheus collector that reads the model and the last lag sample at
scrape time (nothing to keep in step), on a registry of its own (no global state).

Metric names (all prefixed ``eventmodel_``):

- ``records_folded_total``, ``records_duplicate_total``, ``records_rejected_total``;
- ``log_position{partition}``, ``log_end{partition}``, ``lag_records{partition}``,
  ``lag_seconds{partition}`` (age of the oldest record not folded yet);
- ``entities{kind}``, ``syncs_in_progress``;
- ``last_sync_completed_timestamp_seconds``, ``last_sync_duration_seconds``,
  ``last_sync_drift`` (entities the sync corrected), ``last_sync_deleted``, ``last_sync_observed``;
- ``stale`` (1/0) and ``stale_info{reason}``; ``ready`` (1/0); ``held`` (1/0);
- ``model_age_seconds`` (since the last folded record was recorded);
- ``dead_letters{reason}`` (the reason's text up to its first colon);
- ``retries_total{component="serve.restore"}`` (restores retried while the log cannot be read);
- plus the process, platform and garbage-collector metrics (:func:`eventmodel.metrics.new_registry`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from eventmodel.metrics import RetryMetrics, new_registry
from eventmodel.serve.access import redact_text
from eventmodel.serve.service import ModelService

PREFIX = "eventmodel_"


class ModelCollector(Collector):
    """Reads a :class:`ModelService` on every scrape."""

    def __init__(self, service: ModelService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        ready, _ = svc.readiness()
        stale = svc.stale()
        yield _gauge("ready", "1 when the model is restored, not stale and caught up within the bound", int(ready))
        yield _gauge("held", "1 while the follower is held (SIGUSR2)", int(svc.held))
        yield _gauge("stale", "1 when the model may be out of date (see stale_info)", int(bool(stale)))
        info = InfoMetricFamily(PREFIX + "stale", "why the model may be out of date", labels=["reason"])
        if stale:
            info.add_metric([svc.public(stale)[:500]], {})
        yield info

        sample = svc.sample
        per = {
            "log_position": ("the model's next offset per partition", lambda p: p.position),
            "log_end": ("the log's end per partition", lambda p: p.end),
            "lag_records": ("records not folded yet per partition", lambda p: p.records),
            "lag_seconds": ("age of the oldest record not folded yet per partition", lambda p: p.seconds),
        }
        for name, (doc, get) in per.items():
            g = GaugeMetricFamily(PREFIX + name, doc, labels=["partition"])
            for p in sample.partitions:
                g.add_metric([str(p.partition)], get(p))
            yield g
        yield _gauge("lag_sampled_timestamp_seconds", "when the lag was last sampled", sample.at / 1e6)

        dead = GaugeMetricFamily(PREFIX + "dead_letters", "dead letters stored in the log, by reason",
                                 labels=["reason"])
        for reason, n in sorted(svc.dead.by_reason.items()):
            dead.add_metric([redact_text(reason)], n)
        yield dead

        if svc.projection is None:
            return
        model = svc.model()
        s = model.state
        for name, doc, value in (
            ("records_folded", "records folded into the model", s.applied),
            ("records_duplicate", "records skipped as already folded (copies)", s.duplicates),
            ("records_rejected", "records the fold rules could not apply", s.rejected),
        ):
            c = CounterMetricFamily(PREFIX + name, doc)
            c.add_metric([], value)
            yield c
        ent = GaugeMetricFamily(PREFIX + "entities", "entities in the model, by kind", labels=["kind"])
        for kind, n in sorted(model.counts().items()):
            ent.add_metric([kind], n)
        yield ent
        yield _gauge("syncs_in_progress", "full syncs started and not closed on every partition",
                     len(s.open_snapshots))
        age = max(0.0, time.time() - s.recorded_at / 1e6) if s.recorded_at else 0.0
        yield _gauge("model_age_seconds", "seconds since the newest folded record was recorded", age)
        snap = model.last_snapshot
        if snap is not None:
            yield _gauge("last_sync_completed_timestamp_seconds", "when the last full sync completed",
                         snap.completed_at / 1e6)
            yield _gauge("last_sync_duration_seconds", "how long the last full sync read",
                         max(0.0, (snap.completed_at - snap.started_at) / 1e6))
            yield _gauge("last_sync_drift", "entities the last full sync corrected (notifications lost)",
                         snap.corrected)
            yield _gauge("last_sync_deleted", "entities the last full sync deleted", snap.deleted)
            yield _gauge("last_sync_observed", "entities the last full sync observed", snap.observed)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def registry_for(service: ModelService) -> CollectorRegistry:
    """A registry of this process's own: the model collector, the process metrics, and
    ``eventmodel_retries_total{component="serve.restore"}`` (the service reports into it)."""
    registry = new_registry()
    registry.register(ModelCollector(service))
    service.on_retry = RetryMetrics(registry).hook
    return registry
