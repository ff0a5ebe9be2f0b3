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
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import unquote

import msgspec
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

from eventmodel.codec import Codec
from eventmodel.events import Envelope
from eventmodel.urls import redact
from eventmodel.log.base import (
    BroadcastIncomplete,
    DeadLetter,
    LogError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
    RawRecord,
    Record,
    RecordsRejected,
    bounded_dead_letter,
    decode_batches,
)

_log = logging.getLogger(__name__)
_rdlog = logging.getLogger(__name__ + ".librdkafka")

DEAD_LETTER_SUFFIX = ".deadletters"

DEFAULTS: dict[str, Any] = {
    "partitions": 6,
    "replication": 1,
    "min_insync_replicas": 0,  # 0: derived from replication (1 → 1, 2 → 1, ≥3 → 2)
    "max_record_bytes": 1_000_000,
    "retention_ms": -1,
    "delivery_timeout_ms": 300_000,
    "connect_timeout_s": 30.0,
    "read_timeout_s": 60.0,
}

# ---------------------------------------------------------------------------
# The partitioner (Java-compatible murmur2)
# ---------------------------------------------------------------------------

_M = 0x5BD1E995
_U32 = 0xFFFFFFFF
_unpack = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as unsigned 32 bits."""
    n = len(data)
    h = (0x9747B28C ^ n) & _U32
    n4 = n & ~3
    for (k,) in _unpack(data[:n4]):
        k = (k * _M) & _U32
        k ^= k >> 24
        k = (k * _M) & _U32
        h = ((h * _M) & _U32) ^ k
    extra = n & 3
    if extra == 3:
        h ^= data[n4 + 2] << 16
    if extra >= 2:
        h ^= data[n4 + 1] << 8
    if extra >= 1:
        h ^= data[n4]
        h = (h * _M) & _U32
    h ^= h >> 13
    h = (h * _M) & _U32
    h ^= h >> 15
    return h


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition of a key: the Java client's default partitioner."""
    if isinstance(key, str):
        key = key.encode()
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LogError(f"option {name}={value!r} is not an integer") from None


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LogError(f"option {name}={value!r} is not a number") from None


#: errors that go away by themselves: leadership moving, a broker restarting, a new topic
_TRANSIENT = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.REPLICA_NOT_AVAILABLE,
    KafkaError.BROKER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NETWORK_EXCEPTION,
    KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
    KafkaError._WAIT_COORD, KafkaError._NOENT,
})


class _Stamp(msgspec.Struct):
    recorded_at: int = 0


_stamp = msgspec.json.Decoder(_Stamp)


#: errors that no retry can cure: the record itself is refused (size, format, timestamp, policy)
_PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_TIMESTAMP, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    KafkaError.POLICY_VIOLATION,
})

#: bytes a record needs beyond key and value in a one-record batch (batch header 61, record
#: framing ≤ 21); the producer's ``message.max.bytes`` is ``max_record_bytes`` plus this
RECORD_OVERHEAD = 512

#: how long partitions()/the topic id may be served from the last metadata read (s)
METADATA_MAX_AGE_S = 1.0

#: a topic id of all zeros: the broker has none (Kafka < 2.8)
_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


class _Item(msgspec.Struct, frozen=True, gc=False):
    """One record to produce: ``index`` is its envelope's (or dead letter's) place in the batch."""

    topic: str
    value: bytes
    key: bytes
    partition: int
    ts: int
    headers: list[tuple[str, bytes]] | None
    index: int
    broadcast: bool


class _Batch:
    """Delivery bookkeeping of one append (appends are serialised by a lock)."""

    __slots__ = ("items", "pending", "rejected", "failed", "errors", "refused", "reached")

    def __init__(self, items: list[_Item]) -> None:
        self.items = items
        self.pending = 0
        self.rejected: dict[int, str] = {}  # index -> why, refused for good
        self.failed: dict[int, str] = {}  # index -> why, not stored (transient)
        self.errors: list[str] = []
        self.refused: dict[int, str] = {}  # item number -> why the broker refused it for good
        self.reached: dict[int, set[int]] = {}  # broadcast index -> partitions that hold it


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


