"""``eventmodel demo``: simulated cloud → Nova notifications → normalizer → log → projection.

This module parses the options and prints; the run itself is
:class:`eventmodel.demo.run.DemoRun` (what it does, in order, is told there), which
returns a :class:`eventmodel.demo.report.DemoReport` printed here as the summary table.

The cloud is as unkind as Nova by default (``Faults.nova_like()``): each rate can be
set, and ``--kind-cloud`` turns every fault and quirk off. A second run in the same
folder starts from the first run's log, whose versions are from another cloud: the
full syncs must repair it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Optional

import attrs
import typer
from rich.table import Table

from eventmodel.cli.common import console, err, fail, log_option, require_extra
from eventmodel.demo.report import DemoReport, SyncRound
from eventmodel.demo.watch import DemoWatch
from eventmodel.log import EventLog, LogError, open_log
from eventmodel.sim.faults import Faults
from eventmodel.sources.sync import SyncResult

if TYPE_CHECKING:
    from eventmodel.demo.run import DemoConfig

DEFAULT_LOG = "sqlite:///eventmodel-demo.db"


def _faults(kind_cloud: bool, **rates: object) -> Faults:
    """Nova-like faults (or none with ``kind_cloud``), with the rates given on the command line."""
    base = Faults.kind() if kind_cloud else Faults.nova_like()
    given = {k: v for k, v in rates.items() if v is not None}
    try:
        return attrs.evolve(base, **given)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _by_service(requests: dict[str, int]) -> str:
    """``compute 6, identity 2, …``: the services in name order, baremetal last (it came
    last: the lines read as they did before it)."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items(), key=lambda kv: (kv[0] == "baremetal", kv[0])))


def _http_line(result: SyncResult) -> str:
    """Requests by service and wall time of one sync, e.g. ``31 requests (compute 6,
    identity 2, placement 23) in 0.41s``."""
    by = _by_service(result.requests)
    line = f"{sum(result.requests.values()):,} requests ({by or '-'}) in {result.wall_s:.2f}s"
    if result.rounds:
        line += f"; {result.rounds} follow-up round(s) re-read {result.rechecked:,} entities live records touched"
    if result.unsettled:
        line += f", {result.unsettled:,} still contested"
    return line


class _Narrator(DemoWatch):
    """Prints the run's progress lines as they happen."""

    def cloud_ready(self, built_s: float, url: str) -> None:
        console.print(f"  built the simulated cloud in {built_s:.1f}s")
        console.print(f"  serving its Keystone, Nova, Placement (and Cinder) APIs at {url}; "
                      "full syncs read them through openstacksdk")

    def synced(self, sync: SyncRound) -> None:
        console.print(f"  {sync.what}: {sync.result.counts}, {sync.ops_while:,} operations "
                      f"while it read, {sync.omitted:,} servers omitted, {sync.minimal:,} minimal records; "
                      f"{_http_line(sync.result)}", soft_wrap=True)  # one line, however wide

    @contextlib.contextmanager
    def operating(self) -> Iterator[Callable[[int, int, float], None]]:
        with err.status("running operations") as status:
            yield lambda ops, events, el: status.update(
                f"{ops:,} operations, {events:,} events, {events / el:,.0f} events/s")


def _header(lg: EventLog, config: DemoConfig, kind_cloud: bool) -> None:
    console.print(f"[bold]eventmodel demo[/] log={lg.url} partitions={lg.partitions()} "
                  f"hosts={config.hosts} instances={config.instances} duration={config.duration:g}s "
                  f"volumes={config.volume_count} baremetal={config.baremetal} seed={config.seed} "
                  f"cloud={'kind' if kind_cloud else 'as unkind as Nova'}")
    before = lg.end()
    if before.total:
        console.print(f"  the log already holds {before.total:,} records; the model starts from them "
                      "and the full syncs reconcile it with this run's cloud")


def _drift(r: DemoReport) -> str:
    busy, quiet = r.busy_drift, r.quiet_drift
    return (f"{busy.corrected:,} corrected ({busy.deleted:,} deleted) while operations ran, "
            f"leaving {len(r.wrong_between):,} differences; " if busy else "") + (
        f"{quiet.corrected:,} corrected ({quiet.deleted:,} deleted) by a quiescent one" if quiet else "-")


def _late(r: DemoReport) -> str:
    if not r.late_during_sync:
        return "flushed before the quiescent sync (--flush-before-sync)"
    q = r.quiet
    return (f"{r.late_delivered:,} notifications ({r.late_live:,} changing a compute entity) delivered while the "
            f"quiescent sync read; {q.rounds} follow-up round(s) re-read {q.rechecked:,} entities they touched"
            + (f", {q.unsettled:,} still contested" if q.unsettled else ""))


