"""Filling a real log from the simulated cloud: a full sync, then operations whose
Nova notifications go through the normalizer onto the log (the demo's embedded path)."""

from __future__ import annotations

from eventmodel.clock import now_us
from eventmodel.log import EventLog
from eventmodel.sim.cloud import SimCloud
from eventmodel.sim.faults import Faults
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.sync import Snapshotter


class CloudFeed:
    """A simulated cloud writing into ``log``."""

    def __init__(self, log: EventLog, hosts: int = 8, instances: int = 60, *, seed: int = 3,
                 faults: Faults | None = None) -> None:
        self.log = log
        self.sim = SimCloud(hosts, instances, seed=seed, faults=faults or Faults.kind(), start_time_us=now_us())
        self.normalizer = NovaNormalizer()
        self.syncer = Snapshotter(self.sim, log, source="test-sync", clock=lambda: self.sim.clock_us)

    def sync(self) -> None:
        result = self.syncer.run_once()
        assert result.ok, result.error

    def send(self, notifications: list[bytes]) -> int:
        now = now_us()
        envelopes = []
        for raw in notifications:
            out = self.normalizer.normalize(raw, recorded_at=now)
            if out.status == "events":
                envelopes.extend(out.events)
        self.log.append(envelopes)
        return len(envelopes)

    def operate(self, ops: int, batch: int = 20) -> int:
        """Run ``ops`` operations, appending their events every ``batch`` operations."""
        n = 0
        for _ in range(0, ops, batch):
            n += self.send(self.sim.step(batch))
        return n + self.send(self.sim.flush())
