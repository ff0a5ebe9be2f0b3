"""The projection against the simulator's ground truth (hypothesis stateful testing).

The machine drives a simulated cloud with faults on, feeds its notifications through
the normalizer onto a real SQLite log, folds the log, and runs full syncs at random
points. After every sync the projection must equal the ground truth; without faults
it must equal it at any point.
"""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from eventmodel.log import open_log
from eventmodel.sim.cloud import Faults, SimCloud, diff_truth
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.sync import Snapshotter
from projections.projection import Projection, catch_up
from projections.replay import start


class CloudVersusModel(RuleBasedStateMachine):
    @initialize(
        seed=st.integers(0, 10_000),
        hosts=st.integers(1, 6),
        instances=st.integers(0, 40),
        faulty=st.booleans(),
        drop=st.floats(0, 0.3),
        duplicate=st.floats(0, 0.3),
        delay=st.floats(0, 0.3),
        reorder=st.floats(0, 0.3),
    )
    def setup(self, seed, hosts, instances, faulty, drop, duplicate, delay, reorder) -> None:
        self.dir = tempfile.mkdtemp(prefix="eventmodel-gt-")
        self.log = open_log(f"sqlite:///{self.dir}/events.db")
        faults = Faults(drop=drop, duplicate=duplicate, delay=delay, reorder=reorder) if faulty else Faults()
        self.faulty = faulty
        self.sim = SimCloud(hosts, instances, seed=seed, faults=faults)
        self.normalizer = NovaNormalizer()
        self.syncer = Snapshotter(self.sim, self.log, clock=lambda: self.sim.clock_us, page_size=7)
        self.projection = Projection()
        self.synced = False

    def teardown(self) -> None:
        if hasattr(self, "log"):
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _feed(self, notifications: list[bytes]) -> None:
        envelopes = []
        for raw in notifications:
            out = self.normalizer.normalize(raw, recorded_at=self.sim.clock_us)
            assert out.status != "dead", out.reason
            envelopes.extend(out.events)
        self.log.append(envelopes)
        catch_up(self.projection, self.log)

    def _differences(self) -> list[str]:
        m = self.projection.latest()
        return diff_truth(self.sim.truth(), m.instances(), m.compute_nodes(), m.services())

    @rule(n=st.integers(1, 30))
    def operate(self, n: int) -> None:
        self._feed(self.sim.step(n))

    @rule()
    def flush_delayed(self) -> None:
        self._feed(self.sim.flush())

    @rule()
    def full_sync(self) -> None:
        self._feed(self.sim.flush())
        result = self.syncer.run_once()
        assert result.ok
        catch_up(self.projection, self.log)
        self.synced = True
        assert self._differences() == []
        snap = self.projection.latest().last_snapshot
        assert snap is not None and snap.snapshot_id == result.snapshot_id

    @precondition(lambda self: self.synced and not self.faulty)
    @invariant()
    def without_faults_notifications_alone_keep_the_model_exact(self) -> None:
        assert self._differences() == []

    @invariant()
    def no_record_was_rejected(self) -> None:
        if hasattr(self, "projection"):
            assert self.projection.state.rejected == 0, self.projection.state.last_rejected

    @precondition(lambda self: self.synced)
    @invariant()
    def replay_from_zero_gives_the_same_model(self) -> None:
        fresh = start(self.log)
        assert fresh.state.tables == self.projection.state.tables
        assert fresh.state.position == self.projection.state.position


CloudVersusModel.TestCase.settings = settings(max_examples=60, stateful_step_count=15, deadline=None)
TestCloudVersusModel = CloudVersusModel.TestCase
