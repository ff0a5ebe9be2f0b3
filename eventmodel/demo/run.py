"""The demo's run, step by step (:class:`DemoRun`).

What it does, in order: builds a simulated cloud (hosts, services, instances already
running) whose clock starts at the wall clock now, and serves its Keystone, Nova and
Placement APIs on a free loopback port (``SimServer``); runs a full sync so the
projection learns what exists — over HTTP through openstacksdk, as in production —
while operations run between its API reads; runs a random operation mix for
``duration`` seconds, its notifications going through the normalizer onto the log
(through RabbitMQ and the bridge with ``bus``) while a follower folds the log into the
projection; runs a second busy full sync the same way; then one quiescent full sync (no
operations, no listing faults) and compares the projection with the simulator's ground
truth; last, replays the whole log from zero into a second projection.

With volumes (``DemoConfig.volumes``, one per two instances by default) the cloud also
runs a simulated Cinder: its API is served beside Nova's, every full sync is followed
by a storage sync of the same connection (a Snapshotter of its own), its notifications go
through the same feed (normalized wherever a Cinder normalizer is installed), and the
report compares the storage model (nodes, pools, volume types, volumes) with the
sim's storage truth beside compute.

A log that already holds records (an earlier run's, whose versions are from another
cloud) is where the model starts: the full syncs must repair it.

Threads: the API is served on a thread of its own, which holds the sim's lock
(``srv.lock``) while it reads the sim; the run changes the sim only under that lock.
Operations that run while a sync reads (``during_listing``) run on the server's
thread, inside the read of a page, and send their notifications from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from eventmodel.clock import now_us
from eventmodel.errors import SimError
from eventmodel.log import EventLog, Position
from eventmodel.demo.feeds import DirectFeed, Feed, live_events
from eventmodel.demo.report import DemoReport, SyncRound
from eventmodel.demo.watch import DemoWatch
from eventmodel.sim.cloud import SimCloud, baremetal_differences, diff_truth, storage_differences
from eventmodel.sim.faults import Faults
from eventmodel.sim.server import SimServer
from eventmodel.sources.openstack import OpenStackReader
from eventmodel.sources.plugins import CompositeNormalizer
from eventmodel.sources.baremetal_sync import IronicReader
from eventmodel.sources.storage_sync import CinderReader
from eventmodel.sources.sync import Snapshotter, SyncResult, merge_results
from projections.model import ClusterModel
from projections.projection import Follower, Projection, catch_up
from projections.replay import start
from projections.state import SnapshotResult

#: seconds to wait for the bridge to acknowledge, and for the projection to reach the log's end
DRAIN_S, CATCH_UP_S = 60, 120


class DemoFailed(SimError):
    """A step of the demo failed: its API could not be served (``step`` "serve") or a
    full sync failed (``step`` "sync")."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


@attrs.frozen
class DemoConfig:
    """How big a cloud, for how long, how unkind, and where its notifications go."""

    hosts: int = 20
    instances: int = 400
    duration: float = 10.0
    seed: int = 1
    faults: Faults = attrs.field(factory=Faults.nova_like)
    #: operations between two API reads of a busy sync (0: none)
    sync_ops: int = 3
    #: operations per log append
    ops_per_batch: int = 100
    #: deliver what is held back while the quiescent sync reads (else flush it before)
    late_during_sync: bool = True
    #: amqp:// URL: through RabbitMQ and the bridge instead of straight onto the log
    bus: str | None = None
    #: volumes at the start (None: one per two instances; 0: a cloud without Cinder)
    volumes: int | None = None
    #: Ironic's bare-metal nodes (0: a cloud without Ironic)
    baremetal: int = 4

    @property
    def volume_count(self) -> int:
        return self.instances // 2 if self.volumes is None else self.volumes


