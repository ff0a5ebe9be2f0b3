"""``eventmodel sync``: full syncs from a real cloud's APIs into the log."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import typer

from eventmodel.cli.common import console, err, fail, log_option, open_or_fail, progress
from eventmodel.sources.sync import Snapshotter, SyncResult


def _report(result: SyncResult) -> None:
    if result.ok:
        console.print(f"sync {result.snapshot_id}: observed {result.counts} in "
                      f"{(result.completed_at - result.started_at) / 1e6:.1f}s")
    else:
        err.print(f"[red]sync {result.snapshot_id} failed[/] (model left as it was): {result.error}")


def register(app: typer.Typer) -> None:
    @app.command()
    def sync(
        log: str = log_option(),
        cloud: Optional[str] = typer.Option(None, "--cloud", envvar="OS_CLOUD",
                                            help="Cloud name in clouds.yaml (else OS_* variables)."),
        period: float = typer.Option(3600.0, "--period", min=1.0, help="Seconds between full syncs."),
        once: bool = typer.Option(False, "--once", help="Run one sync and exit."),
        page_size: int = typer.Option(1000, "--page-size", min=1),
    ) -> None:
        """Full syncs from the cloud's APIs into the log, once or every --period seconds.

        Reads compute services, hypervisors with their Placement inventories and every
        server. SIGUSR1 runs a sync now; SIGTERM stops."""
        from eventmodel.sources.openstack import OpenStackReader

        lg = open_or_fail(log, create=True)
        try:
            reader = OpenStackReader.connect(cloud)
        except Exception as exc:  # noqa: BLE001 - openstacksdk raises many kinds
            raise fail(f"cannot configure the OpenStack connection: {exc}") from None
        snap = Snapshotter(reader, lg, source="sync", page_size=page_size)
        if once:
            with progress("syncing", None) as advance:
                result = snap.run_once(progress=advance)
            _report(result)
            raise typer.Exit(0 if result.ok else 1)
        stop = threading.Event()
        wake = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: (stop.set(), wake.set()))
        signal.signal(signal.SIGINT, lambda *_: (stop.set(), wake.set()))
        signal.signal(signal.SIGUSR1, lambda *_: wake.set())
        console.print(f"syncing {lg.url} every {period:g}s")
        while not stop.is_set():
            _report(snap.run_once())
            wake.wait(period)
            wake.clear()
