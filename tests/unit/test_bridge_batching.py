"""The bridge's batch/ack rules, with fakes (no broker): a batch is acknowledged only
after its events and dead letters are stored; a failing append is retried and nothing
is acknowledged meanwhile."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from eventmodel.events import ComputeService, ComputeServiceChanged, envelope
from eventmodel.log.base import DeadLetter, LogError
from eventmodel.sources.amqp import (
    Batch,
    BatchWriter,
    Bridge,
    BridgeConfig,
    BridgeStats,
    Target,
    _Stopping,
    amqp_url,
    oslo_url,
)


def _env(i: int):
    svc = ComputeService(host=f"host{i}", binary="nova-compute", version=i)
    return envelope(ComputeServiceChanged(svc), source="nova-compute:host1", message_id=f"m{i}",
                    occurred_at=i, recorded_at=i)


def _letter(i: int) -> DeadLetter:
    return DeadLetter(raw=b"garbage%d" % i, reason="not JSON", source="amqp", at=i)


class Clock:
    """A fake monotonic clock that sleep() advances."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


class FakeLog:
    url = "fake://log"

    def __init__(self, calls: list, fail_appends: int = 0, fail_letters: int = 0) -> None:
        self.calls = calls
        self.fail_appends = fail_appends
        self.fail_letters = fail_letters
        self.events: list = []
        self.letters: list = []

    def append(self, envelopes) -> None:
        if self.fail_appends:
            self.fail_appends -= 1
            self.calls.append(("append-failed", len(envelopes)))
            raise LogError("broker unreachable")
        self.events.extend(envelopes)
        self.calls.append(("append", len(envelopes)))

    def append_dead_letters(self, letters) -> None:
        if self.fail_letters:
            self.fail_letters -= 1
            self.calls.append(("dead-failed", len(letters)))
            raise LogError("disk full")
        self.letters.extend(letters)
        self.calls.append(("dead", len(letters)))


def _batch(events: int, letters: int, irrelevant: int = 0) -> Batch:
    b = Batch(opened=0.0)
    tag = 0
    for i in range(events):
        tag += 1
        b.tags.append(tag)
        b.events.append(_env(i))
        b.event_messages += 1
    for i in range(letters):
        tag += 1
        b.tags.append(tag)
        b.letters.append(_letter(i))
    for _ in range(irrelevant):
        tag += 1
        b.tags.append(tag)
        b.irrelevant += 1
    return b


def _writer(log: FakeLog, calls: list, clock: Clock, keepalive: Any = None, **kw: Any) -> tuple[BatchWriter, BridgeStats]:
    """A writer whose ``pump`` (serving the AMQP connection) calls ``keepalive`` and
    advances the fake clock."""
    stats = BridgeStats()

    def pump(seconds: float) -> None:
        if keepalive is not None:
            keepalive()
        clock.sleep(seconds)

    w = BatchWriter(
        log, lambda tag: calls.append(("ack", tag)), stats,
        retry_initial=0.1, retry_max=5.0, pump=pump, clock=clock, **kw,
    )
    return w, stats


def test_ack_only_after_append_and_dead_letters() -> None:
    calls: list = []
    clock = Clock()
    log = FakeLog(calls)
    w, stats = _writer(log, calls, clock)
    batch = _batch(events=3, letters=2, irrelevant=4)
    w.commit(batch)
    assert calls == [("append", 3), ("dead", 2), ("ack", 9)]  # one append, one ack (multiple)
    assert (stats.acked, stats.events, stats.event_messages, stats.dead, stats.irrelevant, stats.batches) == (
        9, 3, 3, 2, 4, 1)
    assert clock.sleeps == []


