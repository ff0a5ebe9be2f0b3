"""The Kafka log when the topic changes under it, on the real broker (``compose/kafka.sh``).

- records refused by the broker itself (the topic's ``max.message.bytes`` lowered
  after the log was opened): exactly those are rejected, the others stored;
- a partial snapshot-marker broadcast is reported (BroadcastIncomplete);
- a deleted and recreated topic is another log: new ``log_id``, old checkpoints
  refused, an old reader refused;
- partitions added to a live topic: noticed, readers and writers refused;
- records deleted under a reader (``delete_records``): refused, even when the
  deletion happens after the read's own check;
- durability settings of the topics created.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

from eventmodel import events as ev
from eventmodel.log import (
    BroadcastIncomplete,
    LogError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
    RecordsRejected,
    open_log,
)
from tests.fixtures.kafka import delete_topics, wait_until

pytestmark = pytest.mark.kafka

FLAVOR = ev.Flavor("m1.tiny", 1, 512, 1)
BASE = 1_700_000_000_000_000


def event(key: str, n: int, name: str = "") -> ev.Envelope:
    at = BASE + n * 1000
    inst = ev.Instance(key, at, "h1", "h1", "active", FLAVOR, name=name or f"vm-{key}")
    return ev.envelope(ev.InstanceUpdated(inst, action=f"s{n}"), source="lifecycle-test",
                       message_id=f"{key}/{n}", occurred_at=at, recorded_at=at)


def marker(sid: str) -> ev.Envelope:
    return ev.envelope(ev.SnapshotStarted(sid, partitions=3), source=f"sync:{sid}", message_id=sid,
                       occurred_at=BASE, recorded_at=BASE)


def records(log) -> list[ev.Envelope]:  # noqa: ANN001
    return [r.envelope for b in log.read() for r in b]


def set_topic_config(admin, topic: str, name: str, value: str) -> None:  # noqa: ANN001
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result(timeout=30)


def test_records_the_broker_refuses_are_rejected_exactly(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    with open_log(kafka_url) as log:
        log.append([event("same", 0)])
        # the operator lowers the topic's limit below what the producer was set up for
        set_topic_config(kafka_admin, log.topic, "max.message.bytes", "4000")
        noise = base64.b64encode(os.urandom(12_000)).decode()  # lz4 cannot shrink it below 4000
        batch = [event("same", 1), event("same", 2, name=noise), event("same", 3), event("other", 4)]
        with pytest.raises(RecordsRejected) as info:
            log.append(batch)
        assert list(info.value.rejected) == [1]
        assert "MSG_SIZE_TOO_LARGE" in info.value.rejected[1] or "too large" in info.value.rejected[1].lower()
        # everything else of the batch is stored, once, in order
        got = [e.event_id for e in records(log) if e.key == "same"]
        assert got == [e.event_id for e in (event("same", 0), batch[0], batch[2])]
        assert [e.key for e in records(log)].count("other") == 1
        log.append([event("same", 5)])  # the producer is still usable
        assert log.end().total == 5


class _FailingProducer:
    """A real producer that refuses (transiently, as a full local queue that never
    drains would) every record for one partition."""

    def __init__(self, real, partition: int) -> None:  # noqa: ANN001
        self.real, self.partition = real, partition

    def produce(self, topic, value, key, *, partition, **kw) -> None:  # noqa: ANN001
        if partition == self.partition:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION, "partition unavailable (test)"))
        self.real.produce(topic, value, key, partition=partition, **kw)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.real, name)


def test_a_marker_that_misses_a_partition_is_reported(kafka_url: str) -> None:
    with open_log(kafka_url) as log:
        real = log._producer  # noqa: SLF001
        log._producer = _FailingProducer(real, partition=2)  # noqa: SLF001
        # the marker first: produced to partitions 0 and 1, then partition 2 refuses
        batch = [marker("snap-partial")] + [event(f"m{i}", i) for i in range(6)]
        with pytest.raises(BroadcastIncomplete) as info:
            log.append(batch)
        assert not isinstance(info.value, RecordsRejected)  # transient: the syncer may retry or abort
        stored, missing = info.value.markers[0]
        assert (stored, missing) == (frozenset({0, 1}), frozenset({2}))
        assert "missing [2]" in str(info.value)
        log._producer = real  # noqa: SLF001
        log.append(batch)  # appended again: now on every partition (copies carry the same ids)
        on = {r.partition for b in log.read() for r in b if r.envelope.broadcast}
        assert on == {0, 1, 2}


def test_a_recreated_topic_is_another_log(kafka_url: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    from projections.checkpoint import Checkpointer
    from projections.state import ClusterState

    old = open_log(kafka_url)
    try:
        old.append([event(f"r{i}", i) for i in range(30)])
        assert old.topic_id and old.topic_id in old.log_id
        end = old.end()
        delete_topics(kafka_bootstrap, [old.topic, old.dead_letter_topic])
        new = wait_until(lambda: _try_open(kafka_url), 30, "the topic to be recreated")
        try:
            assert new.log_id != old.log_id and new.topic_id != old.topic_id
            new.append([event("n", 0)])
            # the old log object refuses to read on: at once (its end is past the new
            # topic's), and once its metadata is re-read (≤ 1 s), because the topic id changed
            with pytest.raises(PositionNotCovered):
                list(old.read(end))
            wait_until(lambda: "deleted and recreated" in _refusal(old, end), 5, "the old log to see a new topic id")
            # a position of the old topic, on the new one: past its end
            with pytest.raises(PositionNotCovered, match="past the log's end"):
                list(new.read(end))
            # checkpoints compare log ids: one made on the old topic is refused
            # (a checkpoint at position 0 fits any log's end: only the log id tells them apart)
            Checkpointer.for_log(tmp_path, old).write(ClusterState.empty(3))
            ck = Checkpointer.for_log(tmp_path, new)
            assert ck.load(new.partitions(), new.end()) is None
            assert any("another log" in why for why in ck.skipped), ck.skipped
        finally:
            new.close()
    finally:
        old.close()


def _refusal(log, start: Position) -> str:  # noqa: ANN001
    try:
        list(log.read(start))
    except PositionNotCovered as exc:
        return str(exc)
    return ""


def _try_open(url: str):  # noqa: ANN202
    try:
        return open_log(url)
    except LogError:
        return None  # still being deleted


def test_added_partitions_are_noticed(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    with open_log(kafka_url) as log:
        log.append([event(f"p{i}", i) for i in range(20)])
        pos = log.end()
        assert log.partitions() == 3
        for fut in kafka_admin.create_partitions([NewPartitions(log.topic, 5)]).values():
            fut.result(timeout=30)
        wait_until(lambda: log.partitions() == 5, 10, "partitions() to see 5 partitions")
        with pytest.raises(PartitionsChanged, match="has 5 partitions now, 3 when") as info:
            list(log.read(pos))
        assert (info.value.expected, info.value.actual) == (3, 5)
        with pytest.raises(PartitionsChanged):
            log.append([event("p0", 100)])  # the writer would move keys: refused, nothing stored
        with open_log(kafka_url) as again:  # a log opened after the change uses 5 partitions ...
            assert again.partitions() == 5
            with pytest.raises(PartitionsChanged, match="3 partition"):  # ... and refuses 3-offset positions
                list(again.read(pos))
            assert sum(len(b) for b in again.read(Position.zero(5))) == 20


def test_records_deleted_under_a_reader(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    with open_log(kafka_url) as log:
        log.append([event(f"d{i % 6}", i) for i in range(60)])
        end = log.end()
        # the read's own check passed (bounds taken), then retention deletes records:
        # the consumer's fetch below the log start is refused, never reset
        lo, hi = log._bounds(Position.zero(3), end)  # noqa: SLF001
        cut = [TopicPartition(log.topic, p, end.offsets[p] // 2) for p in range(3)]
        for fut in kafka_admin.delete_records(cut).values():
            fut.result(timeout=30)
        with pytest.raises(PositionNotCovered, match=r"partition \d: records 0\.\.\d+ .*deleted"):
            list(log._read_raw(lo, hi, 10))  # noqa: SLF001
        assert log.start() == Position(tuple(tp.offset for tp in cut))


def test_topics_get_min_insync_replicas(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    with open_log(kafka_url) as log:
        for topic in (log.topic, log.dead_letter_topic):
            res = ConfigResource("topic", topic)
            cfg = kafka_admin.describe_configs([res])[res].result(timeout=30)
            assert cfg["min.insync.replicas"].value == "1"  # replication 1 on the local broker
    with pytest.raises(LogError, match="min_insync_replicas 2 > replication 1"):
        open_log(kafka_url.replace("partitions=3", "partitions=3&min_insync_replicas=2"))
    with pytest.raises(LogError, match="cannot create topic .*eplication"):
        open_log(kafka_url.replace("/t-", "/t3-") + "&replication=3&connect_timeout_s=10")
