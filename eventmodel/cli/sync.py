"""``eventmodel sync``: full syncs from a real cloud's APIs into the log."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
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
from eventmodel.sources.sync import CloudReader, PeriodicSync, ServiceSyncs, Snapshotter, SyncResult

_log = logging.getLogger("eventmodel.sync")


def _table(result: SyncResult) -> Table:
    t = Table(title=f"sync {result.snapshot_id}", show_header=False)
    t.add_row("outcome", "[green]completed[/]" if result.ok else f"[red]failed[/] (model left as it was): {result.error}")
    t.add_row("wall time", f"{result.wall_s:.2f}s")
    t.add_row("records", ", ".join(f"{k} {v:,}" for k, v in result.counts.items()) or "-")
    total = sum(result.requests.values())
    t.add_row("requests", f"{total:,} (" + ", ".join(f"{k} {v:,}" for k, v in sorted(result.requests.items()))
              + f"); {result.pages:,} pages")
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
    services: str = typer.Option("auto", "--services",
                                 help="Which models to sync: compute, storage, baremetal, or a list (compute,storage); "
                                      "auto: compute, and storage / baremetal when the catalog has them."),
    metrics_port: int | None = metrics_port_option(),
    metrics_host: str = metrics_host_option(),
) -> None:
    """Full syncs from the cloud's APIs into the log: once, or at start-up and then every --period seconds.

    Reads compute services, hypervisors with their Placement inventories, host aggregates and every server;
    with storage (Cinder): cinder-volume services, volume types, pools and every volume.

    A sync on demand: SIGUSR1 to the syncer, or `eventmodel sync --now --pid-file F`.
    A request during a sync runs one more right after it.

    SIGTERM stops between two pages: that sync is aborted and the model stays as it was.

    Each sync prints its report: wall time, records by kind, requests by service.
    """
    if now:
        _request_now(pid_file)
        return
    require_extra("openstack", "openstack", what="eventmodel sync")
    wanted = _services(services)
    lg = open_or_fail(log, create=True)
    reader = _reader(cloud, timeout, inventory_workers, connect_retries, page_size)
    snap = _snapshotters(reader, lg, wanted, page_size)
    if once:
        _once(snap)
    from eventmodel.metrics import new_registry

    registry = new_registry()
    printer = _Printer(registry)
    psync = PeriodicSync(snap, period, jitter=jitter, on_result=printer.result, on_start=printer.started,
                         progress=printer.progress)
    stop = _on_signals(psync)  # before the pid file tells anyone this process is there
    with serve_or_fail(registry, metrics_port, metrics_host), _pid_file(pid_file):
        console.print(f"syncing {lg.url} at start-up and every {period:g}s ±{jitter:.0%} "
                      f"(pid {os.getpid()}; SIGUSR1 syncs now)", highlight=False, soft_wrap=True)
        _run_until_stopped(psync, stop)
    console.print(f"stopped after {sum(psync.runs.values())} syncs "
                  f"({psync.runs['ok']} completed, {psync.runs['failed']} failed)")


def _request_now(pid_file: Path | None) -> None:
    """``--now``: signal the running syncer of ``pid_file``."""
    if pid_file is None:
        raise fail("--now needs --pid-file: the file the running syncer wrote its pid to")
    pid = _read_pid(pid_file)
    os.kill(pid, signal.SIGUSR1)
    console.print(f"sync requested from syncer process {pid}")


def _services(text: str) -> tuple[str, ...] | None:
    """``--services``: the services named (None for ``auto``); a clear error for others."""
    from eventmodel.sources.sync import SERVICES

    if text.strip().lower() == "auto":
        return None
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in SERVICES]
    if bad or not names:
        raise fail(f"--services takes auto or a list of {', '.join(SERVICES)}; got {text!r}")
    return names


def _snapshotters(reader: CloudReader, lg: object, wanted: tuple[str, ...] | None,
                  page_size: int) -> Snapshotter | ServiceSyncs:
    """A Snapshotter per service to sync; storage (baremetal) is left out, with one line,
    when the catalog has no block-storage (baremetal) service (an error only when
    --services named it)."""
    from eventmodel.sources.baremetal_sync import IronicReader
    from eventmodel.sources.storage_sync import CinderReader

    snaps = []
    if wanted is None or "compute" in wanted:
        snaps.append(Snapshotter(reader, lg, source="sync", page_size=page_size))  # type: ignore[arg-type]
    for service, cls, named in (("storage", CinderReader, "block-storage (Cinder v3)"),
                                ("baremetal", IronicReader, "baremetal (Ironic)")):
        if wanted is not None and service not in wanted:
            continue
        other = cls(reader, page_size=page_size)  # type: ignore[arg-type]
        if other.endpoint() is None:
            if wanted is not None:
                raise fail(f"--services {service}: the cloud's catalog has no {named} service")
            console.print(f"{service}: the catalog has no {named.split(' ', 1)[0]} service; it is not synced "
                          "(compute is)", highlight=False, soft_wrap=True)
            continue
        snaps.append(Snapshotter(other, lg, source=f"sync-{service}", page_size=page_size,  # type: ignore[arg-type]
                                 service=service))
    if not snaps:
        raise fail("--services: none of the services named is in the cloud's catalog")
    return snaps[0] if len(snaps) == 1 else ServiceSyncs(snaps)


def _reader(cloud: str | None, timeout: float, inventory_workers: int, connect_retries: int,
            page_size: int) -> CloudReader:
    """The cloud's APIs through openstacksdk; a clear error when they cannot be configured."""
    from eventmodel.sources.openstack import OpenStackReader

    try:
        reader = OpenStackReader.connect(cloud, timeout=timeout, inventory_workers=inventory_workers,
                                         connect_retries=connect_retries)
    except Exception as exc:  # noqa: BLE001 - openstacksdk raises many kinds
        raise fail(f"cannot configure the OpenStack connection: {exc}") from None
    reader.page_size = page_size
    return reader