def test_append_failure_is_retried_and_nothing_acked_meanwhile() -> None:
    calls: list = []
    clock = Clock()
    log = FakeLog(calls, fail_appends=4)
    w, stats = _writer(log, calls, clock)
    w.commit(_batch(events=5, letters=1))
    assert calls == [("append-failed", 5)] * 4 + [("append", 5), ("dead", 1), ("ack", 6)]
    assert stats.append_failures == 4 and stats.acked == 6
    assert "broker unreachable" in (stats.last_error or "")
    # exponential backoff between attempts (0.1, 0.2, 0.4, 0.8 s, jittered down to 80 %),
    # waited in slices while the connection is served
    assert sum(clock.sleeps) >= 0.8 * 1.5 and max(clock.sleeps) <= 0.25


def test_dead_letters_are_stored_before_ack_and_events_not_repeated() -> None:
    calls: list = []
    clock = Clock()
    log = FakeLog(calls, fail_letters=2)
    w, stats = _writer(log, calls, clock)
    w.commit(_batch(events=2, letters=3))
    # the events were stored once; only the failed dead-letter append is retried
    assert calls == [("append", 2), ("dead-failed", 3), ("dead-failed", 3), ("dead", 3), ("ack", 5)]
    assert len(log.events) == 2 and len(log.letters) == 3
    assert stats.dead == 3


def test_batch_of_only_dead_letters_is_acked_after_storing_them() -> None:
    calls: list = []
    w, _ = _writer(FakeLog(calls), calls, Clock())
    w.commit(_batch(events=0, letters=2))
    assert calls == [("dead", 2), ("ack", 2)]


def test_irrelevant_only_batch_is_acked_without_append() -> None:
    calls: list = []
    w, stats = _writer(FakeLog(calls), calls, Clock())
    w.commit(_batch(events=0, letters=0, irrelevant=3))
    assert calls == [("ack", 3)] and stats.irrelevant == 3


def test_stop_while_append_fails_abandons_without_ack() -> None:
    calls: list = []
    clock = Clock()
    stop = {"now": False}

    def keepalive() -> None:
        if clock.t > 1003:
            stop["now"] = True

    w, stats = _writer(FakeLog(calls, fail_appends=10**6), calls, clock, keepalive=keepalive,
                       stopping=lambda: stop["now"])
    with pytest.raises(_Stopping):
        w.commit(_batch(events=2, letters=0))
    assert not any(c[0] == "ack" for c in calls)
    assert stats.acked == 0 and stats.append_failures >= 2


def test_connection_loss_during_retry_abandons_without_ack() -> None:
    calls: list = []
    clock = Clock()
    beats = {"n": 0}

    def keepalive() -> None:  # the AMQP heartbeat check notices the connection is gone
        beats["n"] += 1
        if beats["n"] > 3:
            raise ConnectionResetError("connection lost")

    w, _ = _writer(FakeLog(calls, fail_appends=10**6), calls, clock, keepalive=keepalive)
    with pytest.raises(ConnectionResetError):
        w.commit(_batch(events=1, letters=0))
    assert not any(c[0] == "ack" for c in calls)


def test_heartbeat_kept_alive_during_long_backoff() -> None:
    calls: list = []
    clock = Clock()
    beats: list[float] = []
    w, _ = _writer(FakeLog(calls, fail_appends=8), calls, clock, keepalive=lambda: beats.append(clock.t))
    w.commit(_batch(events=1, letters=0))
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert max(gaps) <= 0.25 + 1e-9  # the connection is served at least every 0.25 s
    assert calls[-1] == ("ack", 1)


def test_retry_log_lines_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    calls: list = []
    clock = Clock()
    w, stats = _writer(FakeLog(calls, fail_appends=500), calls, clock)
    w.error_log_interval = 60.0
    with caplog.at_level(logging.WARNING, logger="eventmodel.sources.amqp"):
        w.commit(_batch(events=1, letters=0))
    elapsed = clock.t - 1000.0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert stats.append_failures == 500
    assert len(errors) <= 1 + elapsed / 60.0 + 1
    assert any("stored the batch after 500 failed attempts" in r.getMessage() for r in caplog.records)