def _summary(r: DemoReport) -> Table:
    """The report as the demo's summary table."""
    c, requests = r.counters, r.requests
    t = Table(title="demo summary", show_header=False)
    t.add_row("hosts / instances now", f"{r.hosts_now:,} / {r.instances_now:,}")
    if r.storage:
        t.add_row("storage nodes / pools / volumes now", f"{r.storage_nodes_now:,} / {r.pools_now:,} / "
                  f"{r.volumes_now:,} ({c.get('volume_ops', 0):,} volume operations)")
    if r.baremetal:
        t.add_row("bare-metal nodes now", f"{r.baremetal_nodes_now:,} ({c.get('baremetal_ops', 0):,} "
                  "bare-metal operations)")
    t.add_row("operations", f"{r.ops:,} in {r.streamed_s:.1f}s, {r.ops_during_syncs:,} more while the syncs read")
    t.add_row("notifications", f"{c.get('notifications', 0):,} emitted, {c.get('dropped', 0):,} dropped, "
              f"{c.get('duplicated', 0):,} duplicated, {c.get('delayed', 0):,} delayed, "
              f"{c.get('reordered', 0):,} reordered, {c.get('redelivered', 0):,} redelivered far later")
    t.add_row("Nova quirks", f"{c.get('null_updated_at_boots', 0):,} boots with updated_at null, "
              f"{r.skewed_hosts:,} hosts with a skewed clock, {r.omitted:,} servers omitted and "
              f"{r.minimal:,} minimal records in busy syncs")
    t.add_row("events appended", f"{r.events:,} ({r.events / r.streamed_s:,.0f} events/s), "
              f"{r.irrelevant:,} irrelevant, {r.dead:,} dead-lettered")
    t.add_row("full syncs over HTTP", f"{len(r.syncs)} through openstacksdk: {sum(requests.values()):,} requests ("
              + _by_service(requests) + f") in {r.sync_wall_s:.2f}s")
    t.add_row("log", f"{r.log_url} at position {r.end}")
    t.add_row("model before final sync", f"{len(r.wrong_before):,} differences from ground truth")
    t.add_row("drift found by final sync", _drift(r))
    if r.storage and r.storage_drift is not None:
        sd = r.storage_drift
        t.add_row("storage drift found by final sync", f"{sd.corrected:,} corrected ({sd.deleted:,} deleted) by the "
                  "storage sync while operations ran")
    t.add_row("held back until the last sync", _late(r))
    t.add_row("replay from zero", f"{r.end.total - r.before.total:,} new records, whole log in {r.replay_s:.2f}s "
              f"({r.end.total / r.replay_s:,.0f} records/s), same model: {'yes' if r.same_replay else 'NO'}")
    if r.storage or r.baremetal:
        t.add_row("compute equals ground truth", "yes" if r.compute_equal else
                  f"[red]no[/] ({len(r.differences)} differences)")
    if r.storage:
        t.add_row("storage equals ground truth", "yes" if r.storage_equal else
                  f"[red]no[/] ({len(r.storage_differences)} differences)")
    if r.baremetal:
        t.add_row("baremetal equals ground truth", "yes" if r.baremetal_equal else
                  f"[red]no[/] ({len(r.baremetal_differences)} differences)")
    wrong = len(r.differences) + len(r.storage_differences) + len(r.baremetal_differences)
    t.add_row("projection equals ground truth", "[bold green]YES[/]" if r.equal else
              f"[bold red]NO[/] ({wrong} differences)")
    return t


def _run(config: DemoConfig, log: str, kind_cloud: bool) -> DemoReport:
    """Open the log, run the demo on it, close it; a clear error for what failed."""
    from eventmodel.demo.run import DemoFailed, run_demo

    try:
        lg = open_log(log)
    except LogError as exc:
        raise fail(str(exc)) from None
    try:
        _header(lg, config, kind_cloud)
        return run_demo(config, lg, _Narrator())
    except DemoFailed as exc:
        raise fail(str(exc), code=2 if exc.step == "serve" else 1) from None
    finally:
        lg.close()


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
        volumes: Optional[int] = typer.Option(None, "--volumes", min=0,
                                              help="Cinder volumes at the start (default: one per two "
                                                   "instances; 0: no block storage)."),
        baremetal: int = typer.Option(4, "--baremetal", min=0,
                                      help="Ironic bare-metal nodes (0: no Ironic)."),
        late_during_sync: bool = typer.Option(
            True, "--late-during-sync/--flush-before-sync",
            help="Deliver the notifications still held back (delayed, to be redelivered) while the quiescent "
                 "sync reads, as a RabbitMQ backlog would, instead of before it."),
    ) -> None:
        """Run the whole pipeline on a simulated cloud and check the model against ground truth."""
        require_extra("sim", "openstack", "starlette", "uvicorn", "yaml", what="eventmodel demo")
        from eventmodel.demo.run import DemoConfig

        faults = _faults(kind_cloud, drop=drop, duplicate=duplicate, delay=delay, reorder=reorder,
                         redeliver=redeliver, null_updated_at=null_updated_at, clock_skew=clock_skew,
                         max_skew_s=max_skew, omit=omit, down_cell=down_cell, empty_az=empty_az)
        config = DemoConfig(hosts=hosts, instances=instances, duration=duration, seed=seed, faults=faults,
                            sync_ops=sync_ops if sync_ops is not None else (0 if kind_cloud else 3),
                            ops_per_batch=ops_per_batch, late_during_sync=late_during_sync, bus=bus,
                            volumes=volumes, baremetal=baremetal)
        report = _run(config, log, kind_cloud)
        console.print(_summary(report))
        for line in (report.differences + report.storage_differences + report.baremetal_differences)[:20]:
            console.print(f"  {line}")
        if not report.ok:
            raise typer.Exit(1)
