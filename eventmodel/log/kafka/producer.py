"""Appending: the idempotent producer, records and their delivery reports, what is
refused for good and what is retried: the producer's part of
:class:`~eventmodel.log.kafka.log.KafkaEventLog`.

A mixin: its state (``_producer``, ``_batch``, ``_lock`` ...) is made by ``KafkaEventLog.__init__``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventmodel.events import Envelope
from eventmodel.log.base import (
    BroadcastIncomplete,
    DeadLetter,
    LogError,
    RecordsRejected,
    bounded_dead_letter,
)
from eventmodel.log.kafka.partitioner import murmur2

_log = logging.getLogger("eventmodel.log.kafka")

#: errors that no retry can cure: the record itself is refused (size, format, timestamp, policy)
_PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_TIMESTAMP, KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    KafkaError.POLICY_VIOLATION,
})

#: bytes a record needs beyond key and value in a one-record batch (batch header 61, record
#: framing ≤ 21); the producer's ``message.max.bytes`` is ``max_record_bytes`` plus this
RECORD_OVERHEAD = 512


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


class Producing:
    """Appends of envelopes and dead letters."""

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
