"""The topic's set-up and metadata (created when missing, partitions, topic id, record
limit) and its offsets (ListOffsets: start, end, position checks): the admin client's part
of :class:`~eventmodel.log.kafka.log.KafkaEventLog`.

A mixin: its state (``_admin``, ``_meta``, ``_n`` ...) is made by ``KafkaEventLog.__init__``.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, OffsetSpec

from eventmodel.log.base import (
    LogError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
)
from eventmodel.log.kafka.producer import RECORD_OVERHEAD

_log = logging.getLogger("eventmodel.log.kafka")

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


#: how long partitions()/the topic id may be served from the last metadata read (s)
METADATA_MAX_AGE_S = 1.0

#: a topic id of all zeros: the broker has none (Kafka < 2.8)
_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


class TopicAdmin:
    """Set-up, metadata and offsets of the log's topics."""

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