def test_append_backoff_is_capped_and_starts_at_retry_initial() -> None:
    calls: list = []
    clock = Clock()
    w, _ = _writer(FakeLog(calls, fail_appends=60), calls, clock)
    policy = w.retry_policy()
    delays = [policy.delay(n) for n in range(1, 51)]
    assert max(delays) <= 5.0 and delays[0] <= 0.1
    w.commit(_batch(events=1, letters=0))
    # the backoff waits (served by pump in slices of at most 0.25 s) add up to the schedule
    assert 60 * 0.1 * 0.8 <= clock.t - 1000.0 <= 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 55 * 5.0 + 1


# ---------------------------------------------------------------------------
# The bridge's message handling (fake channel, fake normalizer)
# ---------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    status: str
    events: tuple = ()
    reason: str = ""
    event_type: str = ""


class FakeNormalizer:
    def normalize(self, raw, *, recorded_at=None):
        if raw.startswith(b"ev"):
            return Outcome("events", (_env(int(raw[2:])),))
        if raw == b"irrelevant":
            return Outcome("irrelevant", (), "not in the model", "flavor.create")
        if raw == b"boom":
            raise RuntimeError("normalizer bug")
        if raw == b"weird":
            return Outcome("maybe", ())
        return Outcome("dead", (), "not JSON")


class FakeMsg:
    def __init__(self, tag: int, body: bytes | str) -> None:
        self.body = body
        self.properties = {"content_encoding": "utf-8"}
        self.delivery_info = {"delivery_tag": tag, "exchange": "nova", "routing_key": "versioned_notifications.info"}


class FakeChannel:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.calls.append(("basic_ack", tag, multiple))


class FakeConn:
    def heartbeat_check(self) -> None:
        pass


def test_bridge_batches_every_message_into_one_outcome() -> None:
    calls: list = []
    log = FakeLog(calls)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    bodies = [b"ev1", b"irrelevant", b"junk", b"ev2", b"boom", b"weird", "ev3"]
    for tag, body in enumerate(bodies, 1):
        bridge._on_message(FakeMsg(tag, body))
    batch = bridge._batch
    assert batch is not None and len(batch) == 7
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.commit(batch)
    assert calls == [("append", 3), ("dead", 3), ("basic_ack", 7, True)]
    s = bridge.stats
    assert (s.received, s.acked, s.event_messages, s.events, s.irrelevant, s.dead) == (7, 7, 3, 3, 1, 3)
    assert s.event_messages + s.irrelevant + s.dead == s.received
    reasons = {d.raw: d.reason for d in log.letters}
    assert reasons[b"junk"] == "not JSON"
    assert reasons[b"boom"].startswith("normalizer error: RuntimeError")
    assert "unexpected normalizer status 'maybe'" in reasons[b"weird"]
    assert all(d.source == "amqp:nova/versioned_notifications.info" for d in log.letters)


def test_batch_due_by_size_or_age() -> None:
    bridge = Bridge(FakeLog([]), BridgeConfig(batch_size=3, batch_ms=50), normalizer=FakeNormalizer())
    import time

    b = Batch(opened=time.monotonic())
    b.tags.extend([1, 2])
    assert not bridge._due(b)
    b.tags.append(3)
    assert bridge._due(b)
    old = Batch(opened=time.monotonic() - 0.06)
    old.tags.append(1)
    assert bridge._due(old)


def test_config_and_urls() -> None:
    assert Target.parse("nova.versioned_notifications") == Target("nova", "versioned_notifications")
    assert Target("nova", "versioned_notifications").routing_keys(["info", "error"]) == [
        "versioned_notifications.info", "versioned_notifications.error"]
    with pytest.raises(ValueError):
        Target.parse("nodot")
    cfg = BridgeConfig(targets=["nova.versioned_notifications", "cinder.notifications"])
    assert cfg.targets[1] == Target("cinder", "notifications")
    with pytest.raises(ValueError):
        BridgeConfig(queue_type="stream")
    assert amqp_url("rabbit://guest:guest@127.0.0.1:5672/") == "amqp://guest:guest@127.0.0.1:5672//"
    assert oslo_url("amqp://guest:guest@127.0.0.1:5672//") == "rabbit://guest:guest@127.0.0.1:5672/"


