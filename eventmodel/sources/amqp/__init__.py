"""The AMQP bridge: Nova's (and, opted in, Cinder's and Ironic's) notifications on
RabbitMQ → typed events on the log.

The package by role (the names other code uses are re-exported here):

- :mod:`~eventmodel.sources.amqp.config` — targets, broker URLs, :class:`BridgeConfig`;
- :mod:`~eventmodel.sources.amqp.stats` — :class:`BridgeStats`, what the bridge has done;
- :mod:`~eventmodel.sources.amqp.batching` — :class:`Batch` (a batch's events and dead letters);
- :mod:`~eventmodel.sources.amqp.writer` — the writer thread and :class:`BatchWriter`
  (store, then acknowledge; retried);
- :mod:`~eventmodel.sources.amqp.bridge` — :class:`Bridge` (connection, reconnects,
  declarations, messages) and :func:`run_forever` (signals); how the bridge sits on
  the broker is told there;
- :mod:`~eventmodel.sources.amqp.metrics` — the bridge's Prometheus metrics.
"""

from eventmodel.sources.amqp.batching import Batch
from eventmodel.sources.amqp.bridge import (
    Bridge,
    Normalizer,
    default_normalizer,
    run_forever,
)
from eventmodel.sources.amqp.config import (
    CINDER_TARGET,
    DEFAULT_AMQP_URL,
    DEFAULT_PRIORITIES,
    DEFAULT_QUEUE,
    DEFAULT_TARGETS,
    BridgeConfig,
    BridgeConfigError,
    ExchangeMissing,
    IRONIC_TARGET,
    Target,
    amqp_url,
    oslo_url,
    queue_migration,
)
from eventmodel.sources.amqp.stats import BridgeStats
from eventmodel.sources.amqp.writer import Appender, BatchWriter
from eventmodel.sources.amqp.writer import _Stopping as _Stopping  # tests reach it here

__all__ = [
    "CINDER_TARGET",
    "DEFAULT_AMQP_URL",
    "DEFAULT_PRIORITIES",
    "DEFAULT_QUEUE",
    "DEFAULT_TARGETS",
    "Appender",
    "Batch",
    "BatchWriter",
    "Bridge",
    "BridgeConfig",
    "BridgeConfigError",
    "BridgeStats",
    "ExchangeMissing",
    "IRONIC_TARGET",
    "Normalizer",
    "Target",
    "amqp_url",
    "default_normalizer",
    "oslo_url",
    "queue_migration",
    "run_forever",
]
