"""Prometheus metrics for the long-running commands (``bridge``, ``sync``, ``serve``).

Every process makes ONE registry of its own and passes it to whatever reports into it;
nothing is registered on prometheus_client's global ``REGISTRY``. The pieces:

- :func:`new_registry` — a fresh :class:`CollectorRegistry` with the process collectors
  (``process_*``, ``python_*``) already on it;
- :func:`serve` — serve a registry at ``http://HOST:PORT/metrics`` (prometheus_client's
  own HTTP server on a daemon thread); a context manager, and ``port=0`` binds a free port
  (read it back from :attr:`MetricsServer.port`);
- :func:`render` — the registry in Prometheus' text format, for a process that has its
  own HTTP stack (``eventmodel serve`` puts it on its ``/metrics`` route);
- :class:`RetryMetrics` — ``eventmodel_retries_total{component}``: give its :meth:`hook`
  as ``on_retry`` to an :class:`eventmodel.retry.RetryPolicy`, and every retry of that
  component is counted.

A command with ``--metrics-port``::

    from eventmodel.metrics import RetryMetrics, new_registry, serve

    registry = new_registry()
    retries = RetryMetrics(registry)
    with serve(registry, port=metrics_port, host=metrics_host):   # port None: no server
        run(..., on_retry=retries.hook)

The typer options for ``--metrics-port`` / ``--metrics-host`` are
:func:`eventmodel.cli.metrics_options.metrics_port_option` and ``metrics_host_option``.
"""

from __future__ import annotations

import threading
from types import TracebackType

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from eventmodel.retry import RetryEvent

#: the address a metrics endpoint binds to unless told otherwise (never all interfaces by default)
DEFAULT_METRICS_HOST = "127.0.0.1"

__all__ = [
    "DEFAULT_METRICS_HOST",
    "MetricsServer",
    "RetryMetrics",
    "new_registry",
    "render",
    "serve",
]


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A new, empty registry for one process; with ``process`` it carries the standard
    process, platform and garbage-collector metrics."""
    registry = CollectorRegistry(auto_describe=True)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry's current samples in Prometheus' text format, and the content type
    to answer with."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """A running metrics endpoint (``GET /metrics``); :meth:`close` stops it."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = DEFAULT_METRICS_HOST) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0..65535, not {port}")
        self.registry = registry
        self.host = host
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        return int(self._httpd.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _NoServer:
    """What :func:`serve` returns when no port was given: a context manager doing nothing."""

    port: int | None = None
    url: str | None = None

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def serve(registry: CollectorRegistry, port: int | None, host: str = DEFAULT_METRICS_HOST) -> MetricsServer | _NoServer:
    """Serve ``registry`` on ``host:port`` until closed; ``port=None`` serves nothing.

    Raises OSError with the address in its message when the port cannot be bound.
    """
    if port is None:
        return _NoServer()
    return MetricsServer(registry, port, host)


class RetryMetrics:
    """``eventmodel_retries_total{component}``: retries (reconnects, failed appends, failed
    reads, failed publishes) by the component that retried.

    ``hook`` is the ``on_retry`` callback of :class:`eventmodel.retry.RetryPolicy`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.retries = Counter(
            "eventmodel_retries",
            "Retries after a failure (reconnects, appends, reads), by component.",
            ["component"],
            registry=registry,
        )

    def hook(self, event: RetryEvent) -> None:
        """Count one retry (an ``on_retry`` callback)."""
        self.retries.labels(component=event.component).inc()

    def value(self, component: str) -> float:
        """How many retries ``component`` made so far (for tests and summaries)."""
        value = self.registry.get_sample_value("eventmodel_retries_total", {"component": component})
        return float(value or 0.0)
