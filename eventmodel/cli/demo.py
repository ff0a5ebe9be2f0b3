"""``eventmodel demo``: simulated cloud → Nova notifications → normalizer → log → projection.

What it does, in order: opens the log; builds a simulated cloud (hosts, services,
instances already running) whose clock starts at the wall clock now, and serves its
Keystone, Nova and Placement APIs on a free loopback port (``SimServer``); runs a full
sync so the projection learns what exists — over HTTP through openstacksdk, as in
production — while operations run between its API reads; runs a random operation mix for ``--duration`` seconds, its notifications
going through the normalizer onto the log (through RabbitMQ and the bridge with
``--bus``) while a follower folds the log into the projection; runs a second busy
full sync the same way; then one quiescent full sync (no operations, no listing
faults) and compares the projection with the simulator's ground truth.

The cloud is as unkind as Nova by default (``Faults.nova_like()``): each rate can be
set, and ``--kind-cloud`` turns every fault and quirk off. A second run in the same
folder starts from the first run's log, whose versions are from another cloud: the
full syncs must repair it.

Threads: the API is served on a thread of its own, which holds the sim's lock
(``srv.lock``) while it reads the sim; the demo changes the sim only under that lock.
Operations that run while a sync reads (``during_listing``) run on the server's
thread, inside the read of a page, and send their notifications from there.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Optional

import attrs
import typer
from rich.table import Table

from eventmodel.cli.common import console, err, fail, log_option, require_extra
from eventmodel.clock import now_us
from eventmodel.log import EventLog, LogError, open_log
from eventmodel.sim.cloud import SimCloud, diff_truth
from eventmodel.sim.faults import Faults
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.sync import Snapshotter, SyncResult
from projections.model import ClusterModel
from projections.projection import Follower, Projection, catch_up
from projections.replay import start

DEFAULT_LOG = "sqlite:///eventmodel-demo.db"


def _differences(truth: object, model: ClusterModel) -> list[str]:
    return diff_truth(truth, model.instances(), model.compute_nodes(), model.services())  # type: ignore[arg-type]


def _faults(kind_cloud: bool, **rates: object) -> Faults:
    """Nova-like faults (or none with ``kind_cloud``), with the rates given on the command line."""
    base = Faults.kind() if kind_cloud else Faults.nova_like()
    given = {k: v for k, v in rates.items() if v is not None}
    try:
        return attrs.evolve(base, **given)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _sync(syncer: Snapshotter, what: str) -> SyncResult:
    result = syncer.run_once()
    if not result.ok:
        raise fail(f"{what} failed: {result.error}", code=1)
    return result


def _http_line(result: SyncResult) -> str:
    """Requests by service and wall time of one sync, e.g. ``31 requests (compute 6,
    identity 2, placement 23) in 0.41s``."""
    by = ", ".join(f"{k} {v:,}" for k, v in sorted(result.requests.items()))
    line = f"{sum(result.requests.values()):,} requests ({by or '-'}) in {result.wall_s:.2f}s"
    if result.rounds:
        line += f"; {result.rounds} follow-up round(s) re-read {result.rechecked:,} entities live records touched"
    if result.unsettled:
        line += f", {result.unsettled:,} still contested"
    return line


def _live_events(normalizer: NovaNormalizer, notifications: list[bytes]) -> int:
    """How many events of ``notifications`` create, change or delete an entity (the ones
    a sync's follow-up rounds re-read; start notifications and the like change nothing)."""
    n = 0
    for raw in notifications:
        out = normalizer.normalize(raw, recorded_at=0)
        if out.status == "events":
            n += sum(1 for e in out.events if getattr(e.payload, "EFFECT", None) in ("upsert", "delete"))
    return n


class _DirectFeed:
    """Notifications → normalizer → log, in this process (the embedded path)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.normalizer = NovaNormalizer()
        self.events = 0
        self.dead = 0
        self.irrelevant = 0

    def send(self, notifications: list[bytes]) -> None:
        envelopes = []
        letters = []
        now = now_us()
        for raw in notifications:
            out = self.normalizer.normalize(raw, recorded_at=now)
            if out.status == "events":
                envelopes.extend(out.events)
            elif out.status == "dead":
                letters.append(self.normalizer.dead_letter(raw, out, source="demo"))
            else:
                self.irrelevant += 1
        self.log.append(envelopes)
        self.log.append_dead_letters(letters)
        self.events += len(envelopes)
        self.dead += len(letters)

    def drain(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        return None


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        hosts: int = typer.Option(20, "--hosts", min=1, help="Compute hosts in the simulated cloud."),
        instances: int = typer.Option(400, "--instances", min=0, help="Instances running at the start."),
        duration: float = typer.Option(10.0, "--duration", min=0.1, help="Seconds of simulated operations."),
        log: str = log_option(DEFAULT_LOG),
        bus: Optional[str] = typer.Option(None, "--bus", envvar="EVENTMODEL_AMQP_URL",
                                          help="amqp://user:pass@host:5672/ — go through RabbitMQ and the bridge."),
        seed: int = typer.Option(1, "--seed"),
        kind_cloud: bool = typer.Option(False, "--kind-cloud/--nova-quirks",
                                        help="Turn every fault and Nova quirk off (default: as unkind as Nova)."),
        drop: Optional[float] = typer.Option(None, "--drop", min=0, max=1, help="Share of notifications lost."),
        duplicate: Optional[float] = typer.Option(None, "--duplicate", min=0, max=1,
                                                  help="Share delivered twice in a row."),
        delay: Optional[float] = typer.Option(None, "--delay", min=0, max=1, help="Share delivered a few later."),
        reorder: Optional[float] = typer.Option(None, "--reorder", min=0, max=1,
                                                help="Share swapped with the next."),
        redeliver: Optional[float] = typer.Option(None, "--redeliver", min=0, max=1,
                                                  help="Share delivered again 100..1000 notifications later."),
        null_updated_at: Optional[float] = typer.Option(None, "--null-updated-at", min=0, max=1,
                                                        help="Share of boots whose first notifications have "
                                                             "updated_at null."),
        clock_skew: Optional[float] = typer.Option(None, "--clock-skew", min=0, max=1,
                                                   help="Share of compute hosts whose clock is off."),
        max_skew: Optional[int] = typer.Option(None, "--max-skew", min=0, help="Largest clock offset, seconds."),
        omit: Optional[float] = typer.Option(None, "--omit", min=0, max=1,
                                             help="Chance a server is missing from a busy sync's listing."),
        down_cell: Optional[float] = typer.Option(None, "--down-cell", min=0, max=1,
                                                  help="Chance a busy sync finds one cell down (minimal records)."),
        empty_az: Optional[bool] = typer.Option(None, "--empty-az/--null-az",
                                                help="The API shows '' for no zone (Nova) or null."),
        sync_ops: Optional[int] = typer.Option(None, "--sync-ops", min=0,
                                               help="Operations between two API reads of a busy sync "
                                                    "(default 3; 0 with --kind-cloud)."),
        ops_per_batch: int = typer.Option(100, "--batch", min=1, help="Operations per log append."),
        late_during_sync: bool = typer.Option(
            True, "--late-during-sync/--flush-before-sync",
            help="Deliver the notifications still held back (delayed, to be redelivered) while the quiescent "
                 "sync reads, as a RabbitMQ backlog would, instead of before it."),
    ) -> None:
        """Run the whole pipeline on a simulated cloud and check the model against ground truth."""
        require_extra("sim", "openstack", "starlette", "uvicorn", "yaml", what="eventmodel demo")
        from eventmodel.sim.server import SimServer
        from eventmodel.sources.openstack import OpenStackReader

        faults = _faults(kind_cloud, drop=drop, duplicate=duplicate, delay=delay, reorder=reorder,
                         redeliver=redeliver, null_updated_at=null_updated_at, clock_skew=clock_skew,
                         max_skew_s=max_skew, omit=omit, down_cell=down_cell, empty_az=empty_az)
        busy_ops = sync_ops if sync_ops is not None else (0 if kind_cloud else 3)
        try:
            lg = open_log(log)
        except LogError as exc:
            raise fail(str(exc)) from None
        console.print(f"[bold]eventmodel demo[/] log={lg.url} partitions={lg.partitions()} "
                      f"hosts={hosts} instances={instances} duration={duration:g}s seed={seed} "
                      f"cloud={'kind' if kind_cloud else 'as unkind as Nova'}")
        before = lg.end()
        if before.total:
            console.print(f"  the log already holds {before.total:,} records; the model starts from them "
                          "and the full syncs reconcile it with this run's cloud")

        projection = start(lg)
        t0 = time.perf_counter()
        sim = SimCloud(hosts, instances, seed=seed, start_time_us=now_us(), faults=faults)
        console.print(f"  built the simulated cloud in {time.perf_counter() - t0:.1f}s")
        srv = SimServer(sim, token_ttl_s=3600)
        try:
            srv.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            lg.close()
            raise fail(f"cannot serve the simulated cloud's API: {exc}") from None
        follower = feed = bridge = None
        syncs: list[SyncResult] = []
        try:
            reader = OpenStackReader.connect(None, timeout=60, **srv.auth_args())
            console.print(f"  serving its Keystone, Nova and Placement APIs at {srv.url}; "
                          "full syncs read them through openstacksdk")
            follower = Follower(lg, projection).start()
            feed = _DirectFeed(lg)
            if bus:
                from eventmodel.cli.demo_amqp import AmqpFeed

                feed = bridge = AmqpFeed(lg, bus)  # type: ignore[assignment]
            syncer = Snapshotter(reader, lg, source="demo-sync", clock=lambda: sim.clock_us)
            if busy_ops:
                # operations start and finish while a full sync reads, their notifications
                # reaching the log between the sync's observations; this runs on the
                # server's thread, under the sim's lock, as it reads the sim for a request
                sim.during_listing = lambda: feed.send(sim.step(busy_ops))
            listing = {"omitted": 0, "minimal": 0}
            late = {"delivered": 0, "live": 0}
            judge = NovaNormalizer()  # counts which late notifications change an entity

            def run_sync(what: str) -> SyncResult:
                ops_before = sim.counters["ops"]
                result = _sync(syncer, what)
                syncs.append(result)
                omitted, minimal = len(sim.omitted_last_listing), len(sim.minimal_last_listing)
                listing["omitted"] += omitted
                listing["minimal"] += minimal
                console.print(f"  {what}: {result.counts}, {sim.counters['ops'] - ops_before:,} operations "
                              f"while it read, {omitted:,} servers omitted, {minimal:,} minimal records; "
                              f"{_http_line(result)}", soft_wrap=True)  # one line, however wide
                return result

            def settle() -> ClusterModel:
                """Every held notification delivered (delayed, redelivered) and folded."""
                with srv.lock:
                    feed.send(sim.flush())
                feed.drain(timeout=60)
                lag_end = lg.end()
                return projection.wait_for(lambda m: m.position.covers(lag_end), timeout=120)

            run_sync("initial full sync")

            t_start = time.perf_counter()
            ops_before = sim.counters["ops"]
            with err.status("running operations") as status:
                while time.perf_counter() - t_start < duration:
                    with srv.lock:
                        feed.send(sim.step(ops_per_batch))
                    el = time.perf_counter() - t_start
                    status.update(f"{sim.counters['ops'] - ops_before:,} operations, {feed.events:,} events, "
                                  f"{feed.events / el:,.0f} events/s")
            streamed = time.perf_counter() - t_start
            ops = sim.counters["ops"] - ops_before

            # Before the final syncs: how wrong did lost notifications leave the model?
            model = settle()
            with srv.lock:
                wrong_before = _differences(sim.truth(), model)

            # the final sync reads while operations run; one more, quiescent, follows it
            run_sync("final full sync")
            if late_during_sync:  # what is held back stays held until the quiescent sync reads
                feed.drain(timeout=60)
                final_end = lg.end()
                model = projection.wait_for(lambda m: m.position.covers(final_end), timeout=120)
            else:
                model = settle()
            busy_drift = model.last_snapshot
            with srv.lock:
                wrong_between = _differences(sim.truth(), model)
                backlog = sim.held
            with sim.quiescent():  # no operation runs while it reads
                if late_during_sync and backlog:
                    chunk = -(-backlog // 3)

                    def deliver_late() -> None:  # on the server's thread, under the sim's lock
                        if sim.held:
                            late["delivered"] += len(sent := sim.release(chunk))
                            late["live"] += _live_events(judge, sent)
                            feed.send(sent)
                            feed.drain(timeout=60)  # on the log before the answer, as a fast bridge

                    sim.during_listing = deliver_late
                quiet = run_sync("quiescent full sync")
            end = lg.end()
            model = projection.wait_for(lambda m: m.position.covers(end), timeout=120)
        finally:
            sim.during_listing = None
            srv.stop()
            if follower is not None:
                follower.stop()
            if bridge is not None:
                bridge.close()

        # A second, independent replay from zero must give the same model.
        replayed = Projection(partitions=lg.partitions())
        t1 = time.perf_counter()
        catch_up(replayed, lg, end)
        replay_s = time.perf_counter() - t1
        same_replay = replayed.state.tables == model.state.tables

        truth = sim.truth()
        differences = _differences(truth, model)
        c = sim.counters
        snap = model.last_snapshot
        t = Table(title="demo summary", show_header=False)
        t.add_row("hosts / instances now", f"{len(truth.nodes):,} / {len(truth.instances):,}")
        t.add_row("operations", f"{ops:,} in {streamed:.1f}s, {c['ops'] - ops:,} more while the syncs read")
        t.add_row("notifications", f"{c.get('notifications', 0):,} emitted, {c.get('dropped', 0):,} dropped, "
                  f"{c.get('duplicated', 0):,} duplicated, {c.get('delayed', 0):,} delayed, "
                  f"{c.get('reordered', 0):,} reordered, {c.get('redelivered', 0):,} redelivered far later")
        skewed = sum(1 for h in sim.hosts if sim.skew_of(h))
        t.add_row("Nova quirks", f"{c.get('null_updated_at_boots', 0):,} boots with updated_at null, "
                  f"{skewed:,} hosts with a skewed clock, {listing['omitted']:,} servers omitted and "
                  f"{listing['minimal']:,} minimal records in busy syncs")
        t.add_row("events appended", f"{feed.events:,} ({feed.events / streamed:,.0f} events/s), "
                  f"{feed.irrelevant:,} irrelevant, {feed.dead:,} dead-lettered")
        requests = sum((Counter(r.requests) for r in syncs), Counter())
        t.add_row("full syncs over HTTP", f"{len(syncs)} through openstacksdk: {sum(requests.values()):,} requests ("
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items()))
                  + f") in {sum(r.wall_s for r in syncs):.2f}s")
        t.add_row("log", f"{lg.url} at position {end}")
        t.add_row("model before final sync", f"{len(wrong_before):,} differences from ground truth")
        t.add_row("drift found by final sync", (
            f"{busy_drift.corrected:,} corrected ({busy_drift.deleted:,} deleted) while operations ran, "
            f"leaving {len(wrong_between):,} differences; " if busy_drift else "") + (
            f"{snap.corrected:,} corrected ({snap.deleted:,} deleted) by a quiescent one" if snap else "-"))
        t.add_row("held back until the last sync", (
            f"{late['delivered']:,} notifications ({late['live']:,} changing an entity) delivered while the "
            f"quiescent sync read; "
            f"{quiet.rounds} follow-up round(s) re-read {quiet.rechecked:,} entities they touched"
            + (f", {quiet.unsettled:,} still contested" if quiet.unsettled else ""))
            if late_during_sync else "flushed before the quiescent sync (--flush-before-sync)")
        t.add_row("replay from zero", f"{end.total - before.total:,} new records, whole log in {replay_s:.2f}s "
                  f"({end.total / replay_s:,.0f} records/s), same model: {'yes' if same_replay else 'NO'}")
        t.add_row("projection equals ground truth", "[bold green]YES[/]" if not differences else
                  f"[bold red]NO[/] ({len(differences)} differences)")
        console.print(t)
        for line in differences[:20]:
            console.print(f"  {line}")
        lg.close()
        if differences or not same_replay:
            raise typer.Exit(1)
