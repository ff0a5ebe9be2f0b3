"""``eventmodel sync``: full syncs from a real cloud's APIs into the log."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import typer
from rich.table import Table

from eventmodel.cli.common import console, err, fail, log_option, open_or_fail, progress, require_extra
from eventmodel.cli.metrics_options import (
    metrics_host_option,
    metrics_port_option,
    serve_or_fail,
)
from eventmodel.clock import format_time, now_us
from eventmodel.sources.sync import PeriodicSync, Snapshotter, SyncResult

_log = logging.getLogger("eventmodel.sync")


def _table(result: SyncResult) -> Table:
    t = Table(title=f"sync {result.snapshot_id}", show_header=False)
    t.add_row("outcome", "[green]completed[/]" if result.ok else f"[red]failed[/] (model left as it was): {result.error}")
    t.add_row("wall time", f"{result.wall_s:.2f}s")
    t.add_row("records", ", ".join(f"{k} {v:,}" for k, v in result.counts.items()) or "-")
    total = sum(result.requests.values())
    t.add_row("requests", f"{total:,} (" + ", ".join(f"{k} {v:,}" for k, v in sorted(result.requests.items()))
              + f"); {result.pages:,} server pages")
    return t


def _stamp() -> str:
    """Now, to the second: ``2026-11-25T10:00:00Z``."""
    return format_time(now_us())[:19] + "Z"


def _line(result: SyncResult) -> None:
    stamp = _stamp()
    if result.ok:
        console.print(f"{stamp} {result.summary()}", highlight=False, soft_wrap=True)
    else:
        err.print(f"{stamp} [red]{result.summary()}[/] — the model is left as it was", highlight=False, soft_wrap=True)


def _log_report(result: SyncResult) -> None:
    level = logging.INFO if result.ok else logging.ERROR
    _log.log(level, "sync report %s", json.dumps(result.report(), sort_keys=True))


def _read_pid(pid_file: Path) -> int:
    try:
        text = pid_file.read_text().strip()
    except OSError as exc:
        raise fail(f"cannot read the pid file {pid_file}: {exc.strerror or exc}") from None
    try:
        pid = int(text)
    except ValueError:
        raise fail(f"the pid file {pid_file} holds {text[:40]!r}, not a process id") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise fail(f"no process {pid} (from {pid_file}): the syncer is not running") from None
    except PermissionError:
        raise fail(f"process {pid} (from {pid_file}) belongs to another user") from None
    return pid


def _write_pid(pid_file: Path) -> None:
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, pid_file)


def register(app: typer.Typer) -> None:
    @app.command()
    def sync(
        log: str = log_option(),
        cloud: str | None = typer.Option(None, "--cloud", envvar="OS_CLOUD",
                                         help="Cloud name in clouds.yaml (else OS_* variables)."),
        period: float = typer.Option(3600.0, "--period", min=1.0, help="Seconds between full syncs."),
        jitter: float = typer.Option(0.1, "--jitter", min=0.0, max=0.9,
                                     help="Spread of the period, as a fraction (0.1: ±10 %)."),
        once: bool = typer.Option(False, "--once", help="Run one sync and exit (1 if it failed)."),
        now: bool = typer.Option(False, "--now",
                                 help="Ask the running syncer of --pid-file for a sync now, and exit."),
        pid_file: Path | None = typer.Option(None, "--pid-file",
                                             help="The periodic syncer writes its pid here; --now reads it."),
        page_size: int = typer.Option(1000, "--page-size", min=1, help="Servers and hypervisors per API page."),
        inventory_workers: int = typer.Option(8, "--inventory-workers", min=1, max=64,
                                              help="Placement inventory requests in flight at once."),
        timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds to wait for one API answer."),
        connect_retries: int = typer.Option(1, "--connect-retries", min=0, max=10,
                                            help="Times a request whose connection failed or timed out is sent "
                                                 "again (error answers are not)."),
        metrics_port: int | None = metrics_port_option(),
        metrics_host: str = metrics_host_option(),
    ) -> None:
        """Full syncs from the cloud's APIs into the log: once, or at start-up and then every --period seconds.

        Reads compute services, hypervisors with their Placement inventories, host aggregates and every server.

        A sync on demand: SIGUSR1 to the syncer, or `eventmodel sync --now --pid-file F`.
        A request during a sync runs one more right after it.

        SIGTERM stops between two pages: that sync is aborted and the model stays as it was.

        Each sync prints its report: wall time, records by kind, requests by service.
        """
        if now:
            if pid_file is None:
                raise fail("--now needs --pid-file: the file the running syncer wrote its pid to")
            pid = _read_pid(pid_file)
            os.kill(pid, signal.SIGUSR1)
            console.print(f"sync requested from syncer process {pid}")
            return
        require_extra("openstack", "openstack", what="eventmodel sync")
        from eventmodel.sources.openstack import OpenStackReader

        lg = open_or_fail(log, create=True)
        try:
            reader = OpenStackReader.connect(cloud, timeout=timeout, inventory_workers=inventory_workers,
                                             connect_retries=connect_retries)
        except Exception as exc:  # noqa: BLE001 - openstacksdk raises many kinds
            raise fail(f"cannot configure the OpenStack connection: {exc}") from None
        reader.page_size = page_size
        snap = Snapshotter(reader, lg, source="sync", page_size=page_size)
        if once:
            with progress("syncing", None) as advance:
                result = snap.run_once(progress=advance)
            console.print(_table(result))
            _log_report(result)
            raise typer.Exit(0 if result.ok else 1)

        from eventmodel.metrics import new_registry
        from eventmodel.sources.sync_metrics import SyncMetrics

        registry = new_registry()
        metrics = SyncMetrics(registry)

        def on_result(result: SyncResult) -> None:
            metrics.record(result)
            _line(result)
            _log_report(result)

        appended = [0, 0.0]  # records this sync, when progress was last printed

        def on_start() -> None:
            appended[:] = [0, time.monotonic()]
            console.print(f"{_stamp()} sync started", highlight=False, soft_wrap=True)

        def on_progress(n: int) -> None:
            appended[0] += n
            if time.monotonic() - appended[1] >= 10:  # a line every 10 s of a long sync
                appended[1] = time.monotonic()
                console.print(f"{_stamp()}   … {appended[0]:,} records so far",
                              highlight=False, soft_wrap=True)

        stop = threading.Event()
        psync = PeriodicSync(snap, period, jitter=jitter, on_result=on_result, on_start=on_start,
                             progress=on_progress)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGUSR1, lambda *_: psync.trigger())
        with serve_or_fail(registry, metrics_port, metrics_host):
            if pid_file is not None:
                _write_pid(pid_file)
            try:
                console.print(f"syncing {lg.url} at start-up and every {period:g}s ±{jitter:.0%} "
                              f"(pid {os.getpid()}; SIGUSR1 syncs now)", highlight=False, soft_wrap=True)
                psync.start()
                while not stop.wait(1.0):
                    if not psync.alive:  # cannot happen short of a bug: say so, do not hang
                        raise fail("the sync thread ended unexpectedly")
                console.print("stopping: the sync running, if any, is aborted at its next page")
                psync.stop()
            finally:
                if pid_file is not None:
                    try:
                        if pid_file.read_text().strip() == str(os.getpid()):
                            pid_file.unlink()
                    except OSError:
                        pass
        console.print(f"stopped after {sum(psync.runs.values())} syncs "
                      f"({psync.runs['ok']} completed, {psync.runs['failed']} failed)")
