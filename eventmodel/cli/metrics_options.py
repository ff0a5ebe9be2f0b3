"""The ``--metrics-port`` / ``--metrics-host`` options every long-running command shares.

    def bridge(..., metrics_port: Optional[int] = metrics_port_option(),
               metrics_host: str = metrics_host_option()) -> None:
        registry = new_registry()
        with serve_or_fail(registry, metrics_port, metrics_host):
            ...
"""

from __future__ import annotations

import typer
from prometheus_client import CollectorRegistry

from eventmodel.cli.common import fail
from eventmodel.metrics import DEFAULT_METRICS_HOST, MetricsServer, serve


def metrics_port_option() -> object:
    """``--metrics-port PORT`` (env ``EVENTMODEL_METRICS_PORT``); unset: no endpoint."""
    return typer.Option(
        None, "--metrics-port", envvar="EVENTMODEL_METRICS_PORT", min=0, max=65535,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (default: no metrics endpoint).",
    )


def metrics_host_option() -> object:
    """``--metrics-host ADDRESS`` (env ``EVENTMODEL_METRICS_HOST``), default loopback."""
    return typer.Option(
        DEFAULT_METRICS_HOST, "--metrics-host", envvar="EVENTMODEL_METRICS_HOST",
        help="Address the metrics endpoint binds to (0.0.0.0 for every interface).",
    )


def serve_or_fail(registry: CollectorRegistry, port: int | None, host: str) -> object:
    """:func:`eventmodel.metrics.serve`, with a clear CLI error when the port is taken."""
    try:
        server = serve(registry, port, host)
    except OSError as exc:
        raise fail(str(exc)) from None
    if isinstance(server, MetricsServer):
        typer.echo(f"metrics on {server.url}")
    return server