class EncodingLog(FakeLog):
    """A log whose codec cannot encode one particular event (a bug, not an outage)."""

    class codec:  # noqa: N801
        @staticmethod
        def encode(env):
            if env.key == "host13/nova-compute":
                raise TypeError("cannot encode")
            return b"{}"

    def append(self, envelopes) -> None:
        for e in envelopes:
            self.codec.encode(e)
        super().append(envelopes)


def test_unencodable_event_becomes_a_dead_letter_instead_of_blocking() -> None:
    calls: list = []
    log = EncodingLog(calls)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    for tag, body in enumerate([b"ev1", b"ev13", b"ev2"], 1):
        bridge._on_message(FakeMsg(tag, body))
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.pump = lambda s: None
    writer.commit(bridge._batch)
    assert calls == [("append", 2), ("dead", 1), ("basic_ack", 3, True)]
    assert [d.raw for d in log.letters] == [b"ev13"]
    assert "cannot be encoded" in log.letters[0].reason
    s = bridge.stats
    assert (s.event_messages, s.events, s.dead, s.acked) == (2, 2, 1, 3)


def test_empty_and_odd_bodies_do_not_stop_the_bridge() -> None:
    calls: list = []
    log = FakeLog(calls)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    bridge._on_message(FakeMsg(1, ""))  # py-amqp gives '' for an empty body
    bridge._on_message(FakeMsg(2, memoryview(b"ev4")))
    bridge._on_message(FakeMsg(3, object()))  # not bytes at all
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.commit(bridge._batch)
    assert calls[-1] == ("basic_ack", 3, True)
    assert log.letters[0].raw == b""
    assert log.letters[1].reason.startswith("unreadable AMQP body")
    assert bridge.stats.event_messages == 1


def test_heartbeat_kept_alive_while_an_append_blocks() -> None:
    """An append that blocks (a Kafka outage) runs on the writer thread while the AMQP
    thread keeps calling keepalive; the ack comes only after the append returned."""
    import threading

    release = threading.Event()
    calls: list = []

    class BlockingLog(FakeLog):
        def append(self, envelopes) -> None:  # noqa: ANN001
            assert release.wait(30), "keepalive was never called while the append blocked"
            super().append(envelopes)

    beats: list[int] = []

    def keepalive() -> None:
        beats.append(1)
        calls.append(("heartbeat",))
        if len(beats) >= 2:
            release.set()

    log = BlockingLog(calls)
    w, stats = _writer(log, calls, Clock(), keepalive=keepalive)
    w.commit(_batch(3, 0))
    assert len(beats) >= 2
    assert calls.index(("append", 3)) < calls.index(("ack", 3))
    assert calls.index(("heartbeat",)) < calls.index(("append", 3))
    assert stats.acked == 3


# ---------------------------------------------------------------------------
# Issue 11: one append in flight, stop within a grace, permanent refusals
# ---------------------------------------------------------------------------


class GateLog(FakeLog):
    """A log whose appends block until ``gate`` is set (a stalled Kafka)."""

    def __init__(self, calls: list) -> None:
        super().__init__(calls)
        import threading

        self.gate = threading.Event()
        self.entered = threading.Event()

    def append(self, envelopes) -> None:  # noqa: ANN001
        self.calls.append(("append-start", len(envelopes)))
        self.entered.set()
        assert self.gate.wait(30)
        super().append(envelopes)


