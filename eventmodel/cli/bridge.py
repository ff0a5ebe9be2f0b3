"""``eventmodel bridge`` (RabbitMQ → log) and ``eventmodel deadletters`` (what could not
become events)."""

from __future__ import annotations

import collections
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

import typer

from eventmodel.cli.common import fail, log_option, open_or_fail, require_extra
from eventmodel.cli.metrics_options import metrics_host_option, metrics_port_option, serve_or_fail
from eventmodel.clock import format_time
from eventmodel.codec import EventTypes
from eventmodel.log import EventLog
from eventmodel.sources.amqp import (
    DEFAULT_AMQP_URL,
    DEFAULT_QUEUE,
    DEFAULT_TARGETS,
    BridgeConfig,
    BridgeConfigError,
    BridgeStats,
)

if TYPE_CHECKING:
    from eventmodel.sources.amqp.bridge import Normalizer


def _open_writer(url: str | None, types=None):  # noqa: ANN001, ANN202
    """The log the bridge appends to (a new SQLite file is created)."""
    from eventmodel.codec import Codec

    return open_or_fail(url, create=True, codec=Codec(types) if types is not None else None)


def bridge(
    log: Optional[str] = log_option(),  # noqa: UP007 - typer needs Optional
    amqp: str = typer.Option(
        DEFAULT_AMQP_URL, "--amqp", envvar="EVENTMODEL_AMQP_URL",
        help="RabbitMQ URL (amqp://user:pass@host:5672/vhost; oslo's rabbit:// works too).",
    ),
    topic: list[str] = typer.Option(
        list(DEFAULT_TARGETS), "--topic",
        help="<exchange>.<topic> to consume, like Watcher's notification_topics; repeatable (replaces the "
        "default: add openstack.notifications for Cinder, ironic.ironic_versioned_notifications for Ironic).",
    ),
    queue: str = typer.Option(DEFAULT_QUEUE, "--queue", help="The bridge's own queue (created if missing)."),
    batch: int = typer.Option(500, "--batch", min=1, help="Append after this many messages ..."),
    batch_ms: float = typer.Option(20.0, "--batch-ms", min=0, help="... or this many ms after a batch's first message."),
    prefetch: int = typer.Option(1000, "--prefetch", min=0, max=65535, help="Unacknowledged messages RabbitMQ may send ahead."),
    priority: list[str] = typer.Option(
        ["info", "error"], "--priority", help="Notification priorities to bind (routing key <topic>.<priority>); repeatable."
    ),
    durable_exchange: bool = typer.Option(
        False, "--durable-exchange/--transient-exchange",
        help="Flags for declaring the exchange if it does not exist yet; match the cloud's "
        "[oslo_messaging_rabbit] amqp_durable_queues. An existing exchange is used as it is.",
    ),
    declare_exchange: bool = typer.Option(
        True, "--declare-exchange/--wait-for-exchange",
        help="Create a missing exchange (with the flags above), or never create it and wait until Nova has.",
    ),
    quorum: bool = typer.Option(False, "--quorum", help="Declare the bridge's queue as a quorum queue."),
    single_active: bool = typer.Option(
        True, "--single-active-consumer/--no-single-active-consumer",
        help="Declare the queue single-active-consumer: one bridge consumes, others wait as hot standbys "
        "(per-key order). --no-... only for an old queue not migrated yet, with ONE bridge (see the README).",
    ),
    heartbeat: float = typer.Option(30.0, "--heartbeat", min=0, help="AMQP heartbeat in seconds (0: none)."),
    stop_grace: float = typer.Option(
        5.0, "--stop-grace", min=0,
        help="On SIGTERM, seconds to wait for an append in flight before leaving its batch unacknowledged.",
    ),
    stats_every: float = typer.Option(10.0, "--stats-every", min=0, help="Seconds between stats lines (0: only the summary)."),
    json_stats: bool = typer.Option(False, "--json", help="Print stats lines as JSON objects."),
    service_down_time: int = typer.Option(
        60, "--service-down-time", min=1, envvar="EVENTMODEL_SERVICE_DOWN_TIME",
        help="Nova's [DEFAULT] service_down_time in seconds: a compute service is up in the model when "
        "not forced down and its last_seen_up is within this of the notification's timestamp.",
    ),
    metrics_port: Optional[int] = metrics_port_option(),  # noqa: UP007
    metrics_host: str = metrics_host_option(),
) -> None:
    """Consume Nova's notifications (Cinder's and Ironic's with --topic) from RabbitMQ and append their events to the log.

    Every message ends as events, irrelevant or a dead letter; a batch is acknowledged
    only after the log stored it. SIGTERM or Ctrl-C stops cleanly: the current batch is
    stored and acknowledged first, unless the log stalls longer than --stop-grace; then it
    stays unacknowledged and RabbitMQ delivers it to the next bridge. With --metrics-port
    it serves Prometheus metrics at http://HOST:PORT/metrics.
    """
    require_extra("amqp", "kombu", what="eventmodel bridge")
    from eventmodel.urls import redact

    try:
        config = BridgeConfig(
            amqp_url=amqp, targets=tuple(topic), queue=queue, priorities=tuple(p.lower() for p in priority),
            batch_size=batch, batch_ms=batch_ms, prefetch=prefetch, exchange_durable=durable_exchange,
            declare_exchange=declare_exchange,
            queue_type="quorum" if quorum else "classic", stats_interval=stats_every,
            single_active_consumer=single_active, heartbeat=heartbeat, stop_grace=stop_grace,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    types = EventTypes.builtin()
    normalizer = _normalizer(types, service_down_time)
    event_log = _open_writer(log, types)
    _say(f"bridge: {', '.join(str(t) for t in config.targets)} "
         f"({'/'.join(config.priorities)}) on {redact(amqp)} -> queue {queue} -> {log}")
    final = _run(event_log, config, normalizer, _stats_printer(json_stats), metrics_port, metrics_host)
    typer.echo(f"bridge stopped: {final.summary()}")
    if final.in_flight:
        # the log is stalled inside an append we must not wait for (closing the log would
        # wait for it too): leave now; the batch is unacknowledged, RabbitMQ redelivers it
        _say("bridge stopped with an append still in flight (the log is stalled); exiting without waiting for it")
        sys.stderr.flush()
        os._exit(0)


def _say(line: str) -> None:
    typer.echo(line)
    sys.stdout.flush()


def _normalizer(types: EventTypes, service_down_time: int) -> Normalizer:
    from eventmodel.sources.amqp import default_normalizer

    try:
        return default_normalizer(types, service_down_time=service_down_time)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _stats_printer(as_json: bool) -> Callable[..., None]:
    """Prints a stats line (or a JSON object) for the bridge's ``on_stats``."""
    def show(stats: BridgeStats, label: str = "bridge") -> None:
        if as_json:
            d = stats.as_dict()
            d["at"] = format_time(stats.started_at)
            _say(json.dumps({"label": label, **d}))
        else:
            _say(f"{label}: {stats.line()}")
    return show


def _run(event_log: EventLog, config: BridgeConfig, normalizer: Normalizer, show: Callable[..., None],
         metrics_port: int | None, metrics_host: str) -> BridgeStats:
    """Run the bridge until a signal stops it, serving its metrics; its final stats. The
    log is closed unless an append is still in flight (closing would wait for it)."""
    from eventmodel.metrics import new_registry
    from eventmodel.sources.amqp import run_forever
    from eventmodel.sources.amqp.metrics import BridgeMetrics

    registry = new_registry()
    metrics = BridgeMetrics(registry)
    final: BridgeStats | None = None
    try:
        with serve_or_fail(registry, metrics_port, metrics_host):
            sys.stdout.flush()
            final = run_forever(event_log, config, normalizer=normalizer, on_stats=show, metrics=metrics)
    except BridgeConfigError as exc:
        raise fail(str(exc)) from None
    finally:
        if final is None or not final.in_flight:
            event_log.close()
    return final


def _preview(raw: bytes, width: int) -> str:
    text = repr(raw[:width])[2:-1]
    return text + ("..." if len(raw) > width else "")


def deadletters(
    log: Optional[str] = log_option(),  # noqa: UP007
    limit: int = typer.Option(20, "--limit", min=0, help="Show the newest N (0: all)."),
    raw: bool = typer.Option(False, "--raw", help="Write only the raw bytes of each, exactly as received, each followed by a newline."),
    width: int = typer.Option(100, "--width", min=8, help="Bytes of each message to preview."),
) -> None:
    """List the stored dead letters: messages that could not become events, with why."""
    event_log = open_or_fail(log)
    try:
        total = 0
        shown: collections.deque = collections.deque(maxlen=limit or None)
        for letter in event_log.dead_letters():
            total += 1
            shown.append(letter)
    finally:
        event_log.close()
    if raw:
        out = sys.stdout.buffer
        for letter in shown:
            out.write(letter.raw + b"\n")
        out.flush()
        return
    if not total:
        typer.echo(f"no dead letters in {log}")
        return
    typer.echo(f"{total} dead letters in {log}" + (f" (newest {len(shown)})" if len(shown) < total else ""))
    for letter in shown:
        typer.echo(
            f"#{letter.offset}  {format_time(letter.at)}  {letter.source}  {len(letter.raw)} bytes\n"
            f"    reason: {letter.reason}\n"
            f"    bytes:  {_preview(letter.raw, width)}"
        )


def register(app: typer.Typer) -> None:
    app.command("bridge")(bridge)
    app.command("deadletters")(deadletters)

