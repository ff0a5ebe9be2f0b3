"""The projection against the simulator's ground truth (hypothesis stateful testing).

The machine drives a simulated cloud — kind, or as unkind as Nova (drops, copies near
and far, delays, reorders, same-second saves, ``updated_at`` null on new instances,
skewed compute clocks, the source's stale ``live_migration_post.end``, listings that
omit servers or return a down cell's minimal records) — feeds its notifications
through the normalizer onto a real SQLite log, folds the log, and runs full syncs at
random points, some of them while operations go on. The guarantees:

* after every quiescent full sync the projection equals the ground truth, whatever
  came before;
* on a kind cloud — or one that only delivers at least once, with copies near and
  far — the projection equals the ground truth at every point after the first sync,
  even across syncs that read while operations run (the watermark rule) — for
  instances and nodes. Services are held to it after quiescent syncs only: Nova's
  ``service.update`` carries no ``updated_at``, only the last heartbeat
  (``last_seen_up``), so two changes of one service within a heartbeat interval with
  a sync reading between them leave the second unseen until the next sync (ADR 0004),
  and only the API can say a service is up again;
* the same log can outlive its cloud: when another cloud (or the same one restarted
  at another time, as a second demo run in one folder does) takes over the log, a
  quiescent sync makes the model equal the new cloud;
* a down cell's minimal records never delete what the model knew;
* no record is ever rejected, and a replay from zero gives the same model.

Every field is compared (``diff_truth``): instances with their metadata, created time
and flavor extra specs, nodes, services with their zone, aggregates; after a quiescent
sync also each node's status as the model answers it (``node_status``: disabled,
reason, zone, aggregates). Instance uuids are taken to be never reused: a same-seed
cloud restarted at an EARLIER time creates the uuids the old one created later, whose
tombstones are newer than the new creations, so between syncs such a cloud is not
followed exactly (a quiescent sync still repairs it).

``CloudWithStorageAndBaremetalVersusModel`` runs the same rules on a cloud that also
has Cinder (volume types, storage nodes, pools, volumes created, attached, extended,
retyped, migrated silently, deleted) and Ironic (nodes enrolled, deployed, powered,
put in maintenance, deleted), their notifications through the same faults and the
default (composite) normalizer, and each full sync a compute, a storage and a
baremetal sync. After every quiescent sync the storage and baremetal models equal the
sim's truth too (the demo's comparison: ``storage_differences``,
``baremetal_differences``); on a kind cloud the bare-metal nodes are followed exactly
at every point after the first sync, as instances are (Ironic notifies each change),
the storage model is not: Cinder's migrations and pool figures are silent (ADR 0018).

The syncs here read the sim in-process; ``tests/integration/test_ground_truth_http.py``
runs the same machine with every sync over HTTP through openstacksdk.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from eventmodel.log import open_log
from eventmodel.sim.cloud import Faults, SimCloud, baremetal_differences, diff_truth, storage_differences
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.plugins import CompositeNormalizer
from eventmodel.sources.sync import Snapshotter
from projections.model import ClusterModel
from projections.projection import Projection, catch_up
from projections.replay import start
from tests.unit.sim_readers import SimBaremetalReader, SimStorageReader


def node_status_differences(truth: Any, m: ClusterModel) -> list[str]:
    """Each node's status as the model answers it (``node_status``) against the truth:
    its compute service's disabled flag, reason and zone, its aggregates' names."""
    out = []
    by_host = m.aggregates_by_host()
    for name, node in truth.nodes.items():
        svc = truth.services.get(node.host)
        aggs = tuple(a.name for a in sorted((a for a in truth.aggregates.values() if node.host in a.hosts),
                                            key=lambda a: (a.name, a.uuid)))
        want = (svc.disabled, svc.disabled_reason, svc.availability_zone, aggs) if svc else None
        st_ = m.node_status(name, by_host)
        got = (st_.disabled, st_.disabled_reason, st_.zone, st_.aggregates)
        if want is not None and want != got:
            out.append(f"node {name}: status differs: truth={want!r} model={got!r}")
    return out


def _nova_faults(drop: float, duplicate: float, delay: float, reorder: float, redeliver: float,
                 distance: int) -> Faults:
    return Faults.nova_like(drop=drop, duplicate=duplicate, delay=delay, reorder=reorder, redeliver=redeliver,
                            redeliver_distance=(distance, distance * 3))


class CloudVersusModel(RuleBasedStateMachine):
    @initialize(
        seed=st.integers(0, 10_000),
        hosts=st.integers(1, 6),
        instances=st.integers(0, 40),
        mode=st.sampled_from(["kind", "at_least_once", "nova", "nova"]),
        drop=st.floats(0, 0.3),
        duplicate=st.floats(0, 0.3),
        delay=st.floats(0, 0.3),
        reorder=st.floats(0, 0.3),
        redeliver=st.floats(0, 0.3),
        distance=st.integers(1, 40),
        batch=st.integers(1, 40),
    )
    def setup(self, seed, hosts, instances, mode, drop, duplicate, delay, reorder, redeliver, distance,
              batch) -> None:
        self.dir = tempfile.mkdtemp(prefix="eventmodel-gt-")
        self.log = open_log(f"sqlite:///{self.dir}/events.db")
        if mode == "nova":
            self.faults = _nova_faults(drop, duplicate, delay, reorder, redeliver, distance)
        elif mode == "at_least_once":
            self.faults = Faults(duplicate=max(duplicate, 0.05), redeliver=max(redeliver, 0.05),
                                 redeliver_distance=(distance, distance * 3))
        else:
            self.faults = Faults()
        self.nova = mode == "nova"
        self.shape = (hosts, instances)
        self.batch = batch
        self.normalizer = self._make_normalizer()
        self.projection = Projection()
        self.switched = False  # another cloud took over since the last quiescent sync
        self.reused_uuids = False  # a same-seed cloud started earlier took over (see the docstring)
        self.sim: SimCloud | None = None
        self.clocks: dict[int, int] = {}  # seed → latest time a cloud of that seed reached
        self._new_cloud(seed, None)

    def _new_cloud(self, seed: int, start: int | None) -> None:
        old = self.sim
        if old is not None:
            self.clocks[old.seed] = max(self.clocks.get(old.seed, old.clock_us), old.clock_us)
        if seed in self.clocks and start is not None and start <= self.clocks[seed]:
            self.reused_uuids = True
        self._stop_cloud()
        self.sim = self._make_sim(seed, start)
        self.syncers = self._make_syncers()
        self.synced = False

    def _make_normalizer(self) -> Any:
        return NovaNormalizer()

    def _make_sim(self, seed: int, start: int | None) -> SimCloud:
        return SimCloud(*self.shape, seed=seed, faults=attrs.evolve(self.faults), start_time_us=start)

    def _make_syncers(self) -> list[Snapshotter]:
        """The syncs of a full sync, run in this order: compute here."""
        # small pages and batches: operations land between a sync's pages and appends
        return [Snapshotter(self._reader(self.sim), self.log, clock=lambda: self.sim.clock_us, page_size=7,
                            batch=self.batch)]

    def _sync(self) -> Any:
        """One full sync (each of :meth:`_make_syncers`); each must succeed; the last result."""
        result = None
        for syncer in self.syncers:
            result = syncer.run_once()
            assert result.ok, (syncer.service, result.error)
        return result

    # how syncs read the cloud: in-process here; over HTTP in the integration variant
    def _reader(self, sim: SimCloud) -> Any:
        """What the Snapshotter reads: the sim itself."""
        return sim

    def _changing(self) -> contextlib.AbstractContextManager[Any]:
        """Held while the test changes the sim (the server's lock over HTTP)."""
        return contextlib.nullcontext()

    def _stop_cloud(self) -> None:
        """Called when a cloud is replaced and at teardown."""

    def teardown(self) -> None:
        self._stop_cloud()
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
        return diff_truth(self.sim.truth(), m.instances(), m.compute_nodes(), m.services(), m.aggregates())

    def _other_differences(self) -> list[str]:
        """The differences of the other services' models checked after a quiescent sync (none here)."""
        return []

    @rule(n=st.integers(1, 30))
    def operate(self, n: int) -> None:
        with self._changing():
            self._feed(self.sim.step(n))

    @rule(seed=st.integers(0, 10_000), same=st.booleans(), hours=st.integers(-30 * 24, 30 * 24))
    def another_cloud_takes_over_the_log(self, seed: int, same: bool, hours: int) -> None:
        """The log and the model stay; the cloud is replaced — by the same one restarted
        at another time (its versions may be older than the log's) or another one."""
        with self._changing():
            self.sim.flush()  # what the old cloud still held back is lost with it
        start = self.sim.clock_us + hours * 3600 * 1_000_000
        self._new_cloud(self.sim.seed if same else seed, start)
        self.switched = True

    @rule()
    def flush_delayed(self) -> None:
        with self._changing():
            self._feed(self.sim.flush())

    @rule(ops=st.integers(1, 4))
    def sync_while_operating(self, ops: int) -> None:
        """A full sync whose reads interleave with operations (and, on an unkind
        cloud, omit servers or list a down cell's minimal records). Over HTTP the
        operations run on the server's thread as it reads the sim for a request."""
        known = set(self.projection.latest().instances())
        ops_before = self.sim.counters["ops"]
        self.sim.during_listing = lambda: self._feed(self.sim.step(ops))
        try:
            self._sync()
        finally:
            self.sim.during_listing = None
        assert self.sim.counters["ops"] > ops_before, "no operation ran while the sync read"
        catch_up(self.projection, self.log)
        # A sync that reads while operations run repairs a state left by another
        # cloud only where nothing moved meanwhile: exactness waits for a quiescent one.
        self.synced = self.synced or not self.switched
        model = self.projection.latest().instances()
        truth = self.sim.truth().instances
        for u in self.sim.minimal_last_listing & known:
            if u in truth:
                assert u in model, f"{u} was listed as a minimal record and deleted from the model"

    @rule()
    def quiescent_sync(self) -> None:
        with self._changing():
            self._feed(self.sim.flush())
        with self.sim.quiescent():
            result = self._sync()
        catch_up(self.projection, self.log)
        self.synced = True
        self.switched = False
        assert self._differences() == []
        assert self._other_differences() == []
        assert node_status_differences(self.sim.truth(), self.projection.latest()) == []
        state = self.projection.state
        assert state.last_snapshot is not None and state.last_snapshot.snapshot_id == result.snapshot_id
        assert state.sync_error is None and not state.open_snapshots

    @precondition(lambda self: self.synced and not self.nova and not self.reused_uuids)
    @invariant()
    def a_kind_cloud_is_followed_exactly(self) -> None:
        assert [d for d in self._differences() if not d.startswith("service ")] == []

    @invariant()
    def no_record_was_rejected(self) -> None:
        if hasattr(self, "projection"):
            assert self.projection.state.rejected == 0, self.projection.state.last_rejected

    @precondition(lambda self: self.synced)
    @invariant()
    def replay_from_zero_gives_the_same_model(self) -> None:
        fresh = start(self.log)
        assert fresh.state.tables == self.projection.state.tables
        assert fresh.state.tombstones == self.projection.state.tombstones
        assert fresh.state.position == self.projection.state.position


CloudVersusModel.TestCase.settings = settings(max_examples=80, stateful_step_count=15, deadline=None)
TestCloudVersusModel = CloudVersusModel.TestCase


class CloudWithStorageAndBaremetalVersusModel(CloudVersusModel):
    """The same machine on a cloud with Cinder and Ironic (see the module docstring)."""

    def _make_normalizer(self) -> Any:
        return CompositeNormalizer()

    def _make_sim(self, seed: int, start: int | None) -> SimCloud:
        hosts, instances = self.shape
        return SimCloud(hosts, instances, seed=seed, faults=attrs.evolve(self.faults), start_time_us=start,
                        volumes=2 + seed % 20, storage_backends=1 + seed % 3, volume_rate=0.7,
                        baremetal=1 + seed % 5, baremetal_rate=0.5, baremetal_churn=0.25)

    def _make_syncers(self) -> list[Snapshotter]:
        clock = lambda: self.sim.clock_us  # noqa: E731
        out = super()._make_syncers()
        out.append(Snapshotter(SimStorageReader(self.sim), self.log, clock=clock, page_size=7, batch=self.batch,
                               service="storage"))
        out.append(Snapshotter(SimBaremetalReader(self.sim), self.log, clock=clock, page_size=3,
                               batch=self.batch, service="baremetal"))
        return out

    def _differences(self) -> list[str]:
        # Ironic notifies every change of a node: a kind cloud's nodes are followed exactly
        return super()._differences() + baremetal_differences(self.sim, self.projection.latest())

    def _other_differences(self) -> list[str]:
        return storage_differences(self.sim, self.projection.latest())


CloudWithStorageAndBaremetalVersusModel.TestCase.settings = settings(max_examples=30, stateful_step_count=12,
                                                                     deadline=None)
TestCloudWithStorageAndBaremetalVersusModel = CloudWithStorageAndBaremetalVersusModel.TestCase
