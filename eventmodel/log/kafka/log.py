"""The Kafka backend: one topic, keyed records, read by assignment (confluent-kafka).

URL::

    kafka://host:port[,host:port]/topic?partitions=6&replication=1&min_insync_replicas=1
          &max_record_bytes=1000000&retention_ms=-1
          &delivery_timeout_ms=300000&connect_timeout_s=30&read_timeout_s=60
          &kafka.<librdkafka setting>=...&topic.<topic config>=...

- ``kafka.<setting>`` options go unchanged into the producer, consumer and admin
  configurations (and override the defaults below); that is how TLS/SASL reach the
  clients, e.g. ``kafka.security.protocol=SASL_SSL&kafka.sasl.mechanism=SCRAM-SHA-512
  &kafka.sasl.username=u&kafka.sasl.password=p``. A setting that applies to only one
  kind of client makes librdkafka log a harmless ``CONFWARN`` from the others.
  ``user:password@`` in the URL is a shorthand for ``sasl.username``/``sasl.password``.
  Passwords are masked in every error message.
- librdkafka's own log goes to the ``eventmodel.log.kafka.librdkafka`` logger.
- ``topic.<config>`` options are topic configs used when the topic is created
  (e.g. ``topic.min.insync.replicas=2``).
- Unknown options are refused (a typo fails loudly).

Topic layout
    ``<topic>`` holds the envelopes; ``<topic>.deadletters`` (one partition) holds
    dead letters: the raw bytes (cut to 64 KiB) as value, headers ``reason``,
    ``source``, ``at`` (µs, decimal), ``size`` and ``sha256`` (of the whole input).
    Both are created when missing with ``partitions`` (dead letters: 1),
    ``replication``, ``min.insync.replicas = min_insync_replicas`` (default 1, or 2
    from replication 3; production: ``replication=3&min_insync_replicas=2``),
    ``retention.ms = retention_ms`` (-1: keep forever),
    ``message.timestamp.type=CreateTime`` and ``message.timestamp.after.max.ms`` =
    max (Kafka 4 otherwise refuses records stamped more than 1 h in the future, which a
    simulated or skewed clock produces); an existing topic is used as it is, with its
    real partition count and configs. Metadata requests never auto-create topics.

Partitioning
    A record goes to ``partition = (murmur2(key_utf8) & 0x7fffffff) % partitions``,
    computed here and passed to the producer explicitly. That is the Java client's
    default partitioner (and librdkafka's ``murmur2`` / ``murmur2_random`` for a
    non-NULL key), so other clients that key by entity agree with us, and
    :meth:`KafkaEventLog.read_key` scans only the key's partition. Adding partitions
    to an existing topic moves keys to other partitions and breaks per-key order:
    don't; create a new topic and copy instead. If it happens anyway it is noticed:
    :meth:`partitions` re-reads the metadata (at most ``METADATA_MAX_AGE_S`` old), and
    a log object opened before the change raises :class:`PartitionsChanged` on reads
    and appends; any log raises it for a position with another number of offsets.

Identity
    ``log_id = "kafka:<cluster id>/<topic>/<topic id>"``: a deleted and recreated topic
    is another log (checkpoints compare ``log_id``); an open log object that sees
    the topic id change refuses to read (:class:`PositionNotCovered`).

Snapshot markers
    An envelope whose ``broadcast`` is true (``snapshot.started``/``completed``) is
    written once to EVERY partition (explicit ``partition=p``), so a reader of any
    partition sees it in order with that partition's records; :meth:`end` moves by
    ``partitions`` for each marker. Not atomic (no transactions, see ADR 0006): when
    a marker did not reach every partition, :meth:`append` raises
    :class:`BroadcastIncomplete` saying which partitions have it.

Writing
    Idempotent producer (``enable.idempotence``, ``acks=all``). Each record's Kafka
    timestamp is ``recorded_at // 1000`` (ms) — :meth:`position_at` uses the broker's
    time index. :meth:`append` returns only when every record's delivery report said
    it was stored; while the broker is unreachable it blocks and the producer retries
    for up to ``delivery_timeout_ms`` (default 5 minutes), logging a warning every
    ``10 s``; after that, or on any other transient error, it raises :class:`LogError`.
    A batch that raised LogError may be partly stored: the caller retries it
    (at-least-once; the envelopes' event ids make duplicates recognisable). A record
    refused for good — over ``max_record_bytes`` (key + value; default 1,000,000, at
    most the topic's ``max.message.bytes`` − ``RECORD_OVERHEAD``), or refused by
    librdkafka or the broker with one of the ``_PERMANENT`` errors — is not retried:
    the other records are stored, then :class:`RecordsRejected` names the refused ones
    by their index in the batch. (The broker refuses whole produce batches; when more
    than one record was refused they are sent again one by one, and only those
    refused alone are rejected.) Defaults (overridable with
    ``kafka.*``): ``compression.type=lz4`` (200k generated events: 148 MB raw, 37 MB
    lz4, 20 MB zstd on disk), ``linger.ms=5``. The producer is created when the log
    is opened, because an idempotent producer needs ~0.5 s to get its producer id.

Reading
    Readers never join a consumer group: a consumer gets ``assign()`` of every
    partition at the wanted offsets, never commits (``enable.auto.commit=false``) and
    uses partition EOF events. A read stops in each partition at the end offset or
    the partition's EOF; offsets may have gaps (transaction markers, compaction), so
    it never counts records. Consumers are pooled and reused across reads (a follower
    calling :meth:`read_raw` repeatedly does not pay for a new consumer each time).
    :meth:`start` gives the low watermarks. A read from a position before them (where
    there is something to read: records were deleted by retention or delete-records)
    or past the end (another incarnation of the topic) raises
    :class:`PositionNotCovered` saying what was lost and what to do; the consumers use
    ``auto.offset.reset=error``, so records deleted while a read runs raise it too
    instead of being skipped.
    Consumer defaults: ``fetch.wait.max.ms=1`` (a reused consumer's next read waits
    for the previous read's last fetch: ~3 ms instead of ~100 ms per read) and
    ``max.partition.fetch.bytes=10 MB`` (read_raw ~4x faster than with 1 MB).
    :meth:`end` and :meth:`position_at` use one ListOffsets request for all partitions
    (0.7 ms vs 9 ms for per-partition watermark queries), retried while leadership
    settles (a new topic, a broker restart). A read that gets no record for
    ``read_timeout_s`` raises :class:`LogError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from eventmodel.codec import Codec
from eventmodel.log.base import LogError, LogUrlError
from eventmodel.log.kafka.admin import TopicAdmin
from eventmodel.log.kafka.consumer import Reading
from eventmodel.log.kafka.producer import Producing, _Batch
from eventmodel.log.kafka.urls import DEFAULTS, parse_options
from eventmodel.urls import redact

_log = logging.getLogger("eventmodel.log.kafka")
_rdlog = logging.getLogger("eventmodel.log.kafka.librdkafka")

DEAD_LETTER_SUFFIX = ".deadletters"


class KafkaEventLog(TopicAdmin, Producing, Reading):
    """The event log on an Apache Kafka topic (see the module docstring).

    Its roles live in mixins: :class:`~eventmodel.log.kafka.admin.TopicAdmin` (topics,
    metadata, offsets), :class:`~eventmodel.log.kafka.producer.Producing` (appends) and
    :class:`~eventmodel.log.kafka.consumer.Reading` (reads); this class holds their
    state and the lifecycle.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        codec: Codec | None = None,
        *,
        url: str | None = None,
        partitions: int = DEFAULTS["partitions"],
        replication: int = DEFAULTS["replication"],
        min_insync_replicas: int = DEFAULTS["min_insync_replicas"],
        max_record_bytes: int = DEFAULTS["max_record_bytes"],
        retention_ms: int = DEFAULTS["retention_ms"],
        delivery_timeout_ms: int = DEFAULTS["delivery_timeout_ms"],
        connect_timeout_s: float = DEFAULTS["connect_timeout_s"],
        read_timeout_s: float = DEFAULTS["read_timeout_s"],
        config: Mapping[str, Any] | None = None,
        topic_config: Mapping[str, str] | None = None,
    ) -> None:
        if not bootstrap:
            raise LogUrlError(f"{url or 'kafka log'}: no bootstrap servers (kafka://host:port/topic)")
        if not topic or "/" in topic:
            raise LogUrlError(f"{url or 'kafka log'}: bad topic name {topic!r} (kafka://host:port/topic)")
        if partitions < 1:
            raise LogUrlError(f"{url or topic}: partitions must be >= 1, not {partitions}")
        if replication < 1:
            raise LogUrlError(f"{url or topic}: replication must be >= 1, not {replication}")
        if min_insync_replicas <= 0:
            min_insync_replicas = 1 if replication < 3 else 2
        if min_insync_replicas > replication:
            raise LogUrlError(f"{url or topic}: min_insync_replicas {min_insync_replicas} > replication "
                           f"{replication}: every append would be refused")
        if max_record_bytes < 1:
            raise LogUrlError(f"{url or topic}: max_record_bytes must be >= 1, not {max_record_bytes}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = topic + DEAD_LETTER_SUFFIX
        self.url = redact(url or f"kafka://{bootstrap}/{topic}")  # for display: secrets masked
        self._where = self.url
        self.codec = codec or Codec()
        self.delivery_timeout_ms = delivery_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._common: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": "eventmodel",
            "logger": _rdlog,
            "error_cb": self._on_client_error,
            # Never let a metadata request create a topic with the broker's defaults.
            "allow.auto.create.topics": False,
        }
        self._common.update(config or {})
        self._lock = threading.Lock()  # writers: one append at a time
        self._pool_lock = threading.Lock()
        self._pool: list[Consumer] = []
        self._consumers: list[Consumer] = []
        self._producer: Producer | None = None
        self._producer_fatal: str | None = None
        self._batch = _Batch([])
        self._part_cache: dict[bytes, int] = {}
        self._last_error: str | None = None
        self._closed = False
        self._meta_lock = threading.Lock()
        self._meta: tuple[int, str] | None = None  # (partitions, topic id) read at _meta_at
        self._meta_at = 0.0
        try:
            self._admin = AdminClient(dict(self._common))
        except KafkaException as exc:
            raise LogError(f"{self._where}: bad client configuration: {exc}") from exc
        self._n = self._ensure_topics(partitions, replication, min_insync_replicas, retention_ms,
                                      dict(topic_config or {}))
        self._high_seen = [0] * self._n  # highest end offsets seen (they never go down)
        n, topic_id = self._current(force=True)
        #: the topic's id (Kafka ≥ 2.8): a deleted and recreated topic gets another
        self.topic_id = topic_id
        cluster = self._metadata(None, self.connect_timeout_s).cluster_id
        #: what this log is, whatever URL names it: the cluster, the topic and its incarnation
        self.log_id = f"kafka:{cluster}/{topic}" + (f"/{topic_id}" if topic_id else "")
        if not topic_id:
            _log.warning("%s: the broker gives topics no id (Kafka < 2.8): a recreated topic cannot be "
                         "told from the old one", self._where)
        #: a record (key + value) larger than this is refused (RecordsRejected); at most the
        #: topic's max.message.bytes less the record overhead
        self.max_record_bytes = self._record_limit(max_record_bytes)
        # Start the producer now: an idempotent producer spends ~0.5 s getting its
        # producer id, which then overlaps with whatever the caller does before the
        # first append.
        self._get_producer().poll(0)

    @classmethod
    def from_url(
        cls,
        netloc: str,
        topic: str,
        options: Mapping[str, str] | None = None,
        codec: Codec | None = None,
        *,
        url: str | None = None,
        **kwargs: Any,
    ) -> KafkaEventLog:
        """Open ``kafka://<netloc>/<topic>?<options>`` (see the module docstring).

        ``kwargs`` are keyword arguments of the constructor; ``config=`` (a dict of
        librdkafka settings) is merged with the URL's ``kafka.*`` options.
        """
        bootstrap, args = parse_options(netloc, topic, options, url, kwargs)
        return cls(bootstrap, topic, codec, url=url, **args)

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            prod, self._producer = self._producer, None
            if prod is not None:
                left = prod.flush(5)
                if left:
                    _log.warning("%s closed with %d record(s) undelivered", self._where, left)
        with self._pool_lock:
            consumers, self._consumers, self._pool = self._consumers, [], []
        for c in consumers:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> KafkaEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaEventLog({self._where!r}, partitions={self._n})"