class KafkaEventLog:
    """The event log on an Apache Kafka topic (see the module docstring)."""

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
            raise LogError(f"{url or 'kafka log'}: no bootstrap servers (kafka://host:port/topic)")
        if not topic or "/" in topic:
            raise LogError(f"{url or 'kafka log'}: bad topic name {topic!r} (kafka://host:port/topic)")
        if partitions < 1:
            raise LogError(f"{url or topic}: partitions must be >= 1, not {partitions}")
        if replication < 1:
            raise LogError(f"{url or topic}: replication must be >= 1, not {replication}")
        if min_insync_replicas <= 0:
            min_insync_replicas = 1 if replication < 3 else 2
        if min_insync_replicas > replication:
            raise LogError(f"{url or topic}: min_insync_replicas {min_insync_replicas} > replication "
                           f"{replication}: every append would be refused")
        if max_record_bytes < 1:
            raise LogError(f"{url or topic}: max_record_bytes must be >= 1, not {max_record_bytes}")
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
        where = redact(url or f"kafka://{netloc}/{topic}")
        config: dict[str, Any] = {}
        topic_config: dict[str, str] = {}
        args: dict[str, Any] = {}
        if "@" in netloc:
            userinfo, _, netloc = netloc.rpartition("@")
            user, _, password = userinfo.partition(":")
            config["sasl.username"] = unquote(user)
            if password:
                config["sasl.password"] = unquote(password)
        for name, value in (options or {}).items():
            if name.startswith("kafka."):
                config[name[len("kafka."):]] = value
            elif name.startswith("topic."):
                topic_config[name[len("topic."):]] = value
            elif name in ("partitions", "replication", "min_insync_replicas", "max_record_bytes",
                          "retention_ms", "delivery_timeout_ms"):
                args[name] = _as_int(name, value)
            elif name in ("connect_timeout_s", "read_timeout_s"):
                args[name] = _as_float(name, value)
            else:
                known = ", ".join([*DEFAULTS, "kafka.<librdkafka setting>", "topic.<topic config>"])
                raise LogError(f"{where}: unknown option {name!r} (known: {known})")
        config.update(kwargs.pop("config", None) or {})
        topic_config.update(kwargs.pop("topic_config", None) or {})
        args.update(kwargs)
        return cls(netloc, topic, codec, url=url, config=config, topic_config=topic_config, **args)

    # -- set-up ------------------------------------------------------------
    def _on_client_error(self, err: KafkaError) -> None:
        self._last_error = err.str()
        if err.fatal():
            self._producer_fatal = err.str()
            _log.error("%s: fatal Kafka client error: %s", self._where, err.str())
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            _log.debug("%s: %s", self._where, err.str())
        else:
            _log.warning("%s: Kafka client error: %s", self._where, err.str())

    def _metadata(self, topic: str | None, timeout: float):
        try:
            return self._admin.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            raise LogError(
                f"cannot reach Kafka at {self.bootstrap} for {self._where} within "
                f"{self.connect_timeout_s:g} s: {getattr(err, 'str', lambda: err)()}"
                f"{'; last client error: ' + self._last_error if self._last_error else ''}"
                " (is the broker running? compose/kafka.sh status)"
            ) from exc

    def _record_limit(self, wanted: int) -> int:
        """``wanted``, lowered to what the topic's ``max.message.bytes`` lets through."""
        res = ConfigResource("topic", self.topic)
        try:
            cfg = self._admin.describe_configs([res], request_timeout=self.connect_timeout_s)[res].result()
            topic_max = int(cfg["max.message.bytes"].value)
        except (KafkaException, KeyError, ValueError) as exc:
            _log.warning("%s: cannot read the topic's max.message.bytes (%s); assuming Kafka's default",
                         self._where, exc)
            topic_max = 1_048_588
        limit = min(wanted, topic_max - RECORD_OVERHEAD)
        if limit < wanted:
            _log.warning("%s: max_record_bytes lowered from %d to %d (the topic's max.message.bytes is %d)",
                         self._where, wanted, limit, topic_max)
        return max(1, limit)

    def _describe(self, timeout: float) -> tuple[int, str]:
        """(partitions, topic id) of the topic, read from the cluster now."""
        fut = self._admin.describe_topics(TopicCollection([self.topic]), request_timeout=timeout)[self.topic]
        try:
            d = fut.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            code = err.code() if isinstance(err, KafkaError) else None
            if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_TOPIC_ID):
                raise LogError(f"{self._where}: topic {self.topic} does not exist any more (deleted?); "
                               "reopen the log to create it, then replay from the log start and run a "
                               "full sync") from exc
            raise LogError(f"cannot describe topic {self.topic} at {self._where}: "
                           f"{getattr(err, 'str', lambda: err)()}") from exc
        tid = str(d.topic_id) if d.topic_id is not None else ""
        return len(d.partitions), ("" if tid == _NO_TOPIC_ID else tid)

    def _current(self, force: bool = False, timeout: float | None = None) -> tuple[int, str]:
        """(partitions, topic id), re-read when older than METADATA_MAX_AGE_S."""
        now = time.monotonic()
        with self._meta_lock:
            if not force and self._meta is not None and now - self._meta_at < METADATA_MAX_AGE_S:
                return self._meta
        meta = self._describe(timeout or max(1.0, min(30.0, self.connect_timeout_s)))
        with self._meta_lock:
            self._meta, self._meta_at = meta, time.monotonic()
        return meta

    def _verify(self, reading: bool) -> None:
        """Refuse to go on when the topic changed under this log object: partitions added
        (reads and appends), or the topic deleted and recreated (reads).

        An append does not fail because the metadata cannot be read (a broker outage):
        it goes on with what was last read and blocks in the producer, as before."""
        if reading:
            n, tid = self._current()
        else:
            try:
                n, tid = self._current(timeout=2.0)
            except LogError as exc:
                _log.debug("%s: metadata not refreshed before an append: %s", self._where, exc)
                with self._meta_lock:
                    self._meta_at = time.monotonic()  # try again in METADATA_MAX_AGE_S
                    assert self._meta is not None
                    n, tid = self._meta
        if reading and self.topic_id and tid != self.topic_id:
            raise PositionNotCovered(
                f"{self._where}: topic {self.topic} was deleted and recreated since this log was opened "
                f"(topic id {self.topic_id}, now {tid}): positions and checkpoints of the old topic do not "
                "apply to it. Reopen the log, replay from the log start and run a full sync (eventmodel sync)")
        if n != self._n:
            raise PartitionsChanged(
                f"{self._where}: topic {self.topic} has {n} partitions now, {self._n} when this log was "
                f"opened: partitions were added, so keys map to other partitions and per-key order does "
                f"not hold across the change. Stop the writers; copy the topic to a new one (or accept "
                f"the change: reopen the log, replay from the log start and run a full sync)",
                self._n, n)

    def _ensure_topics(
        self, partitions: int, replication: int, min_insync: int, retention_ms: int,
        topic_config: dict[str, str],
    ) -> int:
        deadline = time.monotonic() + self.connect_timeout_s
        md = self._metadata(None, self.connect_timeout_s)
        wanted = {self.topic: partitions, self.dead_letter_topic: 1}
        missing = [t for t in wanted if t not in md.topics or md.topics[t].error is not None]
        if missing:
            cfg = {
                "retention.ms": str(retention_ms),
                # with acks=all, an append returns only when this many replicas hold it
                "min.insync.replicas": str(min_insync),
                # position_at relies on the producer's timestamps (recorded_at)
                "message.timestamp.type": "CreateTime",
                # Kafka 4 rejects records stamped > 1 h ahead of the broker's clock by
                # default; a simulated or skewed clock must not make appends fail.
                "message.timestamp.after.max.ms": str(2**63 - 1),
                **topic_config,
            }
            for name in missing:
                self._create_topic(name, wanted[name], replication, cfg, optional={
                    k for k in ("message.timestamp.after.max.ms",) if k not in topic_config
                })
        # Wait until both topics have a leader for every partition.
        while True:
            remaining = deadline - time.monotonic()
            md = self._metadata(None, max(remaining, 1.0))
            ready = True
            for t in wanted:
                tm = md.topics.get(t)
                if tm is None or tm.error is not None or not tm.partitions or any(
                    pm.leader < 0 for pm in tm.partitions.values()
                ):
                    ready = False
            if ready:
                n = len(md.topics[self.topic].partitions)
                if n != partitions and not missing:
                    _log.info("%s: topic exists with %d partitions (asked for %d); using %d",
                              self._where, n, partitions, n)
                return n
            if remaining <= 0:
                raise LogError(f"{self._where}: topic {self.topic} has no leader after "
                               f"{self.connect_timeout_s:g} s")
            time.sleep(0.05)

    def _create_topic(self, name: str, partitions: int, replication: int, cfg: dict[str, str],
                      optional: set[str]) -> None:
        fut = self._admin.create_topics([NewTopic(name, partitions, replication, config=cfg)],
                                        request_timeout=self.connect_timeout_s)[name]
        try:
            fut.result()
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return  # another process created it meanwhile
            if err.code() == KafkaError.INVALID_CONFIG and optional & cfg.keys():
                # an older broker (< 3.6) that does not know a setting we add by default
                _log.info("%s: broker refused %s (%s); creating %s without",
                          self._where, sorted(optional & cfg.keys()), err.str(), name)
                self._create_topic(name, partitions, replication,
                                   {k: v for k, v in cfg.items() if k not in optional}, set())
                return
            raise LogError(f"{self._where}: cannot create topic {name}: {err.str()}") from exc
        _log.info("%s: created topic %s (%d partitions, replication %d)",
                  self._where, name, partitions, replication)

    def partitions(self) -> int:
        """The topic's partition count now (metadata re-read at most every METADATA_MAX_AGE_S)."""
        return self._current()[0]

    def start(self) -> Position:
        """The low watermarks: the first offset each partition still holds."""
        offs = self._list_offsets(self.topic, {p: OffsetSpec.earliest() for p in range(self._n)})
        return Position(tuple(offs[p] for p in range(self._n)))

    # -- writing -----------------------------------------------------------
    def _delivered(self, j: int, err: KafkaError | None, msg: Message) -> None:
        """Delivery report of item ``j`` of the current batch."""
        b = self._batch
        b.pending -= 1
        item = b.items[j]
        if err is None:
            if item.broadcast:
                b.reached.setdefault(item.index, set()).add(item.partition)
            return
        if err.code() in _PERMANENT:
            b.refused[j] = err.str()
        else:
            b.failed.setdefault(item.index, f"{item.topic}[{item.partition}]: {err.str()}")
            if len(b.errors) < 5:
                b.errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def _get_producer(self) -> Producer:
        if self._closed:
            raise LogError(f"{self._where} is closed")
        if self._producer is not None and self._producer_fatal is not None:
            _log.warning("%s: replacing the producer after a fatal error: %s", self._where, self._producer_fatal)
            self._producer = None
        if self._producer is None:
            self._producer_fatal = None
            conf = dict(self._common)
            conf.setdefault("linger.ms", 5)
            conf.setdefault("compression.type", "lz4")
            conf.setdefault("queue.buffering.max.messages", 500_000)
            # librdkafka refuses larger records itself (MSG_SIZE_TOO_LARGE) and never
            # builds a batch the topic would refuse as a whole
            conf.setdefault("message.max.bytes", self.max_record_bytes + RECORD_OVERHEAD)
            conf.update({
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": self.delivery_timeout_ms,
            })
            try:
                self._producer = Producer(conf)
            except KafkaException as exc:
                raise LogError(f"{self._where}: bad producer configuration: {exc}") from exc
        return self._producer

    def _partition(self, key: str) -> int:
        kb = key.encode()
        p = self._part_cache.get(kb)
        if p is None:
            if len(self._part_cache) > 1_000_000:
                self._part_cache.clear()
            p = self._part_cache[kb] = (murmur2(kb) & 0x7FFFFFFF) % self._n
        return p

    def partition_of(self, key: str) -> int:
        """The partition the records of ``key`` go to."""
        return self._partition(key)

    def _produce(self, prod: Producer, b: _Batch, numbers: Sequence[int]) -> KafkaException | None:
        """Produce items ``numbers`` of ``b``; a record refused at once for good goes to
        ``b.rejected``. Returns the first transient refusal (then stops), else None."""
        produce = prod.produce
        delivered = self._delivered
        items = b.items
        for j in numbers:
            it = items[j]
            while True:
                try:
                    if it.headers is None:
                        produce(it.topic, it.value, it.key, partition=it.partition, timestamp=it.ts,
                                on_delivery=partial(delivered, j))
                    else:
                        produce(it.topic, it.value, it.key, partition=it.partition, timestamp=it.ts,
                                headers=it.headers, on_delivery=partial(delivered, j))
                    b.pending += 1
                    break
                except BufferError:  # local queue full: serve delivery reports, then retry
                    prod.poll(0.05)
                except KafkaException as exc:  # refused before sending
                    err = exc.args[0] if exc.args else None
                    if isinstance(err, KafkaError) and err.code() in _PERMANENT:
                        b.rejected.setdefault(it.index, f"{it.topic}[{it.partition}]: {err.str()}")
                        break
                    return exc
        return None

    def _produce_all(self, items: list[_Item], rejected: Mapping[int, str] | None = None) -> None:
        """Produce every item and wait for every delivery report; then raise what went wrong.

        Whatever happens, it returns only when no record of this call is in flight, so
        the delivery reports of one call never count for the next. Records the broker
        refused for good are produced again one at a time (a refused batch may have
        carried innocent records with it); those refused alone are the rejected ones.
        """
        with self._lock:
            prod = self._get_producer()
            b = self._batch = _Batch(items)
            b.rejected.update(rejected or {})
            self._last_error = None
            local: KafkaException | None = None
            try:
                local = self._produce(prod, b, range(len(items)))
            finally:
                self._wait_delivered(prod, b)
            if b.refused and local is None:
                if len(b.refused) == 1:
                    (j, why), = b.refused.items()
                    b.rejected.setdefault(items[j].index, f"{items[j].topic}[{items[j].partition}]: {why}")
                else:
                    retry, b.refused = sorted(b.refused), {}
                    for j in retry:
                        try:
                            local = self._produce(prod, b, [j])
                        finally:
                            self._wait_delivered(prod, b)
                        if local is not None:
                            break
                        why = b.refused.pop(j, None)
                        if why is not None:
                            b.rejected.setdefault(items[j].index, f"{items[j].topic}[{items[j].partition}]: {why}")
            self._raise_for(b, local)

    def _raise_for(self, b: _Batch, local: KafkaException | None) -> None:
        """Raise what the batch's outcome calls for (nothing if every record is stored)."""
        n = self._n
        incomplete: dict[int, tuple[frozenset[int], frozenset[int]]] = {}
        for it in b.items:
            if it.broadcast and it.index not in incomplete:
                reached = frozenset(b.reached.get(it.index, ()))
                if len(reached) < n:
                    incomplete[it.index] = (reached, frozenset(range(n)) - reached)
        transient = local is not None or b.failed
        if transient:
            if local is not None:
                err = local.args[0] if local.args else local
                why = f"refused: {getattr(err, 'str', lambda: err)()}"
            else:
                why = f"failed: {len(b.failed)} record(s) not stored ({'; '.join(b.errors)})"
            text = f"append to {self._where} {why}; the batch may be appended again"
            if incomplete:
                raise BroadcastIncomplete(
                    text + "; snapshot marker(s) not on every partition: " + "; ".join(
                        f"#{i} on {sorted(st) or 'none'}, missing {sorted(miss)}"
                        for i, (st, miss) in sorted(incomplete.items())),
                    incomplete) from local
            raise LogError(text) from local
        if b.rejected:
            rejected = dict(b.rejected)
            for i, (st, _miss) in incomplete.items():
                if i in rejected and st:
                    rejected[i] += f" (broadcast record now on partitions {sorted(st)} only)"
            raise RecordsRejected(rejected)

    def _wait_delivered(self, prod: Producer, b: _Batch) -> None:
        started = time.monotonic()
        next_warning = started + 10.0
        while b.pending > 0:
            prod.flush(0.5)
            now = time.monotonic()
            if b.pending > 0 and now >= next_warning:
                next_warning = now + 10.0
                _log.warning(
                    "append to %s: %d record(s) not yet acknowledged after %.0f s (%s); "
                    "retrying for up to %.0f s",
                    self._where, b.pending, now - started, self._last_error or "waiting for the broker",
                    self.delivery_timeout_ms / 1000,
                )

    def append(self, envelopes: Sequence[Envelope]) -> None:
        """Store the batch (broadcast envelopes once per partition); see the module docstring
        for what each exception means."""
        if not envelopes:
            return
        self._verify(reading=False)
        encode = self.codec.encode
        topic = self.topic
        part = self._partition
        n = self._n
        limit = self.max_record_bytes
        items: list[_Item] = []
        add = items.append
        rejected: dict[int, str] = {}
        for i, e in enumerate(envelopes):  # encode everything first: a bad envelope stores nothing
            value = encode(e)
            key = e.key.encode()
            size = len(value) + len(key)
            if size > limit:
                rejected[i] = (f"{e.type} {e.key!r}: record of {size} bytes exceeds max_record_bytes "
                               f"{limit} of {self._where}")
                continue
            ts = max(1, e.recorded_at // 1000)  # 0 would mean "now" to the producer
            if e.broadcast:
                for p in range(n):
                    add(_Item(topic, value, key, p, ts, None, i, True))
            else:
                add(_Item(topic, value, key, part(e.key), ts, None, i, False))
        self._produce_all(items, rejected)

    def append_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store dead letters, bounded (:func:`bounded_dead_letter`): the raw bytes as value,
        headers ``reason``, ``source``, ``at`` (µs), ``size`` and ``sha256`` of the whole input."""
        if not letters:
            return
        topic = self.dead_letter_topic
        items = []
        for i, d in enumerate(letters):
            d = bounded_dead_letter(d)
            items.append(_Item(
                topic, d.raw, d.source.encode(), 0, max(1, d.at // 1000),
                [("reason", d.reason.encode()), ("source", d.source.encode()), ("at", str(d.at).encode()),
                 ("size", str(d.size).encode()), ("sha256", d.sha256.encode())],
                i, False,
            ))
        self._produce_all(items)

    # -- offsets -----------------------------------------------------------
    def _list_offsets(self, topic: str, specs: dict[int, OffsetSpec]) -> dict[int, int]:
        """One ListOffsets request; retried while the partition leaders settle."""
        deadline = time.monotonic() + self.read_timeout_s
        while True:
            req = {TopicPartition(topic, p): spec for p, spec in specs.items()}
            try:
                futures = self._admin.list_offsets(req, request_timeout=max(1.0, min(30.0, self.read_timeout_s)))
                return {tp.partition: fut.result().offset for tp, fut in futures.items()}
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and (err.retriable() or err.code() in _TRANSIENT)
                if not retriable or time.monotonic() >= deadline:
                    what = err.str() if isinstance(err, KafkaError) else str(exc)
                    raise LogError(f"cannot list offsets of {topic} at {self._where}: {what}") from exc
                # stale leader metadata (e.g. after a broker restart): refresh, then retry
                try:
                    self._admin.list_topics(topic, timeout=2)
                except KafkaException:
                    pass
                time.sleep(0.1)

    def end(self) -> Position:
        # serve the clients' queued logs and error callbacks while no append runs
        self._admin.poll(0)
        if self._producer is not None and self._lock.acquire(blocking=False):
            try:
                if self._producer is not None:
                    self._producer.poll(0)
            finally:
                self._lock.release()
        offs = self._list_offsets(self.topic, {p: OffsetSpec.latest() for p in range(self._n)})
        seen = self._high_seen
        for p in range(self._n):
            if offs[p] > seen[p]:
                seen[p] = offs[p]
        return Position(tuple(offs[p] for p in range(self._n)))

    def _check(self, pos: Position, what: str) -> None:
        if len(pos.offsets) != self._n:
            raise PartitionsChanged(
                f"{self._where}: {what} position {pos} has {len(pos.offsets)} partition(s), the topic has "
                f"{self._n}: it was made before partitions were added (or for another log), and keys "
                f"now map to other partitions. Do not read on from it: replay from the log start with "
                f"{self._n} partitions and run a full sync (eventmodel sync)",
                len(pos.offsets), self._n)

    def _bounds(self, start: Position | None, end: Position | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The offsets to read from and up to, once checked against what the log holds.

        Raises PositionNotCovered for a start before the log start in a partition that
        has records to read (they were deleted), and for a start or end past the log's
        end (another incarnation). Costs one ListOffsets request (the low watermarks)
        when there is something to read, two when the end was not given.
        """
        n = self._n
        latest: tuple[int, ...] | None = None
        if end is None:
            latest = self.end().offsets
        hi = latest if end is None else end.offsets
        lo = start.offsets if start is not None else None
        lo0 = lo if lo is not None else (0,) * n
        seen = self._high_seen
        if latest is not None or any(lo0[p] > seen[p] or hi[p] > seen[p] for p in range(n)):
            latest = latest or self.end().offsets
            for p in range(n):
                bad = max(lo0[p], hi[p])
                if bad > latest[p]:
                    raise PositionNotCovered(
                        f"{self._where}: partition {p}: position offset {bad} is past the log's end "
                        f"{latest[p]} ({bad - latest[p]} record(s) this log never had): the position comes "
                        f"from another log or an earlier incarnation of this topic (deleted and recreated). "
                        f"Discard it and its checkpoints: replay from the log start ({self.start()}) and "
                        f"run a full sync (eventmodel sync)")
        todo = [p for p in range(n) if (lo[p] if lo is not None else 0) < hi[p]]
        if not todo:
            return (lo if lo is not None else hi), hi
        low = self._list_offsets(self.topic, {p: OffsetSpec.earliest() for p in range(n)})
        if lo is None:
            return tuple(min(low[p], hi[p]) for p in range(n)), hi
        for p in todo:
            if lo[p] < low[p]:
                raise self._not_covered(p, lo[p], low[p], start)
        return lo, hi

    def _not_covered(self, p: int, at: int, low: int, start: Position | None) -> PositionNotCovered:
        return PositionNotCovered(
            f"{self._where}: partition {p}: records {at}..{low - 1} ({low - at} record(s)) before the log "
            f"start {low} were deleted (retention or delete-records); reading from position "
            f"{start if start is not None else at} would lose them. Restore from a newer checkpoint (at "
            f"or after the log start), or replay from the log start and run a full sync (eventmodel "
            f"sync) so that the model is complete again")

    # -- reading -----------------------------------------------------------
    def _take_consumer(self) -> Consumer:
        with self._pool_lock:
            if self._closed:
                raise LogError(f"{self._where} is closed")
            if self._pool:
                return self._pool.pop()
        conf = dict(self._common)
        # A reused consumer's next assign() waits for the previous read's last fetch,
        # which the broker holds up to fetch.wait.max.ms at the end of the data:
        # 100 ms per read with 100 ms, ~3 ms with 1 ms (measured). Partitions that
        # reached their end are paused and the consumer is unassigned after a read,
        # so the short wait does not make idle consumers poll the broker.
        conf.setdefault("fetch.wait.max.ms", 1)
        # Bigger fetches: read_raw of 200k events went from ~160k to ~700k records/s
        # with 10 MB instead of librdkafka's 1 MB per partition (measured).
        conf.setdefault("max.partition.fetch.bytes", 10 * 1024 * 1024)
        conf.update({
            "group.id": f"eventmodel-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # A fetch below the log start (records deleted by retention) is an error,
            # never a silent jump: _scan raises PositionNotCovered.
            "auto.offset.reset": "error",
        })
        try:
            c = Consumer(conf)
        except KafkaException as exc:
            raise LogError(f"{self._where}: bad consumer configuration: {exc}") from exc
        with self._pool_lock:
            self._consumers.append(c)
        return c

    def _give_back(self, c: Consumer, paused: list[TopicPartition]) -> None:
        try:
            if paused:  # the pause flag outlives unassign(): clear it for the next read
                c.resume(paused)
            c.unassign()
        except Exception:  # noqa: BLE001 - a broken consumer is dropped, not pooled
            self._drop(c)
            return
        with self._pool_lock:
            if self._closed or len(self._pool) >= 4:
                pass
            else:
                self._pool.append(c)
                return
        self._drop(c)

    def _drop(self, c: Consumer) -> None:
        with self._pool_lock:
            if c in self._consumers:
                self._consumers.remove(c)
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass

    def _scan(
        self, topic: str, starts: Mapping[int, int], ends: Mapping[int, int], batch: int
    ) -> Iterator[list[Message]]:
        """Messages of ``topic`` from ``starts[p]`` up to ``ends[p]`` (exclusive), in batches."""
        todo = {p: ends[p] for p, s in starts.items() if s < ends[p]}
        if not todo:
            return
        nxt = {p: starts[p] for p in todo}
        c = self._take_consumer()
        paused: list[TopicPartition] = []
        try:
            c.assign([TopicPartition(topic, p, nxt[p]) for p in todo])
            eof = KafkaError._PARTITION_EOF
            last_progress = time.monotonic()
            while todo:
                want = min(batch, sum(e - nxt[p] for p, e in todo.items()))
                msgs = c.consume(num_messages=max(1, want), timeout=0.5)
                out: list[Message] = []
                done: list[int] = []
                for m in msgs:
                    p = m.partition()
                    end = todo.get(p)
                    if end is None:
                        continue  # finished partition, or a stale fetch
                    err = m.error()
                    if err is not None:
                        if err.code() == eof:  # no more data now: the partition is done ...
                            if m.offset() < end:  # ... short of the end asked for?
                                latest = self._list_offsets(topic, {p: OffsetSpec.latest()})[p]
                                if latest < end:
                                    raise PositionNotCovered(
                                        f"reading {topic}[{p}] from {self._where}: the read was to end at "
                                        f"offset {end}, past the log's end {latest}: the topic was "
                                        f"recreated or truncated under the reader. Discard the position "
                                        f"and its checkpoints: replay from the log start and run a full "
                                        f"sync (eventmodel sync)")
                                continue  # a stale event: the records are there, read on
                            del todo[p]
                            done.append(p)
                            continue
                        if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                            low = self._list_offsets(topic, {p: OffsetSpec.earliest()})[p]
                            if nxt[p] < low:
                                raise self._not_covered(p, nxt[p], low, None)
                            raise PositionNotCovered(
                                f"reading {topic}[{p}] from {self._where} at offset {nxt[p]}: {err.str()} "
                                f"(log start {low}); replay from the log start and run a full sync")
                        if err.fatal() or not err.retriable() and err.code() in (
                            KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                            KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC,
                        ):
                            raise LogError(f"reading {topic}[{p}] from {self._where}: {err.str()}")
                        _log.warning("reading %s[%d] from %s: %s", topic, p, self._where, err.str())
                        continue
                    off = m.offset()
                    if off < nxt[p]:
                        continue  # before the start (a re-delivered or reset fetch)
                    if off >= end:
                        del todo[p]
                        done.append(p)
                        continue
                    out.append(m)
                    nxt[p] = off + 1
                    if off >= end - 1:
                        del todo[p]
                        done.append(p)
                if done and todo:
                    tps = [TopicPartition(topic, p) for p in done]
                    c.pause(tps)
                    paused.extend(tps)
                if out:
                    last_progress = time.monotonic()
                    yield out
                elif done:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.read_timeout_s:
                    raise LogError(
                        f"reading {topic} from {self._where}: no record for {self.read_timeout_s:g} s "
                        f"(waiting at {', '.join(f'{p}:{nxt[p]}' for p in todo)}; "
                        f"{self._last_error or 'is the broker up?'})"
                    )
        finally:
            self._give_back(c, paused)

    def read_raw(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[RawRecord]]:
        """Records from ``start`` (default: the log start) up to ``end`` (default: the end now).

        Checked at once, before any record is read: PartitionsChanged if the topic's
        partition count changed or the positions have another count; PositionNotCovered
        if the topic was recreated, if ``start`` lies before the log start where there
        are records to read, or ``start``/``end`` past the end. Records deleted while
        the read runs raise PositionNotCovered when the read reaches them.
        """
        self._verify(reading=True)
        if start is not None:
            self._check(start, "start")
        if end is not None:
            self._check(end, "end")
        lo, hi = self._bounds(start, end)
        return self._read_raw(lo, hi, batch)

    def _read_raw(self, lo: tuple[int, ...], hi: tuple[int, ...], batch: int) -> Iterator[list[RawRecord]]:
        for msgs in self._scan(self.topic, dict(enumerate(lo)), dict(enumerate(hi)), batch):
            yield [RawRecord(m.partition(), m.offset(), m.value()) for m in msgs]

    def read(
        self, start: Position | None = None, end: Position | None = None, batch: int = 5000
    ) -> Iterator[list[Record]]:
        return decode_batches(self.read_raw(start, end, batch), self.codec)

    def read_key(self, key: str) -> Iterator[Record]:
        """Every record of one entity key, in log order (scans the key's partition only)."""
        p = self._partition(key)
        kb = key.encode()
        hi = self.end().offsets[p]
        lo = self._list_offsets(self.topic, {p: OffsetSpec.earliest()})[p]

        def raw() -> Iterator[list[RawRecord]]:
            for msgs in self._scan(self.topic, {p: lo}, {p: hi}, 5000):
                yield [RawRecord(p, m.offset(), m.value()) for m in msgs if m.key() == kb]

        for batch in decode_batches(raw(), self.codec):
            yield from batch

    def position_at(self, time_us: int) -> Position:
        """The first position whose records were recorded after ``time_us``.

        The broker's time index finds, per partition, the first record of the same
        millisecond or later; the records of that millisecond are then checked by
        their ``recorded_at`` (µs).
        """
        t_ms = time_us // 1000
        end = self.end().offsets
        found = self._list_offsets(self.topic, {p: OffsetSpec.for_timestamp(t_ms) for p in range(self._n)})
        out = []
        for p in range(self._n):
            o = found[p]
            if o < 0 or o >= end[p]:
                out.append(end[p])
                continue
            out.append(self._first_after(p, o, end[p], time_us, t_ms))
        return Position(tuple(out))

    def _first_after(self, p: int, start: int, end: int, time_us: int, t_ms: int) -> int:
        for msgs in self._scan(self.topic, {p: start}, {p: end}, 500):
            for m in msgs:
                _, ts = m.timestamp()
                if ts > t_ms and ts > 1:  # (1 ms stands for any recorded_at < 1 ms)
                    return m.offset()
                if ts >= t_ms:
                    try:
                        rec = _stamp.decode(m.value()).recorded_at
                    except msgspec.DecodeError:
                        rec = ts * 1000
                    if rec > time_us:
                        return m.offset()
        return end

    def dead_letters(self) -> Iterator[DeadLetter]:
        hi = self._list_offsets(self.dead_letter_topic, {0: OffsetSpec.latest()})[0]
        lo = self._list_offsets(self.dead_letter_topic, {0: OffsetSpec.earliest()})[0]
        for msgs in self._scan(self.dead_letter_topic, {0: lo}, {0: hi}, 1000):
            for m in msgs:
                h = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])}
                raw = m.value() or b""
                try:
                    at = int(h.get("at", ""))
                except ValueError:
                    at = m.timestamp()[1] * 1000
                try:
                    size = int(h.get("size", ""))
                except ValueError:
                    size = len(raw)  # written before sizes were recorded: kept whole
                yield DeadLetter(
                    raw=raw, reason=h.get("reason", ""), source=h.get("source", ""),
                    at=at, offset=m.offset(), size=size, sha256=h.get("sha256", ""),
                )

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
