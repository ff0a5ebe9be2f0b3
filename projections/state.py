"""The folded state of the cluster: immutable values only.

Every table is an ``immutables.Map`` (a hash array mapped trie): a new state shares
all unchanged structure with the old one, so keeping an old state alive costs
nothing and taking a snapshot is just keeping a reference.
"""

from __future__ import annotations

import attrs
import immutables

from eventmodel.events import COMPUTE_KINDS, INSTANCE
from eventmodel.records import Position

EMPTY: immutables.Map = immutables.Map()


@attrs.frozen(slots=True)
class OpenSnapshot:
    """A full sync whose ``snapshot.started`` was read on some partition and that is
    not yet closed on every partition.

    Each partition has its own window: from its ``started`` marker to its
    ``completed`` or ``aborted`` marker (``closed``). Every record of a key is in the
    key's partition, so what happens in one partition's window never depends on how
    a reader interleaves the others. The snapshot's outcome is reported once every
    partition is closed.
    """

    snapshot_id: str
    scope: tuple[str, ...]
    partitions: int
    started_at: int  # occurred_at of the started marker (µs, the syncer's clock): for reports only
    started: immutables.Map = EMPTY  # partition -> offset of its started marker there
    completed: frozenset[int] = frozenset()
    closed: frozenset[int] = frozenset()  # completed or aborted (or superseded)
    observed: immutables.Map = EMPTY  # (kind, key) -> None
    touched: immutables.Map = EMPTY  # (kind, key) -> None, by live records in the window
    corrected: int = 0  # observed records that changed the model
    deleted: int = 0  # entities removed by the partitions reconciled so far
    reasons: frozenset[str] = frozenset()  # why partitions were closed without completing
    #: a follow-up round's parent sync (its corrections are reported with the parent's)
    follows: str | None = None

    def closed_on(self, partition: int, superseded: tuple[int, ...]) -> bool:
        """True once its ``completed``/``aborted`` was read on this partition, or a sync
        whose started marker is later in this partition completed there."""
        if partition in self.closed:
            return True
        offset = self.started.get(partition)
        return offset is not None and offset < superseded[partition]

    def open_on(self, partition: int, superseded: tuple[int, ...]) -> bool:
        """True between this partition's ``started`` and its closing."""
        return partition in self.started and not self.closed_on(partition, superseded)


@attrs.frozen(slots=True)
class SnapshotResult:
    """What the last completed full sync found."""

    snapshot_id: str
    started_at: int
    completed_at: int
    observed: int
    corrected: int  # entities it changed: the drift, i.e. notifications lost
    deleted: int  # of which: entities it removed
    #: entities its follow-up rounds re-read (keys live records touched while it read)
    rechecked: int = 0
    follow_ups: int = 0  # follow-up rounds folded so far


@attrs.frozen(slots=True)
class ClusterState:
    """Everything the fold knows, stamped with the log position it reflects.

    ``tables[kind][key]`` is the entity; ``tombstones[kind][key]`` the version of its
    deletion; ``by_node[node][uuid]`` indexes instances by hypervisor;
    ``ids[kind][key]`` the event id (a str) or ids (a tuple) of the records applied at
    the entity's current version, so that a duplicate at any distance is a no-op.
    """

    position: Position
    tables: immutables.Map = EMPTY
    tombstones: immutables.Map = EMPTY
    by_node: immutables.Map = EMPTY
    #: with several partitions, the partition each key lives in (``homes[kind][key]``)
    homes: immutables.Map = EMPTY
    ids: immutables.Map = EMPTY
    open_snapshots: immutables.Map = EMPTY  # snapshot id -> OpenSnapshot
    #: per partition, the offset of the newest started marker of a sync completed
    #: there: any sync whose started marker is earlier there is closed there (superseded)
    superseded: tuple[int, ...] = ()
    recent_snapshots: tuple[str, ...] = ()  # ids of completed snapshots, newest last
    #: per partition, the offset of the newest ``snapshot.started`` accepted there: a
    #: closing marker of an unknown sync that started at or before it is a copy
    last_started: tuple[int, ...] = ()
    #: per partition, the newest tombstone-pruning cut-off (µs, the syncers' clock less
    #: the TTL): a live record of a key the model does not know, whose version is at or
    #: below it, is older than a completed sync's reads and changes nothing
    horizons: tuple[int, ...] = ()
    #: ``floors[kind][key]``: the version a sync's read overrode when it lowered the
    #: entity's version; a live record above the entity's version but at or below its
    #: floor may be a copy of what the sync overrode and changes nothing
    floors: immutables.Map = EMPTY
    last_snapshot: SnapshotResult | None = None
    recorded_at: int = 0  # recorded_at of the last folded cluster record (µs; audits' own records not counted)
    applied: int = 0  # records folded
    sync_error: str | None = None  # why the last full sync failed (cleared by the next good one)
    duplicates: int = 0  # records skipped as already applied (same event id, or at/below the position)
    rejected: int = 0  # records skipped because the rules could not apply them
    last_rejected: str | None = None  # which, and why

    @classmethod
    def empty(cls, partitions: int = 1) -> ClusterState:
        return cls(
            position=Position.zero(partitions),
            superseded=(-1,) * partitions,
            last_started=(-1,) * partitions,
            horizons=(0,) * partitions,
            tables=immutables.Map({k: EMPTY for k in COMPUTE_KINDS}),
            tombstones=immutables.Map({k: EMPTY for k in COMPUTE_KINDS}),
        )

    def table(self, kind: str) -> immutables.Map:
        return self.tables.get(kind, EMPTY)

    @property
    def instances(self) -> immutables.Map:
        return self.tables.get(INSTANCE, EMPTY)