def test_connection_is_served_while_an_append_blocks() -> None:
    """While the append blocks, pump (read frames, send heartbeats) runs at least every
    wait_slice + pump_slice seconds of real time; the ack comes after the append."""
    import time

    calls: list = []
    log = GateLog(calls)
    pumps: list[float] = []

    def pump(seconds: float) -> None:
        pumps.append(time.monotonic())
        if len(pumps) >= 5:
            log.gate.set()
        time.sleep(seconds)

    w = BatchWriter(log, lambda tag: calls.append(("ack", tag)), BridgeStats(), pump=pump)
    w.commit(_batch(3, 0))
    gaps = [b - a for a, b in zip(pumps, pumps[1:])]
    assert len(pumps) >= 5 and max(gaps) < 1.0
    assert calls == [("append-start", 3), ("append", 3), ("ack", 3)]


def test_connection_lost_during_a_blocked_append_never_starts_a_second_one() -> None:
    """The batch is abandoned (no ack); the append stays the only one in flight: a new
    append is refused until it ends, so no copy of it can queue up behind it."""
    calls: list = []
    log = GateLog(calls)

    def pump(seconds: float) -> None:
        raise ConnectionResetError("Too many heartbeats missed")

    w = BatchWriter(log, lambda tag: calls.append(("ack", tag)), BridgeStats(), pump=pump)
    with pytest.raises(ConnectionResetError):
        w.commit(_batch(2, 0))
    assert w.appender.busy
    with pytest.raises(RuntimeError, match="still in flight"):
        w.appender.submit(log.append, [])
    assert not w.appender.wait_idle(0.05)
    log.gate.set()
    assert w.appender.wait_idle(5)
    assert calls == [("append-start", 2), ("append", 2)]  # stored once, never acknowledged


def test_stop_during_a_blocked_append_gives_up_after_the_grace() -> None:
    calls: list = []
    clock = Clock()
    log = GateLog(calls)
    w, stats = _writer(log, calls, clock, stopping=lambda: True, stop_grace=3.0)
    w.wait_slice = 0.001  # real seconds per turn; the grace runs on the fake clock
    with pytest.raises(_Stopping) as err:
        w.commit(_batch(2, 0))
    assert err.value.in_flight
    assert 3.0 <= clock.t - 1000.0 < 3.5  # the grace, on the (fake) clock
    assert not any(c[0] == "ack" for c in calls) and stats.acked == 0
    log.gate.set()


def test_bridge_waits_for_an_abandoned_append_before_reconnecting() -> None:
    import threading

    calls: list = []
    log = GateLog(calls)
    bridge = Bridge(log, BridgeConfig(), normalizer=FakeNormalizer())
    from eventmodel.sources.amqp import Appender

    bridge._appender = Appender()
    bridge._appender.submit(log.append, [_env(1)])
    assert log.entered.wait(5)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(bridge._await_appender()))
    t.start()
    t.join(0.3)
    assert t.is_alive()  # still waiting: no new session while the old append runs
    log.gate.set()
    t.join(5)
    assert result == [True]
    # and a stop ends the wait
    log.gate.clear()
    bridge._appender.submit(log.append, [_env(2)])
    bridge.request_stop()
    assert bridge._await_appender() is False
    log.gate.set()


class RejectingLog(FakeLog):
    """Refuses events whose key is in ``too_big`` for good (the others are stored), and
    dead letters larger than ``max_letter`` (0: none)."""

    def __init__(self, calls: list, too_big: set[str], max_letter: int = 0, fail_first: int = 0) -> None:
        super().__init__(calls, fail_appends=fail_first)
        self.too_big = too_big
        self.max_letter = max_letter

    def append(self, envelopes) -> None:  # noqa: ANN001
        from eventmodel.log.base import RecordsRejected

        if self.fail_appends:
            return super().append(envelopes)
        bad = {i: "record of 1048700 bytes exceeds max_record_bytes 1048576"
               for i, e in enumerate(envelopes) if e.key in self.too_big}
        super().append([e for i, e in enumerate(envelopes) if i not in bad])
        if bad:
            raise RecordsRejected(bad)

    def append_dead_letters(self, letters) -> None:  # noqa: ANN001
        from eventmodel.log.base import RecordsRejected

        bad = {i: "too large" for i, d in enumerate(letters) if self.max_letter and len(d.raw) + 10 > self.max_letter}
        super().append_dead_letters([d for i, d in enumerate(letters) if i not in bad])
        if bad:
            raise RecordsRejected(bad)


