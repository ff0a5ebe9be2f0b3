"""The EventLog contract: every backend passes the same tests (SQLite and Kafka).

The ``log`` fixture is parametrized over the backends; a Kafka test gets its own
topic on the broker that ``tests/fixtures/kafka.py`` runs. Backend-specific checks
(Kafka's partitioner, URL options, errors) are at the end.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log import (
    DeadLetter,
    LogError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
    RecordsRejected,
    open_log,
)
from eventmodel.log.base import DEAD_LETTER_MAX_BYTES, UNDECODABLE, EventLog, Record

BASE = 1_700_000_000_000_000  # µs, 2023-11-14
FLAVOR = ev.Flavor("m1.small", 1, 2048, 20)
_seq = iter(range(10**9))


def instance_event(key: str, n: int, *, at: int | None = None, host: str = "host1") -> ev.Envelope:
    """The n-th event of instance ``key``; recorded at ``at`` (default BASE + n ms)."""
    at = BASE + n * 1000 if at is None else at
    inst = ev.Instance(key, at, host, host, "active", FLAVOR, power_state="running", name=f"vm-{key}")
    payload: object
    if n == 0:
        payload = ev.InstanceCreated(inst)
    elif n % 5 == 3:
        payload = ev.InstanceMigrated(inst, source_host="host0", source_node="host0", method="live")
    else:
        payload = ev.InstanceUpdated(inst, action=f"step-{n}")
    return ev.envelope(payload, source="test", message_id=f"{key}/{n}/{next(_seq)}",
                       occurred_at=at, recorded_at=at)


def marker(snapshot_id: str, at: int, *, completed: bool = False) -> ev.Envelope:
    payload = (
        ev.SnapshotCompleted(snapshot_id, counts={"instance": 3})
        if completed
        else ev.SnapshotStarted(snapshot_id, partitions=3)
    )
    return ev.envelope(payload, source=f"sync:{snapshot_id}", message_id=f"{snapshot_id}/{completed}",
                       occurred_at=at, recorded_at=at)


def read_all(log: EventLog, start: Position | None = None, end: Position | None = None,
             batch: int = 5000) -> list[Record]:
    return [r for b in log.read(start, end, batch) for r in b]


def by_key(envelopes) -> dict[str, list[ev.Envelope]]:
    out: dict[str, list[ev.Envelope]] = defaultdict(list)
    for e in envelopes:
        out[e.key].append(e)
    return dict(out)


def _at(r: Record) -> tuple[int, int]:
    return (r.partition, r.offset)


def check_log_order(records: list[Record]) -> None:
    """Offsets strictly increase within each partition, in the order read."""
    last: dict[int, int] = {}
    for r in records:
        assert r.offset > last.get(r.partition, -1), f"offset {r.offset} after {last[r.partition]}"
        last[r.partition] = r.offset


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("kafka_url")


@pytest.fixture
def log(log_url: str) -> Iterator[EventLog]:
    lg = open_log(log_url)
    try:
        yield lg
    finally:
        lg.close()


# ---------------------------------------------------------------------------
# the contract
# ---------------------------------------------------------------------------


def test_is_an_event_log(log: EventLog, log_url: str) -> None:
    assert isinstance(log, EventLog)
    assert log.url == log_url
    assert log.partitions() >= 1
    assert log.end() == Position.zero(log.partitions())
    assert read_all(log) == []


def test_append_then_read_keeps_per_key_order_and_decodes(log: EventLog) -> None:
    envs = [instance_event(f"inst-{k}", n) for n in range(20) for k in range(5)]
    log.append(envs)
    records = read_all(log)
    check_log_order(records)
    got = [r.envelope for r in records]
    assert sorted(got, key=lambda e: e.event_id) == sorted(envs, key=lambda e: e.event_id)
    assert by_key(got) == by_key(envs)
    # decoding gives the typed payloads back, field for field
    first = by_key(got)["inst-2"][0]
    assert isinstance(first.payload, ev.InstanceCreated)
    assert first.payload.instance.flavor == FLAVOR
    migrated = by_key(got)["inst-2"][3]
    assert isinstance(migrated.payload, ev.InstanceMigrated)
    assert migrated.payload.source_host == "host0"


def test_end_moves_by_records_and_markers_count_once_per_partition(log: EventLog) -> None:
    n = log.partitions()
    assert log.end().total == 0
    log.append([instance_event(f"k{i}", 0) for i in range(7)])
    assert log.end().total == 7
    log.append([marker("s1", BASE + 10_000)])
    assert log.end().total == 7 + n
    log.append([instance_event("k1", 1), marker("s1", BASE + 20_000, completed=True), instance_event("k2", 1)])
    assert log.end().total == 7 + n + 2 + n
    log.append([])
    assert log.end().total == 7 + n + 2 + n
    assert len(read_all(log)) == log.end().total


def test_read_with_bounds(log: EventLog) -> None:
    first = [instance_event(f"a{i}", 0) for i in range(10)]
    second = [instance_event(f"a{i}", 1) for i in range(10)]
    log.append(first)
    mid = log.end()
    log.append(second)
    end = log.end()
    # (the interleaving of partitions is not part of the contract; each partition's order is)
    assert sorted(read_all(log, end=mid), key=_at) == sorted(
        read_all(log, Position.zero(log.partitions()), mid), key=_at)
    assert by_key(r.envelope for r in read_all(log, end=mid)) == by_key(first)
    assert by_key(r.envelope for r in read_all(log, start=mid)) == by_key(second)
    assert by_key(r.envelope for r in read_all(log, start=mid, end=end)) == by_key(second)
    assert read_all(log, start=mid, end=mid) == []
    # positions from records: every record of [mid, end) is at or past mid
    for r in read_all(log, start=mid):
        assert r.offset >= mid.offsets[r.partition]
        assert r.offset < end.offsets[r.partition]
    # small batches give the same records
    assert sorted(read_all(log, batch=3), key=_at) == sorted(read_all(log), key=_at)
    assert all(len(b) <= 3 for b in log.read(batch=3))


def test_reading_from_the_end_yields_nothing(log: EventLog) -> None:
    log.append([instance_event("x", i) for i in range(5)])
    end = log.end()
    assert list(log.read(start=end)) == []
    assert list(log.read_raw(start=end)) == []
    log.append([instance_event("x", 5)])
    assert [r.envelope.payload.instance.version for r in read_all(log, start=end)] == [BASE + 5000]


def test_a_follower_polls_with_a_moving_start(log: EventLog) -> None:
    """read_raw/read called again and again from the position reached so far."""
    pos = log.end()
    seen: list[ev.Envelope] = []
    appended: list[ev.Envelope] = []
    for i in range(15):
        batch = [instance_event(f"f{(i * 3 + j) % 5}", i * 10 + j) for j in range(i % 4)]
        if i % 6 == 5:
            batch.append(marker(f"fm{i}", BASE + i))
        log.append(batch)
        appended.extend(batch)
        for records in log.read(start=pos, batch=2):
            for r in records:
                pos = pos.advance(r.partition, r.offset)
                seen.append(r.envelope)
        assert pos == log.end()
    assert by_key(e for e in seen if not e.broadcast) == by_key(e for e in appended if not e.broadcast)
    assert len(seen) == len(appended) + (log.partitions() - 1) * sum(e.broadcast for e in appended)


def test_an_abandoned_read_does_not_disturb_the_next(log: EventLog) -> None:
    log.append([instance_event(f"ab{i % 9}", i) for i in range(60)])
    for _ in range(3):
        it = log.read_raw(batch=4)
        assert len(next(it)) <= 4
        del it  # the caller stops early
    assert len(read_all(log)) == 60
    it = log.read(batch=4)
    next(it)
    assert len(read_all(log, batch=7)) == 60  # while another read is still open
    assert sum(len(b) for b in it) <= 56


def test_records_stamped_in_the_future_or_at_zero_are_accepted(log: EventLog) -> None:
    future = BASE * 2  # year 2077
    log.append([instance_event("zero", 0, at=0), instance_event("small", 0, at=400),
                instance_event("fut", 0, at=future)])
    assert len(read_all(log)) == 3
    assert {r.envelope.key for r in read_all(log, start=log.position_at(future - 1))} == {"fut"}
    assert {r.envelope.key for r in read_all(log, start=log.position_at(0))} == {"fut", "small"}
    assert {r.envelope.key for r in read_all(log, end=log.position_at(400))} == {"zero", "small"}


def test_broadcast_markers_appear_in_every_partition(log: EventLog) -> None:
    n = log.partitions()
    before = [instance_event(f"b{i}", 0) for i in range(30)]
    after = [instance_event(f"b{i}", 1) for i in range(30)]
    start = marker("snap-1", BASE + 50_000)
    log.append(before + [start] + after)
    records = read_all(log)
    per_partition: dict[int, list[ev.Envelope]] = defaultdict(list)
    for r in records:
        per_partition[r.partition].append(r.envelope)
    assert sorted(per_partition) == list(range(n))
    for p, envs in per_partition.items():
        markers = [i for i, e in enumerate(envs) if e.broadcast]
        assert len(markers) == 1, f"partition {p}: {len(markers)} markers"
        assert envs[markers[0]] == start
        # in each partition the marker sits between the records appended around it
        assert all(e in before for e in envs[: markers[0]])
        assert all(e in after for e in envs[markers[0] + 1:])


def test_per_key_order_across_many_keys_and_batches(log: EventLog) -> None:
    keys = [f"00000000-0000-0000-0000-{i:012d}" for i in range(200)]
    appended: list[ev.Envelope] = []
    for b in range(4):
        batch = [instance_event(k, b * 3 + j) for j in range(3) for k in keys[b::2]]
        log.append(batch)
        appended.extend(batch)
    records = read_all(log, batch=97)
    check_log_order(records)
    assert by_key(r.envelope for r in records) == by_key(appended)
    # every key lives in exactly one partition
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        partitions[r.envelope.key].add(r.partition)
    assert all(len(ps) == 1 for ps in partitions.values())


def test_read_key(log: EventLog) -> None:
    envs = [instance_event(f"rk{k}", n) for n in range(6) for k in range(8)]
    log.append(envs[:20] + [marker("s", BASE + 1)] + envs[20:])
    got = list(log.read_key("rk3"))  # type: ignore[attr-defined]
    assert [r.envelope for r in got] == by_key(envs)["rk3"]
    assert [r.offset for r in got] == sorted(r.offset for r in got)
    assert list(log.read_key("no-such-key")) == []  # type: ignore[attr-defined]


def test_read_key_back_pages_from_the_end(log: EventLog) -> None:
    envs = [instance_event(f"rb{k}", n) for n in range(9) for k in range(3)]
    log.append(envs)
    forward = list(log.read_key("rb1"))  # type: ignore[attr-defined]
    got, before, pages = [], None, 0
    while True:
        page = log.read_key_back("rb1", before, 4)  # type: ignore[attr-defined]
        assert len(page.records) <= 4
        got.extend(page.records)
        pages += 1
        before = page.before
        if before is None:
            break
    assert [r.offset for r in got] == [r.offset for r in reversed(forward)] and pages == 3
    assert [r.envelope for r in got] == list(reversed(by_key(envs)["rb1"]))
    empty = log.read_key_back("no-such-key", None, 3)  # type: ignore[attr-defined]
    assert empty.records == [] and empty.before is None


def test_position_at_splits_by_recorded_at(log: EventLog) -> None:
    # 40 records 1 ms apart, then three in one millisecond (µs apart), then a marker
    envs = [instance_event(f"p{i % 7}", i) for i in range(40)]
    t = BASE + 100_000
    same_ms = [instance_event("q1", 100, at=t + 100), instance_event("q2", 101, at=t + 400),
               instance_event("q3", 102, at=t + 700)]
    log.append(envs + same_ms + [marker("m", t + 5_000)])
    everything = read_all(log)

    def check(time_us: int) -> Position:
        pos = log.position_at(time_us)
        head = read_all(log, end=pos)
        tail = read_all(log, start=pos)
        assert all(r.envelope.recorded_at <= time_us for r in head), time_us
        assert all(r.envelope.recorded_at > time_us for r in tail), time_us
        assert len(head) + len(tail) == len(everything)
        return pos

    assert check(0) == Position.zero(log.partitions())
    assert check(BASE + 10**12) == log.end()
    for time_us in (BASE, BASE + 999, BASE + 1000, BASE + 19_500, BASE + 39_000, t, t + 100, t + 399,
                    t + 400, t + 699, t + 700, t + 4_999, t + 5_000):
        check(time_us)
    head = read_all(log, end=log.position_at(t + 400))
    assert {r.envelope.key for r in head} >= {"q1", "q2"}
    assert "q3" not in {r.envelope.key for r in head}


def test_dead_letters_round_trip(log: EventLog) -> None:
    assert list(log.dead_letters()) == []
    letters = [
        DeadLetter(raw=b"\x00\xff not json", reason="bad json: expected value", source="amqp:nova", at=BASE + 1),
        DeadLetter(raw=b"", reason="empty message", source="amqp:nova", at=BASE + 2),
        DeadLetter(raw='{"é": 1}'.encode(), reason="unknown payload ✓", source="sync:abc", at=BASE + 3),
    ]
    log.append_dead_letters(letters[:2])
    log.append_dead_letters(letters[2:])
    log.append_dead_letters([])
    got = list(log.dead_letters())
    assert [(d.raw, d.reason, d.source, d.at) for d in got] == [(d.raw, d.reason, d.source, d.at) for d in letters]
    assert [d.offset for d in got] == sorted(d.offset for d in got)
    # dead letters are not events
    assert log.end().total == 0


def test_a_second_log_on_the_same_url_sees_the_data(log: EventLog, log_url: str) -> None:
    envs = [instance_event(f"d{i % 4}", i) for i in range(25)] + [marker("dur", BASE + 99_000)]
    log.append(envs)
    log.append_dead_letters([DeadLetter(b"raw", "why", "src", BASE)])
    end = log.end()
    log.close()
    with open_log(log_url) as again:  # type: ignore[attr-defined]
        assert again.partitions() == end.offsets.__len__()
        assert again.end() == end
        records = read_all(again)
        assert by_key(r.envelope for r in records) == by_key(
            [e for e in envs if not e.broadcast] + [envs[-1]] * again.partitions()
        )
        assert [d.raw for d in again.dead_letters()] == [b"raw"]
        again.append([instance_event("d0", 100)])
        assert again.end().total == end.total + 1


def _write_garbage(log: EventLog, value: bytes) -> None:
    """Put bytes that are no envelope on the log, bypassing the backend."""
    if log.url.startswith("sqlite"):
        con = sqlite3.connect(log.path)  # type: ignore[attr-defined]
        with con:
            con.execute(
                "INSERT INTO events(offset, event_id, type, key, recorded_at, value) "
                "VALUES ((SELECT coalesce(max(offset) + 1, 0) FROM events), 'junk', 'junk', 'junk', 0, ?)",
                (value,),
            )
        con.close()
    else:
        from confluent_kafka import Producer

        prod = Producer({"bootstrap.servers": log.bootstrap})  # type: ignore[attr-defined]
        prod.produce(log.topic, value, b"junk", partition=0)  # type: ignore[attr-defined]
        assert prod.flush(30) == 0


def test_a_corrupt_record_comes_back_undecodable(log: EventLog) -> None:
    good = [instance_event("c1", 0), instance_event("c1", 1)]
    log.append(good[:1])
    _write_garbage(log, b"\x00\x01 this is not an envelope")
    _write_garbage(log, b'{"event_id": "x", "type": "instance.created", "payload": {}}')
    log.append(good[1:])
    records = read_all(log)
    assert len(records) == 4
    bad = [r for r in records if r.envelope.type == UNDECODABLE]
    assert len(bad) == 2
    assert all(r.envelope.event_id.startswith("undecodable:") for r in bad)
    assert all("reason" in r.envelope.payload.data for r in bad)
    assert [r.envelope for r in records if r.envelope.type != UNDECODABLE] == good
    assert len(list(log.read_raw())) >= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 15), st.integers(0, 20)), min_size=0, max_size=40),
        min_size=1, max_size=5,
    )
)
def test_property_random_batches_read_back_per_key(log: EventLog, batches: list[list[tuple[int, int]]]) -> None:
    start = log.end()
    appended: list[ev.Envelope] = []
    for batch in batches:
        envs = [
            marker(f"h{next(_seq)}", BASE + 1) if k == 0 and n % 7 == 0 else instance_event(f"key-{k}", n)
            for k, n in batch
        ]
        log.append(envs)
        appended.extend(envs)
    records = read_all(log, start=start)
    n_markers = sum(1 for e in appended if e.broadcast)
    assert len(records) == len(appended) + n_markers * (log.partitions() - 1)
    assert log.end().total - start.total == len(records)
    got = [r.envelope for r in records]
    assert by_key(e for e in got if not e.broadcast) == by_key(e for e in appended if not e.broadcast)
    assert sorted({e.event_id for e in got if e.broadcast}) == sorted({e.event_id for e in appended if e.broadcast})


def with_option(url: str, option: str) -> str:
    """``url`` with one more query option."""
    return url + ("&" if "?" in url else "?") + option


def big_event(key: str, n: int, size: int) -> ev.Envelope:
    """An instance event whose encoded record is larger than ``size`` bytes."""
    inst = ev.Instance(key, BASE + n, "h", "h", "active", FLAVOR, name="x" * size)
    return ev.envelope(ev.InstanceUpdated(inst, action="big"), source="test", message_id=f"big/{key}/{n}",
                       occurred_at=BASE + n, recorded_at=BASE + n)


def delete_before(log: EventLog, pos: Position) -> None:
    """Delete every record before ``pos``, as retention would (bypassing the backend)."""
    if log.url.startswith("sqlite"):
        con = sqlite3.connect(log.path)  # type: ignore[attr-defined]
        with con:
            con.execute("DELETE FROM events WHERE offset < ?", (pos.offsets[0],))
        con.close()
    else:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": log.bootstrap})  # type: ignore[attr-defined]
        tps = [TopicPartition(log.topic, p, o) for p, o in enumerate(pos.offsets)]  # type: ignore[attr-defined]
        for fut in admin.delete_records(tps, request_timeout=30).values():
            fut.result(timeout=30)


def test_start_is_the_first_position_held(log: EventLog) -> None:
    n = log.partitions()
    assert log.start() == Position.zero(n)
    log.append([instance_event(f"s{i}", i) for i in range(12)] + [marker("st", BASE)])
    assert log.start() == Position.zero(n)
    assert log.end().covers(log.start())


def test_an_oversized_record_is_rejected_and_the_rest_of_the_batch_stored(log: EventLog) -> None:
    limit = log.max_record_bytes
    assert 500_000 <= limit <= 1_048_576, limit
    n = log.partitions()
    batch = [instance_event("same", 0), big_event("same", 1, limit), instance_event("same", 2),
             big_event("other", 3, limit + 5_000), instance_event("same", 4), marker("rej", BASE + 9)]
    with pytest.raises(RecordsRejected) as info:
        log.append(batch)
    assert isinstance(info.value, LogError)
    assert sorted(info.value.rejected) == [1, 3]
    assert all("max_record_bytes" in why for why in info.value.rejected.values())
    assert "2 record(s) refused permanently" in str(info.value)
    # every other record was stored, once, in order per key; the marker on every partition
    got = [r.envelope for r in read_all(log)]
    assert [e.event_id for e in got if e.key == "same"] == [batch[i].event_id for i in (0, 2, 4)]
    assert sum(e.broadcast for e in got) == n
    assert log.end().total == 3 + n
    # the log stays usable; a batch of good records goes through whole
    log.append([instance_event("same", 5)])
    assert log.end().total == 4 + n


def test_max_record_bytes_comes_from_the_url(log_url: str) -> None:
    with open_log(with_option(log_url, "max_record_bytes=3000")) as small:
        assert small.max_record_bytes == 3000
        small.append([big_event("fits", 0, 2000)])
        with pytest.raises(RecordsRejected) as info:
            small.append([big_event("fits", 1, 2000), big_event("too-big", 2, 3000)])
        assert list(info.value.rejected) == [1]
        assert "3000" in info.value.rejected[1]
        assert small.end().total == 2
    with pytest.raises(LogError, match="max_record_bytes"):
        open_log(with_option(log_url, "max_record_bytes=lots"))


def test_dead_letters_keep_size_and_hash_and_are_bounded(log: EventLog) -> None:
    huge = bytes(range(256)) * 8_000  # 2 MB, over Kafka's message.max.bytes
    small = b"{not json"
    log.append_dead_letters([
        DeadLetter.of(huge, "too large", "amqp:nova", BASE + 1),
        DeadLetter(raw=huge, reason="r" * 100_000, source="amqp:nova", at=BASE + 2),  # size not given
        DeadLetter(raw=small, reason="bad json", source="amqp:nova", at=BASE + 3),
    ])
    got = list(log.dead_letters())
    assert len(got) == 3
    digest = hashlib.sha256(huge).hexdigest()
    for d in got[:2]:
        assert d.raw == huge[:DEAD_LETTER_MAX_BYTES]
        assert d.size == len(huge) and d.sha256 == digest and d.truncated
    assert len(got[1].reason) <= 4096 and got[1].reason.startswith("rrr")
    assert (got[2].raw, got[2].size, got[2].sha256) == (small, len(small), hashlib.sha256(small).hexdigest())
    assert not got[2].truncated
    assert log.end().total == 0


def test_reading_from_before_the_log_start_raises(log: EventLog) -> None:
    n = log.partitions()
    log.append([instance_event(f"del{i % 5}", i) for i in range(30)])
    mid = log.end()
    log.append([instance_event(f"del{i % 5}", i) for i in range(30, 45)])
    end = log.end()
    delete_before(log, mid)
    assert log.start() == mid
    with pytest.raises(PositionNotCovered) as info:
        read_all(log, Position.zero(n))
    text = str(info.value)
    lost = next(p for p in range(n) if mid.offsets[p] > 0)
    assert f"partition {lost}" in text or n == 1
    assert "deleted" in text and "checkpoint" in text and "full sync" in text
    with pytest.raises(PositionNotCovered):  # one offset short is as bad
        read_all(log, Position(tuple(max(0, o - 1) for o in mid.offsets)), end)
    # from the start, or any position at or after it, reads what is left
    assert len(read_all(log, log.start())) == 15
    assert len(read_all(log, mid)) == 15
    assert len(read_all(log)) == 15  # no start: from the log start
    # a reader at the end loses nothing, whatever was deleted before
    assert read_all(log, end) == []


def test_a_position_past_the_end_raises(log: EventLog) -> None:
    log.append([instance_event(f"pe{i}", i) for i in range(6)])
    end = log.end()
    beyond = Position((end.offsets[0] + 5, *end.offsets[1:]))
    for start, stop in ((beyond, None), (end, beyond), (beyond, beyond)):
        with pytest.raises(PositionNotCovered, match="past the log's end"):
            read_all(log, start, stop)
    assert read_all(log, end) == []


def test_a_position_with_another_partition_count_raises(log: EventLog) -> None:
    log.append([instance_event("pc", 0)])
    other = Position.zero(log.partitions() + 1)
    with pytest.raises(PartitionsChanged, match="partition") as info:
        read_all(log, other)
    assert isinstance(info.value, PositionNotCovered)
    assert (info.value.expected, info.value.actual) == (log.partitions() + 1, log.partitions())
    with pytest.raises(PartitionsChanged):
        read_all(log, None, other)


def test_the_log_id_is_the_same_for_every_opening(log: EventLog, log_url: str) -> None:
    assert log.log_id
    with open_log(log_url) as again:
        assert again.log_id == log.log_id


# ---------------------------------------------------------------------------
# Kafka specifics
# ---------------------------------------------------------------------------


def test_kafka_partitioner_is_the_java_clients() -> None:
    from eventmodel.log.kafka import murmur2, partition_for

    def signed(h: int) -> int:
        return h - (1 << 32) if h & 0x80000000 else h

    # vectors from Apache Kafka's UtilsTest.testMurmur2
    vectors = {
        "21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107,
    }
    for text, expected in vectors.items():
        assert signed(murmur2(text.encode())) == expected, text
    assert partition_for("foobar", 6) == (-790332482 & 0x7FFFFFFF) % 6


@pytest.mark.kafka
def test_kafka_partitions_agree_with_librdkafka_murmur2(kafka_url: str) -> None:
    from confluent_kafka import Producer

    with open_log(kafka_url) as log:  # type: ignore[attr-defined]
        keys = [f"{i:08x}-aaaa-bbbb-cccc-{i * 7919:012x}" for i in range(200)] + ["", "h/nova-compute"]
        prod = Producer({"bootstrap.servers": log.bootstrap, "partitioner": "murmur2_random"})
        seen: dict[bytes, int] = {}
        for k in keys:
            prod.produce(log.topic, b"x", k.encode(),
                         on_delivery=lambda err, msg: seen.__setitem__(msg.key(), msg.partition()))
        assert prod.flush(30) == 0
        assert {k: seen[k.encode()] for k in keys} == {k: log.partition_of(k) for k in keys}


@pytest.mark.kafka
def test_kafka_existing_topic_keeps_its_partition_count(kafka_url: str) -> None:
    with open_log(kafka_url) as log:  # 3 partitions
        log.append([instance_event("e", 0)])
    with open_log(kafka_url.replace("partitions=3", "partitions=8")) as again:
        assert again.partitions() == 3
        assert again.end().total == 1


@pytest.mark.kafka
def test_kafka_url_options(kafka_url: str) -> None:
    with pytest.raises(LogError, match="unknown option 'partitons'"):
        open_log(kafka_url + "&partitons=4")
    with pytest.raises(LogError, match="not an integer"):
        open_log(kafka_url + "&replication=three")
    # kafka.* settings reach librdkafka: a bad value is refused with the URL named
    with pytest.raises(LogError, match="configuration"):
        open_log(kafka_url + "&kafka.security.protocol=NOPE")
    url = kafka_url + "&retention_ms=86400000&topic.segment.ms=3600000&kafka.client.id=ctest"
    with open_log(url) as log:
        from confluent_kafka.admin import AdminClient, ConfigResource

        admin = AdminClient({"bootstrap.servers": log.bootstrap})  # type: ignore[attr-defined]
        res = ConfigResource("topic", log.topic)  # type: ignore[attr-defined]
        cfg = admin.describe_configs([res])[res].result(timeout=30)
        assert cfg["retention.ms"].value == "86400000"
        assert cfg["segment.ms"].value == "3600000"
        assert log._common["client.id"] == "ctest"  # type: ignore[attr-defined]


def test_kafka_unreachable_broker_is_a_clear_error() -> None:
    url = "kafka://127.0.0.1:1/t-nowhere?connect_timeout_s=2&kafka.sasl.password=hunter2"
    t0 = time.monotonic()
    with pytest.raises(LogError) as info:
        open_log(url)
    assert time.monotonic() - t0 < 20
    text = str(info.value)
    assert "cannot reach Kafka at 127.0.0.1:1" in text
    assert "kafka://127.0.0.1:1/t-nowhere" in text
    assert "hunter2" not in text


@pytest.mark.kafka
def test_kafka_max_record_bytes_never_exceeds_what_the_topic_takes(kafka_url: str) -> None:
    with open_log(with_option(kafka_url, "topic.max.message.bytes=20000&max_record_bytes=50000")) as log:
        assert log.max_record_bytes == 20000 - 512
        with pytest.raises(RecordsRejected) as info:
            log.append([instance_event("k", 0), big_event("k", 1, 25_000)])
        assert list(info.value.rejected) == [1]
        assert [r.envelope.key for r in read_all(log)] == ["k"]


# ---------------------------------------------------------------------------
# SQLite specifics
# ---------------------------------------------------------------------------


def test_sqlite_dead_letters_of_an_older_file_get_size_and_hash(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    with con:
        con.executescript("""
            CREATE TABLE events (offset INTEGER PRIMARY KEY, event_id TEXT NOT NULL, type TEXT NOT NULL,
                key TEXT NOT NULL, recorded_at INTEGER NOT NULL, value BLOB NOT NULL);
            CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, source TEXT NOT NULL,
                reason TEXT NOT NULL, raw BLOB NOT NULL);
            CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('format', '1'), ('log_id', 'sqlite:old');
            INSERT INTO dead_letters(at, source, reason, raw) VALUES (5, 'amqp:nova', 'bad', x'00ff10');
        """)
    con.close()
    with open_log(f"sqlite:///{path}", create=False) as log:
        assert log.log_id == "sqlite:old"
        (d,) = log.dead_letters()
        assert (d.raw, d.size, d.sha256) == (b"\x00\xff\x10", 3, hashlib.sha256(b"\x00\xff\x10").hexdigest())
        log.append_dead_letters([DeadLetter.of(b"new", "r", "s", 6)])
        assert [x.size for x in log.dead_letters()] == [3, 3]


def test_sqlite_unknown_url_option_is_refused(sqlite_url: str) -> None:
    with pytest.raises(LogError, match="unknown option 'max_bytes'"):
        open_log(sqlite_url + "?max_bytes=5")