class DemoRun:
    """One demo run on ``log``; :meth:`run` performs its steps and returns the report.

    What the steps find is kept on the run until :meth:`report` gathers it."""

    srv: SimServer
    syncer: Snapshotter
    #: the storage sync that follows each compute sync (None: the cloud has no volumes)
    storage_syncer: Snapshotter | None = None
    #: the baremetal sync that follows the storage sync (None: the cloud has no bare-metal nodes)
    baremetal_syncer: Snapshotter | None = None
    #: operations of the timed run and its seconds (:meth:`operate`)
    ops: int
    streamed_s: float
    #: differences from the truth before the final sync and after it (:meth:`run`)
    wrong_before: tuple[str, ...]
    wrong_between: tuple[str, ...]
    #: what the busy final sync corrected (:meth:`after_busy_sync`)
    busy_drift: SnapshotResult | None
    #: the log's end once the quiescent sync ended, and the model there
    end: Position
    model: ClusterModel

    def __init__(self, config: DemoConfig, log: EventLog, watch: DemoWatch | None = None) -> None:
        self.config, self.log, self.watch = config, log, watch or DemoWatch()
        self.before = log.end()
        self.syncs: list[SyncRound] = []
        self.late = {"delivered": 0, "live": 0}
        #: per sync: what its compute part and its storage part corrected (with volumes)
        self.drifts: dict[str, SnapshotResult | None] = {}
        self.storage_drifts: dict[str, SnapshotResult | None] = {}
        self.judge = CompositeNormalizer.from_entry_points()  # counts which late notifications change an entity
        self.follower: Follower | None = None
        self.feed: Feed | None = None
        self.projection: Projection | None = None
        self.sim: SimCloud | None = None

    def run(self) -> DemoReport:
        """Every step in order; raises :class:`DemoFailed` when one fails."""
        self.projection = start(self.log)
        built_s = self.build()
        self.serve()
        try:
            self.connect()
            self.watch.cloud_ready(built_s, self.srv.url)
            self.sync("initial full sync")
            self.operate()
            self.wrong_before = self.compare(self.settle())
            self.sync("final full sync")
            self.wrong_between = self.compare(self.after_busy_sync())
            self.quiescent_sync()
            self.end = self.log.end()
            self.model = self.caught_up(self.end)
        finally:
            self.stop()
        return self.report()

    # -- setting up ------------------------------------------------------------
    def build(self) -> float:
        """The simulated cloud, its clock starting now; the seconds it took."""
        c = self.config
        t0 = time.perf_counter()
        self.sim = SimCloud(c.hosts, c.instances, seed=c.seed, start_time_us=now_us(), faults=c.faults,
                            volumes=c.volume_count, baremetal=c.baremetal)
        return time.perf_counter() - t0

    def serve(self) -> None:
        """Serve the cloud's Keystone, Nova and Placement APIs on a loopback port."""
        self.srv = SimServer(self.sim, token_ttl_s=3600)
        try:
            self.srv.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise DemoFailed(f"cannot serve the simulated cloud's API: {exc}", "serve") from None

    def connect(self) -> None:
        """The reader over HTTP, the follower, the feed, the syncer; operations while it reads."""
        sim = self.sim
        reader = OpenStackReader.connect(None, timeout=60, **self.srv.auth_args())
        self.follower = Follower(self.log, self.projection).start()
        if self.config.bus:
            from eventmodel.demo.amqp import AmqpFeed

            self.feed = AmqpFeed(self.log, self.config.bus)
        else:
            self.feed = DirectFeed(self.log)
        self.syncer = Snapshotter(reader, self.log, source="demo-sync", clock=lambda: sim.clock_us)
        if sim.cinder is not None:
            # the same connection reads Cinder: one more snapshot per sync, of the storage kinds
            self.storage_syncer = Snapshotter(CinderReader(reader), self.log, source="demo-sync-storage",
                                              clock=lambda: sim.clock_us, service="storage")
        if sim.ironic is not None:
            # and Ironic: one more snapshot per sync, of the baremetal kinds
            self.baremetal_syncer = Snapshotter(IronicReader(reader), self.log, source="demo-sync-baremetal",
                                                clock=lambda: sim.clock_us, service="baremetal")
        if self.config.sync_ops:
            # operations start and finish while a full sync reads, their notifications
            # reaching the log between the sync's observations; this runs on the
            # server's thread, under the sim's lock, as it reads the sim for a request
            sim.during_listing = lambda: self.feed.send(sim.step(self.config.sync_ops))

    def stop(self) -> None:
        """Stop what :meth:`serve` and :meth:`connect` started."""
        self.sim.during_listing = None
        self.srv.stop()
        if self.follower is not None:
            self.follower.stop()
        if self.feed is not None:
            self.feed.close()

    # -- the steps -------------------------------------------------------------
    def sync(self, what: str) -> SyncResult:
        """One full sync; the round is recorded and told to the watch."""
        ops_before = self.sim.counters["ops"]
        result = self.syncer.run_once()
        results, services = [result], ["compute"]
        if self.storage_syncer is not None or self.baremetal_syncer is not None:
            # what the compute sync corrected, before a later sync's report replaces it
            self.drifts[what] = self.caught_up(self.log.end()).last_snapshot
        if self.storage_syncer is not None:
            results.append(self.storage_syncer.run_once())
            services.append("storage")
            self.storage_drifts[what] = self.caught_up(self.log.end()).last_snapshot
        if self.baremetal_syncer is not None:
            results.append(self.baremetal_syncer.run_once())
            services.append("baremetal")
        result = merge_results(results, services)
        if not result.ok:
            raise DemoFailed(f"{what} failed: {result.error}", "sync")
        done = SyncRound(what, result, self.sim.counters["ops"] - ops_before,
                         len(self.sim.omitted_last_listing), len(self.sim.minimal_last_listing))
        self.syncs.append(done)
        self.watch.synced(done)
        return result

    def operate(self) -> None:
        """The random operation mix for ``duration`` seconds, a batch per append."""
        sim, feed = self.sim, self.feed
        t_start = time.perf_counter()
        ops_before = sim.counters["ops"]
        with self.watch.operating() as update:
            while time.perf_counter() - t_start < self.config.duration:
                with self.srv.lock:
                    feed.send(sim.step(self.config.ops_per_batch))
                update(sim.counters["ops"] - ops_before, feed.events, time.perf_counter() - t_start)
        self.streamed_s = time.perf_counter() - t_start
        self.ops = sim.counters["ops"] - ops_before

    def settle(self) -> ClusterModel:
        """Every held notification delivered (delayed, redelivered) and folded."""
        with self.srv.lock:
            self.feed.send(self.sim.flush())
        self.feed.drain(timeout=DRAIN_S)
        return self.caught_up(self.log.end())

    def after_busy_sync(self) -> ClusterModel:
        """The model after the busy final sync: what is held back stays held until the
        quiescent sync reads (or, with ``late_during_sync`` off, is delivered now)."""
        if not self.config.late_during_sync:
            model = self.settle()
        else:
            self.feed.drain(timeout=DRAIN_S)
            model = self.caught_up(self.log.end())
        self.busy_drift = self.drifts.get("final full sync", model.last_snapshot)
        return model

    def quiescent_sync(self) -> SyncResult:
        """A full sync with no operation running; the held-back notifications, if
        ``late_during_sync``, delivered in three parts while it reads."""
        sim = self.sim
        with self.srv.lock:
            backlog = sim.held
        with sim.quiescent():  # no operation runs while it reads
            if self.config.late_during_sync and backlog:
                sim.during_listing = self._late_delivery(-(-backlog // 3))
            return self.sync("quiescent full sync")

    def _late_delivery(self, chunk: int) -> Callable[[], None]:
        def deliver_late() -> None:  # on the server's thread, under the sim's lock
            if self.sim.held:
                sent = self.sim.release(chunk)
                self.late["delivered"] += len(sent)
                self.late["live"] += live_events(self.judge, sent)
                self.feed.send(sent)
                self.feed.drain(timeout=DRAIN_S)  # on the log before the answer, as a fast bridge
        return deliver_late

    # -- checking --------------------------------------------------------------
    def caught_up(self, end: Position) -> ClusterModel:
        """The projection's model once it covers ``end``."""
        return self.projection.wait_for(lambda m: m.position.covers(end), timeout=CATCH_UP_S)

    def compare(self, model: ClusterModel) -> tuple[str, ...]:
        """The model's differences from the simulator's ground truth now (compute, storage, baremetal)."""
        with self.srv.lock:
            return (_differences(self.sim, model) + tuple(storage_differences(self.sim, model))
                    + tuple(baremetal_differences(self.sim, model)))

    def replay(self) -> tuple[float, bool]:
        """A second, independent replay from zero: its seconds and whether it gives the same model."""
        replayed = Projection(partitions=self.log.partitions())
        t1 = time.perf_counter()
        catch_up(replayed, self.log, self.end)
        return time.perf_counter() - t1, replayed.state.tables == self.model.state.tables

    def report(self) -> DemoReport:
        """Replay from zero, compare with the truth, and gather the findings."""
        replay_s, same = self.replay()
        sim, feed = self.sim, self.feed
        truth = sim.truth()
        storage = sim.storage_truth()
        return DemoReport(
            log_url=self.log.url, before=self.before, end=self.end, hosts_now=len(truth.nodes),
            instances_now=len(truth.instances), ops=self.ops, streamed_s=self.streamed_s,
            counters=dict(sim.counters), skewed_hosts=sum(1 for h in sim.hosts if sim.skew_of(h)),
            syncs=tuple(self.syncs), events=feed.events, irrelevant=feed.irrelevant, dead=feed.dead,
            wrong_before=self.wrong_before, wrong_between=self.wrong_between, busy_drift=self.busy_drift,
            quiet_drift=self.drifts.get("quiescent full sync", self.model.last_snapshot),
            late_during_sync=self.config.late_during_sync,
            late_delivered=self.late["delivered"], late_live=self.late["live"], replay_s=replay_s,
            same_replay=same, differences=_differences(sim, self.model),
            storage=sim.cinder is not None, volumes_now=len(storage.volumes), pools_now=len(storage.pools),
            storage_nodes_now=len(storage.nodes),
            storage_differences=tuple(storage_differences(sim, self.model)),
            storage_drift=self.storage_drifts.get("final full sync"),
            baremetal=sim.ironic is not None, baremetal_nodes_now=len(sim.baremetal_truth()),
            baremetal_differences=tuple(baremetal_differences(sim, self.model)))


def _differences(sim: SimCloud, model: ClusterModel) -> tuple[str, ...]:
    return tuple(diff_truth(sim.truth(), model.instances(), model.compute_nodes(),  # type: ignore[arg-type]
                            model.services()))


def run_demo(config: DemoConfig, log: EventLog, watch: DemoWatch | None = None) -> DemoReport:
    """Run the demo on ``log`` and return what it found."""
    return DemoRun(config, log, watch).run()
