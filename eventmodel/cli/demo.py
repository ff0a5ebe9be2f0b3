"""``eventmodel demo``: simulated cloud → Nova notifications → normalizer → log → projection.

What it does, in order: opens the log; builds a simulated cloud (hosts, services,
instances already running); runs a full sync so the projection learns what exists;
runs a random operation mix for ``--duration`` seconds, its notifications going
through the normalizer onto the log (through RabbitMQ and the bridge with ``--bus``)
while a follower folds the log into the projection; runs a final full sync; and
compares the projection with the simulator's ground truth.
"""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.table import Table

from eventmodel.cli.common import console, err, fail, log_option
from eventmodel.clock import now_us
from eventmodel.log import EventLog, LogError, open_log
from eventmodel.sim.cloud import Faults, SimCloud, diff_truth
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.sync import Snapshotter
from projections.model import ClusterModel
from projections.projection import Follower, Projection, catch_up
from projections.replay import start

DEFAULT_LOG = "sqlite:///eventmodel-demo.db"


def _differences(truth: object, model: ClusterModel) -> list[str]:
    return diff_truth(truth, model.instances(), model.compute_nodes(), model.services())  # type: ignore[arg-type]


def _start_time(model: ClusterModel) -> int:
    """When the simulated clock starts: now, or after everything an earlier run left on
    the log (the simulator's clock runs ahead of the wall clock, one second per
    operation or more, and its pre-existing entities are dated up to a week back)."""
    newest = 0
    for kind, table in model.state.tables.items():
        for ent in table.values():
            newest = max(newest, ent.version)
    for table in model.state.tombstones.values():
        for version in table.values():
            newest = max(newest, version)
    return max(now_us(), newest + 8 * 24 * 3600 * 1_000_000)


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
        drop: float = typer.Option(0.02, "--drop", min=0, max=1, help="Share of notifications lost."),
        duplicate: float = typer.Option(0.01, "--duplicate", min=0, max=1),
        delay: float = typer.Option(0.01, "--delay", min=0, max=1),
        reorder: float = typer.Option(0.01, "--reorder", min=0, max=1),
        ops_per_batch: int = typer.Option(100, "--batch", min=1, help="Operations per log append."),
    ) -> None:
        """Run the whole pipeline on a simulated cloud and check the model against ground truth."""
        try:
            lg = open_log(log)
        except LogError as exc:
            raise fail(str(exc)) from None
        console.print(f"[bold]eventmodel demo[/] log={lg.url} partitions={lg.partitions()} "
                      f"hosts={hosts} instances={instances} duration={duration:g}s seed={seed}")
        before = lg.end()
        if before.total:
            console.print(f"  the log already holds {before.total:,} records; the model starts from them "
                          "and the full syncs reconcile it with this run's cloud")

        projection = start(lg)
        t0 = time.perf_counter()
        sim = SimCloud(hosts, instances, seed=seed, start_time_us=_start_time(projection.latest()),
                       faults=Faults(drop=drop, duplicate=duplicate, delay=delay, reorder=reorder))
        console.print(f"  built the simulated cloud in {time.perf_counter() - t0:.1f}s")
        follower = Follower(lg, projection).start()
        feed = _DirectFeed(lg)
        bridge = None
        if bus:
            from eventmodel.cli.demo_amqp import AmqpFeed

            feed = AmqpFeed(lg, bus)  # type: ignore[assignment]
            bridge = feed
        syncer = Snapshotter(sim, lg, source="demo-sync", clock=lambda: sim.clock_us)
        try:
            first = syncer.run_once()
            if not first.ok:
                raise fail(f"initial full sync failed: {first.error}", code=1)
            console.print(f"  initial full sync: {first.counts}")

            ops = 0
            t_start = time.perf_counter()
            with err.status("running operations") as status:
                while time.perf_counter() - t_start < duration:
                    feed.send(sim.step(ops_per_batch))
                    ops += ops_per_batch
                    el = time.perf_counter() - t_start
                    status.update(f"{ops:,} operations, {feed.events:,} events, {feed.events / el:,.0f} events/s")
                feed.send(sim.flush())
                feed.drain(timeout=60)
            streamed = time.perf_counter() - t_start

            # Before the final sync: how wrong did lost notifications leave the model?
            lag_end = lg.end()
            model = projection.wait_for(lambda m: m.position.covers(lag_end), timeout=120)
            wrong_before = _differences(sim.truth(), model)

            final = syncer.run_once()
            if not final.ok:
                raise fail(f"final full sync failed: {final.error}", code=1)
            end = lg.end()
            model = projection.wait_for(lambda m: m.position.covers(end), timeout=120)
        finally:
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
        t.add_row("operations", f"{ops:,} in {streamed:.1f}s")
        t.add_row("notifications", f"{c.get('notifications', 0):,} emitted, {c.get('dropped', 0):,} dropped, "
                  f"{c.get('duplicated', 0):,} duplicated, {c.get('delayed', 0):,} delayed, "
                  f"{c.get('reordered', 0):,} reordered")
        t.add_row("events appended", f"{feed.events:,} ({feed.events / streamed:,.0f} events/s), "
                  f"{feed.irrelevant:,} irrelevant, {feed.dead:,} dead-lettered")
        t.add_row("log", f"{lg.url} at position {end}")
        t.add_row("model before final sync", f"{len(wrong_before):,} differences from ground truth")
        t.add_row("drift found by final sync",
                  f"{snap.corrected:,} corrected ({snap.deleted:,} deleted)" if snap else "-")
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
