"""What a demo run found: :class:`DemoReport`, made of one :class:`SyncRound` per full
sync. Plain values: the CLI prints them, a test asserts on them."""

from __future__ import annotations

from collections import Counter

import attrs

from eventmodel.log import Position
from eventmodel.sources.sync import SyncResult
from projections.state import SnapshotResult


@attrs.frozen
class SyncRound:
    """One full sync of the demo: its result, the operations that ran while it read, and
    the servers the listing omitted or gave as minimal records."""

    what: str
    result: SyncResult
    ops_while: int
    omitted: int
    minimal: int


@attrs.frozen
class DemoReport:
    """The demo's findings, in the order of its summary table."""

    log_url: str
    #: the log's end before the run and after it
    before: Position
    end: Position
    hosts_now: int
    instances_now: int
    #: operations of the timed run, and the seconds it took
    ops: int
    streamed_s: float
    #: the simulated cloud's counters (operations, notifications emitted, dropped, …)
    counters: dict[str, int]
    skewed_hosts: int
    syncs: tuple[SyncRound, ...]
    #: what the feed appended: events, notifications without any, dead letters
    events: int
    irrelevant: int
    dead: int
    #: differences from ground truth before the final sync, and between the busy and the quiescent one
    wrong_before: tuple[str, ...]
    wrong_between: tuple[str, ...]
    busy_drift: SnapshotResult | None
    quiet_drift: SnapshotResult | None
    #: the held-back notifications delivered while the quiescent sync read (0 and 0 when flushed before it)
    late_during_sync: bool
    late_delivered: int
    late_live: int
    #: a second replay from zero: its seconds and whether it gave the same model
    replay_s: float
    same_replay: bool
    #: the projection's differences from the simulator's ground truth at the end
    differences: tuple[str, ...]
    #: whether the cloud had block storage, what it held at the end, and the storage
    #: model's differences from the sim's storage truth
    storage: bool = False
    volumes_now: int = 0
    pools_now: int = 0
    storage_nodes_now: int = 0
    storage_differences: tuple[str, ...] = ()
    #: what the busy final storage sync corrected: Cinder's changes the log had not
    #: told (silent migrations and metadata, lost notifications, or no Cinder normalizer)
    storage_drift: SnapshotResult | None = None
    #: whether the cloud had bare-metal nodes, how many, and the baremetal model's
    #: differences from the sim's Ironic
    baremetal: bool = False
    baremetal_nodes_now: int = 0
    baremetal_differences: tuple[str, ...] = ()

    @property
    def compute_equal(self) -> bool:
        return not self.differences

    @property
    def storage_equal(self) -> bool:
        return not self.storage_differences

    @property
    def baremetal_equal(self) -> bool:
        return not self.baremetal_differences

    @property
    def equal(self) -> bool:
        """The projection equals the ground truth: compute, and storage and baremetal when the cloud has them."""
        return self.compute_equal and self.storage_equal and self.baremetal_equal

    @property
    def ok(self) -> bool:
        """Equal to the truth, and a replay from zero gives the same model."""
        return self.equal and self.same_replay

    @property
    def ops_during_syncs(self) -> int:
        return self.counters.get("ops", 0) - self.ops

    @property
    def omitted(self) -> int:
        return sum(s.omitted for s in self.syncs)

    @property
    def minimal(self) -> int:
        return sum(s.minimal for s in self.syncs)

    @property
    def requests(self) -> Counter[str]:
        """API requests of every full sync, by service."""
        return sum((Counter(s.result.requests) for s in self.syncs), Counter())

    @property
    def sync_wall_s(self) -> float:
        return sum(s.result.wall_s for s in self.syncs)

    @property
    def quiet(self) -> SyncResult:
        """The last, quiescent, full sync."""
        return self.syncs[-1].result
