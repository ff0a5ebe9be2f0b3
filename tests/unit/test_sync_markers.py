"""A full sync whose markers reach only some partitions (Kafka refused the broadcast
part-way): the syncer aborts it, and the model says what happened — a partial
``started`` is aborted, a partial ``completed`` is reported, nothing is left open."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from eventmodel import events as ev
from eventmodel.log.base import BroadcastIncomplete
from eventmodel.sim.cloud import SimCloud
from eventmodel.sources.sync import Snapshotter
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState
from tests.unit.memlog import MemLog, interleave


class FlakyBroadcast(MemLog):
    """Stores the first ``marker`` of the given type on partition 0 only, then fails."""

    def __init__(self, partitions: int, marker: str) -> None:
        super().__init__(partitions)
        self.marker = marker
        self.tripped = False

    def append(self, envelopes: Sequence[ev.Envelope], only: Sequence[int] | None = None) -> None:
        for e in envelopes:
            if e.type == self.marker and not self.tripped:
                self.tripped = True
                super().append([e], only=[0])
                raise BroadcastIncomplete(f"{e.type} reached 1 of {len(self.parts)} partitions",
                                          {0: (frozenset({0}), frozenset(range(1, len(self.parts))))})
            super().append([e], only)


@pytest.mark.parametrize("seed", range(5))
def test_a_partial_started_is_aborted_and_reported(seed: int) -> None:
    sim = SimCloud(4, 20, seed=seed)
    log = FlakyBroadcast(3, ev.SnapshotStarted.TYPE)
    result = Snapshotter(sim, log).run_once()
    assert not result.ok and "reached 1 of 3" in result.error
    state = fold(ClusterState.empty(3), interleave(log.parts, random.Random(seed)))
    assert not state.open_snapshots
    assert state.sync_error is not None and result.snapshot_id in state.sync_error
    assert state.last_snapshot is None
    # The next sync completes normally and clears the error.
    assert Snapshotter(sim, log).run_once().ok
    state = fold(ClusterState.empty(3), interleave(log.parts, random.Random(seed + 1)))
    assert state.sync_error is None and not state.open_snapshots
    assert len(ClusterModel(state).instances()) == len(sim.truth().instances)


@pytest.mark.parametrize("seed", range(5))
def test_a_partial_completed_is_reported_as_completed_on_some_partitions(seed: int) -> None:
    sim = SimCloud(4, 20, seed=seed)
    log = FlakyBroadcast(3, ev.SnapshotCompleted.TYPE)
    result = Snapshotter(sim, log).run_once()
    assert not result.ok
    state = fold(ClusterState.empty(3), interleave(log.parts, random.Random(seed)))
    assert not state.open_snapshots
    assert state.sync_error is not None and "completed on 1 of 3 partitions" in state.sync_error