def _bridge_batch(bridge: Bridge, bodies: list[bytes]) -> Batch:
    for tag, body in enumerate(bodies, 1):
        bridge._on_message(FakeMsg(tag, body))
    assert bridge._batch is not None
    return bridge._batch


def test_records_rejected_for_good_are_dead_lettered_and_the_rest_not_appended_again() -> None:
    calls: list = []
    log = RejectingLog(calls, too_big={"host2/nova-compute"}, fail_first=1)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    batch = _bridge_batch(bridge, [b"ev1", b"ev2", b"junk", b"ev3"])
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.pump = lambda s: None
    writer.commit(batch)
    # a transient failure is retried (whole batch); the permanent refusal is not:
    # the two stored events are not appended again, the refused message is a dead letter
    assert calls == [("append-failed", 3), ("append", 2), ("dead", 2), ("basic_ack", 4, True)]
    assert [e.key for e in log.events] == ["host1/nova-compute", "host3/nova-compute"]
    refused = [d for d in log.letters if d.raw == b"ev2"]
    assert len(refused) == 1 and "refused by the log" in refused[0].reason and "max_record_bytes" in refused[0].reason
    assert refused[0].size == 3 and refused[0].sha256
    s = bridge.stats
    assert (s.acked, s.event_messages, s.events, s.dead, s.rejected, s.append_failures) == (4, 2, 2, 2, 1, 1)


def test_a_huge_garbage_message_is_dead_lettered_truncated_with_size_and_hash() -> None:
    import hashlib

    from eventmodel.log.base import DEAD_LETTER_MAX_BYTES

    calls: list = []
    log = FakeLog(calls)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    garbage = b"\xff" * (2 * 1024 * 1024)
    batch = _bridge_batch(bridge, [garbage, b"ev1"])
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.commit(batch)
    (letter,) = log.letters
    assert len(letter.raw) == DEAD_LETTER_MAX_BYTES and letter.truncated
    assert letter.size == len(garbage) and letter.sha256 == hashlib.sha256(garbage).hexdigest()
    assert calls[-1] == ("basic_ack", 2, True)


def test_dead_letters_refused_are_stored_without_bytes_then_counted() -> None:
    calls: list = []
    # refuses letters over 8 bytes: b"junk" passes; b"garbage-xx" is refused, then stored bare
    log = RejectingLog(calls, too_big=set(), max_letter=8 + 10)
    bridge = Bridge(log, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    batch = _bridge_batch(bridge, [b"junk", b"garbage-long-one", b"ev1"])
    writer = bridge._writer(FakeConn(), FakeChannel(calls))
    writer.commit(batch)
    assert calls == [("append", 1), ("dead", 1), ("dead", 1), ("basic_ack", 3, True)]
    bare = log.letters[1]
    assert bare.raw == b"" and bare.size == len(b"garbage-long-one") and bare.sha256
    assert "bytes not kept" in bare.reason
    # a log that refuses even a bare letter: counted, logged, acknowledged (never blocks)
    calls.clear()
    log2 = RejectingLog(calls, too_big=set(), max_letter=1)
    bridge2 = Bridge(log2, BridgeConfig(batch_size=100), normalizer=FakeNormalizer())
    writer2 = bridge2._writer(FakeConn(), FakeChannel(calls))
    writer2.commit(_bridge_batch(bridge2, [b"junk", b"ev1"]))
    assert calls == [("append", 1), ("dead", 0), ("dead", 0), ("basic_ack", 2, True)]
    assert bridge2.stats.unstorable == 1 and bridge2.stats.acked == 2
