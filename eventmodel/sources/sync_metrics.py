"""Prometheus metrics of the full-sync syncer (``eventmodel sync --metrics-port``).

On the process's own registry (see :mod:`eventmodel.metrics`):

- ``eventmodel_sync_runs_total{outcome}`` — finished syncs, ``ok`` or ``failed``;
- ``eventmodel_sync_duration_seconds`` — wall time of each sync (histogram);
- ``eventmodel_sync_requests_total{service}`` — API requests, by identity/compute/placement;
- ``eventmodel_sync_records_total{kind}`` — records observed, by entity kind;
- ``eventmodel_sync_last_success_timestamp_seconds`` — when the last sync completed.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from eventmodel.sources.sync import SyncResult

#: wall-time buckets (s) from a small cloud to 10,000 hosts
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800)


class SyncMetrics:
    """Counts every :class:`SyncResult` given to :meth:`record`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runs = Counter("eventmodel_sync_runs", "Finished full syncs, by outcome.", ["outcome"],
                            registry=registry)
        self.duration = Histogram("eventmodel_sync_duration_seconds", "Wall time of a full sync.",
                                  buckets=DURATION_BUCKETS, registry=registry)
        self.requests = Counter("eventmodel_sync_requests", "API requests made by full syncs, by service.",
                                ["service"], registry=registry)
        self.records = Counter("eventmodel_sync_records", "Records observed by full syncs, by entity kind.",
                               ["kind"], registry=registry)
        self.last_success = Gauge("eventmodel_sync_last_success_timestamp_seconds",
                                  "Unix time the last full sync completed.", registry=registry)
        for outcome in ("ok", "failed"):
            self.runs.labels(outcome=outcome)

    def record(self, result: SyncResult) -> None:
        self.runs.labels(outcome="ok" if result.ok else "failed").inc()
        self.duration.observe(result.wall_s)
        for service, n in result.requests.items():
            self.requests.labels(service=service).inc(n)
        for kind, n in result.counts.items():
            self.records.labels(kind=kind).inc(n)
        if result.ok:
            self.last_success.set(time.time())

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), for tests and summaries."""
        return float(self.registry.get_sample_value(name, labels) or 0.0)