def _once(snap: Snapshotter | ServiceSyncs) -> None:
    """``--once``: one sync, its table and report; exits 0, or 1 when it failed."""
    with progress("syncing", None) as advance:
        result = snap.run_once(progress=advance)
    for one in snap.last if isinstance(snap, ServiceSyncs) else [result]:
        console.print(_table(one))
        _log_report(one)
    raise typer.Exit(0 if result.ok else 1)


class _Printer:
    """What the periodic syncer prints (and counts in its metrics) as syncs start, progress and end."""

    def __init__(self, registry: object) -> None:
        from eventmodel.sources.sync_metrics import SyncMetrics

        self.metrics = SyncMetrics(registry)
        self.appended = 0  # records of the sync running
        self.printed = 0.0  # when progress was last printed

    def started(self) -> None:
        self.appended, self.printed = 0, time.monotonic()
        console.print(f"{_stamp()} sync started", highlight=False, soft_wrap=True)

    def progress(self, n: int) -> None:
        self.appended += n
        if time.monotonic() - self.printed >= 10:  # a line every 10 s of a long sync
            self.printed = time.monotonic()
            console.print(f"{_stamp()}   … {self.appended:,} records so far", highlight=False, soft_wrap=True)

    def result(self, result: SyncResult) -> None:
        self.metrics.record(result)
        _line(result)
        _log_report(result)


@contextlib.contextmanager
def _pid_file(pid_file: Path | None) -> Iterator[None]:
    """This process's pid in ``pid_file`` while the block runs (removed after, if still ours)."""
    if pid_file is None:
        yield
        return
    _write_pid(pid_file)
    try:
        yield
    finally:
        try:
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass


def _on_signals(psync: PeriodicSync) -> threading.Event:
    """SIGTERM and SIGINT set the event returned; SIGUSR1 asks ``psync`` for a sync now."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: psync.trigger())
    return stop


def _run_until_stopped(psync: PeriodicSync, stop: threading.Event) -> None:
    """Run the periodic syncer until ``stop`` is set."""
    psync.start()
    while not stop.wait(1.0):
        if not psync.alive:  # cannot happen short of a bug: say so, do not hang
            raise fail("the sync thread ended unexpectedly")
    console.print("stopping: the sync running, if any, is aborted at its next page")
    psync.stop()


def register(app: typer.Typer) -> None:
    app.command()(sync)
