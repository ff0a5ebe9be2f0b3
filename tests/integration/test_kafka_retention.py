"""Retention deleting records under a reader, and an outage told apart from a refusal.

Both run on a broker of their own (``EVENTMODEL_KAFKA_RETENTION_PORT``, default 19132,
and the next port for the controller, fresh data directory), started by
``compose/kafka.sh`` with ``EVENTMODEL_KAFKA_RETENTION_CHECK_MS=500`` so that expired
segments go within a second rather than Kafka's five minutes; the outage test stops
it, so it runs last.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from eventmodel import events as ev
from eventmodel.log import BroadcastIncomplete, LogError, Position, PositionNotCovered, RecordsRejected, open_log
from tests.fixtures.kafka import broker_running, start_broker, stop_broker, wait_until

pytestmark = pytest.mark.kafka

PORT = int(os.environ.get("EVENTMODEL_KAFKA_RETENTION_PORT", "19132"))
FLAVOR = ev.Flavor("m1.tiny", 1, 512, 1)
OLD = 1_700_000_000_000_000  # µs, 2023: older than any retention.ms


def event(key: str, n: int, at: int) -> ev.Envelope:
    inst = ev.Instance(key, at, "h1", "h1", "active", FLAVOR, name="x" * 200)
    return ev.envelope(ev.InstanceUpdated(inst, action=f"s{n}"), source="retention-test",
                       message_id=f"{key}/{n}", occurred_at=at, recorded_at=at)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    where: dict[str, object] = {
        "port": PORT, "controller_port": PORT + 1, "data": tmp_path_factory.mktemp("kafka-retention"),
        "env": {"EVENTMODEL_KAFKA_RETENTION_CHECK_MS": "500"},
    }
    assert not broker_running(**where)
    took = start_broker(**where)
    print(f"retention broker started in {took:.1f} s")
    try:
        yield where
    finally:
        stop_broker(**where)


def test_retention_deletes_records_under_a_reader(broker: dict[str, object]) -> None:
    # old records expire at once (retention 1 s, record time 2023); a segment rolls on
    # the next append once its first record is older than segment.ms
    url = (f"kafka://127.0.0.1:{PORT}/expiring?partitions=2&retention_ms=1000"
           "&topic.segment.ms=100&topic.retention.bytes=-1")
    with open_log(url) as log:
        reader_at = log.end()  # a follower's position before anything was written
        assert reader_at == Position.zero(2) == log.start()
        log.append([event(f"k{i % 4}", i, OLD + i) for i in range(200)])
        first = log.end()
        later = iter(range(200, 10**6))

        def append_and_look() -> Position | None:
            # a segment rolls on an append once segment.ms has passed since its first record;
            # the broker's retention task then deletes the expired ones. Records appended
            # here are kept (their time is in the future).
            i = next(later)
            log.append([event(f"k{i % 4}", i, time.time_ns() // 1000 + 3_600_000_000)])
            s = log.start()
            return s if s.total > 0 else None

        start = wait_until(append_and_look, 60, "retention to move the log start", interval=0.25)
        assert all(s <= e for s, e in zip(start.offsets, log.end().offsets, strict=True))
        with pytest.raises(PositionNotCovered) as info:
            list(log.read(reader_at))
        text = str(info.value)
        assert "before the log start" in text and "deleted" in text
        assert "newer checkpoint" in text and "full sync" in text
        # from the log start: what retention left, every partition in order
        kept = [r for b in log.read(log.start()) for r in b]
        assert len(kept) == log.end().total - log.start().total
        assert log.start().covers(Position((0, 0))) and first.total == 200


def test_an_outage_is_transient_never_a_refusal(broker: dict[str, object]) -> None:
    url = f"kafka://127.0.0.1:{PORT}/outage?partitions=3&delivery_timeout_ms=3000&read_timeout_s=5"
    log = open_log(url)
    try:
        log.append([event("o", 0, OLD)])
        stop_broker(**broker)
        t0 = time.monotonic()
        with pytest.raises(LogError) as info:
            log.append([event("o", 1, OLD + 1)])
        assert not isinstance(info.value, RecordsRejected), info.value
        assert time.monotonic() - t0 < 30
        # a snapshot marker that reached no partition is reported as such
        marker = ev.envelope(ev.SnapshotStarted("s-out", partitions=3), source="sync:s-out",
                             message_id="s-out", occurred_at=OLD, recorded_at=OLD)
        with pytest.raises(BroadcastIncomplete) as binfo:
            log.append([marker])
        assert binfo.value.markers == {0: (frozenset(), frozenset({0, 1, 2}))}
    finally:
        log.close()
