"""The bridge's configuration: targets, broker URLs, queue and batching settings, and
the errors for a configuration RabbitMQ refuses."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import attrs

from eventmodel.errors import ConfigError, SourceError

DEFAULT_TARGETS: tuple[str, ...] = ("nova.versioned_notifications",)
#: Cinder's unversioned notifications: oslo.messaging's default exchange (Cinder sets
#: none; some deployments set ``control_exchange = cinder``). Opt-in (ADR 0018): binding
#: it by default would declare the exchange in a cloud where Cinder has not
CINDER_TARGET = "openstack.notifications"
#: Ironic's versioned notifications (opt-in, as Cinder's)
IRONIC_TARGET = "ironic.ironic_versioned_notifications"
DEFAULT_QUEUE = "eventmodel-bridge"
#: Nova sends versioned notifications at INFO and ERROR priority only
DEFAULT_PRIORITIES: tuple[str, ...] = ("info", "error")
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


class BridgeConfigError(SourceError, RuntimeError):
    """The broker refused the bridge's configuration (e.g. the queue exists with other flags).

    Retrying cannot help, so the bridge stops and says why.
    """


class ExchangeMissing(SourceError, RuntimeError):
    """The exchange does not exist and the bridge was told not to create it (retried)."""


@attrs.frozen(slots=True)
class Target:
    """One ``exchange.topic`` pair, as in Watcher's ``notification_topics``."""

    exchange: str
    topic: str

    @classmethod
    def parse(cls, text: str) -> Target:
        exchange, sep, topic = text.strip().partition(".")
        if not sep or not exchange or not topic:
            raise ConfigError(
                f"not a notification target: {text!r} (use <exchange>.<topic>, "
                "e.g. nova.versioned_notifications)"
            )
        return cls(exchange, topic)

    def routing_keys(self, priorities: Iterable[str]) -> list[str]:
        return [f"{self.topic}.{p}" for p in priorities]

    def __str__(self) -> str:
        return f"{self.exchange}.{self.topic}"


def amqp_url(url: str) -> str:
    """Accept oslo.messaging's ``rabbit://`` transport URLs as well as kombu's ``amqp://``."""
    parts = urlsplit(url)
    if parts.scheme in ("rabbit", "kombu"):
        path = parts.path
        if path in ("", "/"):
            path = "//"  # oslo's "rabbit://h:5672/" means the default vhost "/"
        return urlunsplit(("amqp", parts.netloc, path, parts.query, parts.fragment))
    return url


def oslo_url(url: str) -> str:
    """The oslo.messaging transport URL (``rabbit://``) for an ``amqp://`` URL."""
    parts = urlsplit(url)
    if parts.scheme in ("amqp", "pyamqp"):
        path = parts.path
        if path == "//":
            path = "/"
        return urlunsplit(("rabbit", parts.netloc, path, parts.query, parts.fragment))
    return url


@attrs.define
class BridgeConfig:
    amqp_url: str = DEFAULT_AMQP_URL
    targets: tuple[Target, ...] = attrs.field(
        default=tuple(Target.parse(t) for t in DEFAULT_TARGETS),
        converter=lambda ts: tuple(t if isinstance(t, Target) else Target.parse(t) for t in ts),
    )
    queue: str = DEFAULT_QUEUE
    priorities: tuple[str, ...] = attrs.field(default=DEFAULT_PRIORITIES, converter=tuple)
    #: a batch is appended when it has this many messages ...
    batch_size: int = 500
    #: ... or this long after its first message arrived
    batch_ms: float = 20.0
    #: unacknowledged messages RabbitMQ may send ahead (must exceed batch_size to keep the
    #: pipe full while a batch is being stored)
    prefetch: int = 1000
    #: flags of the exchange, used only when the bridge is the first to declare it; must
    #: match the cloud's [oslo_messaging_rabbit] amqp_durable_queues / amqp_auto_delete
    exchange_durable: bool = False
    exchange_auto_delete: bool = False
    #: False: never create the exchange, wait (retrying) until Nova has declared it
    declare_exchange: bool = True
    #: the bridge's own queue: durable so a broker restart keeps what it holds
    queue_durable: bool = True
    #: "classic" or "quorum" (quorum queues are always durable)
    queue_type: str = "classic"
    #: declare the queue single-active-consumer: one bridge consumes, any other is a hot
    #: standby (two consumers taking turns would break per-key order). False only for a
    #: queue declared without it that cannot be migrated yet (see ``queue_migration``)
    single_active_consumer: bool = True
    heartbeat: float = 30.0
    #: after a stop request, how long an append in flight is waited for before its batch
    #: is left unacknowledged (RabbitMQ redelivers it to the next bridge)
    stop_grace: float = 5.0
    connect_timeout: float = 5.0
    #: reconnect backoff: first wait, cap
    reconnect_initial: float = 0.5
    reconnect_max: float = 5.0
    #: append retry backoff: first wait, cap
    retry_initial: float = 0.1
    retry_max: float = 10.0
    #: at most one "still failing" line per this many seconds
    error_log_interval: float = 60.0
    #: log a stats line (and call on_stats) this often; 0 = never
    stats_interval: float = 30.0
    #: ask RabbitMQ for the queue's depth (messages ready) this often, for the metrics; 0 = never
    depth_interval: float = 5.0
    #: the ``source`` recorded on dead letters
    dead_letter_source: str = "amqp"

    def __attrs_post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if self.batch_ms < 0:
            raise ConfigError("batch_ms must not be negative")
        if self.prefetch < 0 or self.prefetch > 65535:
            raise ConfigError("prefetch must be 0..65535 (0 = unlimited)")
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError(f"queue_type must be classic or quorum, not {self.queue_type!r}")
        if not self.targets:
            raise ConfigError("at least one target (exchange.topic) is needed")
        if not self.priorities:
            raise ConfigError("at least one priority is needed")
        if self.stop_grace < 0:
            raise ConfigError("stop_grace must not be negative")


def queue_migration(queue: str) -> str:
    """What an operator does to move the bridge onto a single-active-consumer queue."""
    return (
        f"Migrate without losing notifications: run one bridge with a new queue name "
        f"(--queue {queue}-sac), wait until it consumes, stop the bridges of the old queue "
        f"once `rabbitmqctl list_queues name messages` shows {queue!r} at 0, then delete it "
        f"(`rabbitmqctl delete_queue {queue}`). Or in place: stop every bridge, "
        f"`rabbitmqctl delete_queue {queue}`, start the bridge (notifications sent meanwhile "
        f"are lost; the next full sync repairs them). Until then --no-single-active-consumer "
        f"keeps the old queue, with ONE bridge only."
    )
