"""A follower on a real Kafka topic, when the topic changes under it (issue 11): the
model is marked stale with the reason, and no record is skipped silently."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewPartitions

from eventmodel import events as ev
from eventmodel.log import open_log
from projections.projection import Follower, Projection, catch_up
from projections.state import ClusterState

FLAVOR = ev.Flavor("small", 1, 512, 10)


def _records(first: int, n: int) -> list[ev.Envelope]:
    return [ev.envelope(ev.InstanceUpdated(ev.Instance(f"00000000-0000-0000-0000-{i:012d}", (i + 1) * 10**6,
                                                       "h", "n", "active", FLAVOR)),
                        source="test", message_id=str(i), occurred_at=i, recorded_at=i)
            for i in range(first, first + n)]


def _topic(url: str) -> str:
    return url.split("/", 3)[3].split("?")[0]


def test_partitions_added_under_a_follower_mark_the_model_stale(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    log = open_log(kafka_url)  # 3 partitions
    log.append(_records(0, 20))
    projection = Projection(ClusterState.empty(log.partitions()))
    follower = Follower(log, projection, poll=0.02).start()
    try:
        projection.wait_for(lambda m: m.position.total == 20, timeout=30)
        fut = kafka_admin.create_partitions([NewPartitions(_topic(kafka_url), 5)])
        for f in fut.values():
            f.result(30)
        model = projection.wait_for(lambda m: m.stale is not None, timeout=60)
    finally:
        follower.stop()
    assert "partition" in model.stale and "5" in model.stale, model.stale
    assert model.position.total == 20
    log.close()


def test_records_deleted_before_a_followers_position_mark_the_model_stale(kafka_url: str, kafka_admin) -> None:  # noqa: ANN001
    log = open_log(kafka_url)
    log.append(_records(0, 10))
    projection = Projection(ClusterState.empty(log.partitions()))
    catch_up(projection, log)
    behind = projection.latest().position
    log.append(_records(10, 10))
    topic = _topic(kafka_url)
    # What retention does: records this follower has not read yet are gone.
    end = log.end()
    fut = kafka_admin.delete_records([TopicPartition(topic, p, min(o, behind.offsets[p] + 3))
                                      for p, o in enumerate(end.offsets)])
    for f in fut.values():
        f.result(30)
    follower = Follower(log, projection, poll=0.02).start()
    try:
        model = projection.wait_for(lambda m: m.stale is not None, timeout=60)
    finally:
        follower.stop()
    assert "deleted" in model.stale, model.stale
    assert model.position == behind  # nothing skipped
    log.close()
