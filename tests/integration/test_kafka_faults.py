"""A broker outage while a writer appends: appends block and retry, nothing acknowledged is lost.

The test runs its own broker (``EVENTMODEL_KAFKA_FAULT_PORT``, default 19092, and the
next port for the controller, with a fresh data directory) so that stopping it does
not disturb the session broker other tests use.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from eventmodel import events as ev
from eventmodel.log import open_log
from tests.fixtures.kafka import broker_running, start_broker, stop_broker

PORT = int(os.environ.get("EVENTMODEL_KAFKA_FAULT_PORT", "19092"))
FLAVOR = ev.Flavor("m1.tiny", 1, 512, 1)
BASE = 1_700_000_000_000_000


def wait_for(cond: Callable[[], bool], timeout: float, what: str, lock: threading.Condition) -> None:
    """Wait (on the writer's condition variable) until ``cond()`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    with lock:
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
            lock.wait(left)


class Writer(threading.Thread):
    """Appends batches of 40 instance events (10 keys) until told to stop."""

    def __init__(self, log) -> None:  # noqa: ANN001
        super().__init__(name="fault-writer", daemon=True)
        self.log = log
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.acked: list[tuple[int, list[ev.Envelope], float, float]] = []  # (n, batch, called, returned)
        self.errors: list[BaseException] = []
        self.calling_since: float | None = None

    def batch(self, n: int) -> list[ev.Envelope]:
        out = []
        for j in range(40):
            key = f"fault-{j % 10}"
            at = BASE + (n * 40 + j) * 1000
            inst = ev.Instance(key, at, "h1", "h1", "active", FLAVOR)
            out.append(ev.envelope(ev.InstanceUpdated(inst, action=f"b{n}"), source="fault-test",
                                   message_id=f"{n}/{j}", occurred_at=at, recorded_at=at))
        return out

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            batch = self.batch(n)
            called = time.monotonic()
            with self.cond:
                self.calling_since = called
            try:
                self.log.append(batch)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                with self.cond:
                    self.errors.append(exc)
                    self.cond.notify_all()
                return
            with self.cond:
                self.acked.append((n, batch, called, time.monotonic()))
                self.calling_since = None
                self.cond.notify_all()
            n += 1


@pytest.mark.kafka
def test_appends_block_and_retry_across_a_broker_outage(tmp_path: Path) -> None:
    where = {"port": PORT, "controller_port": PORT + 1, "data": tmp_path / "kafka-fault"}
    assert not broker_running(**where)
    took = start_broker(**where)
    print(f"fault broker started in {took:.1f} s")
    writer: Writer | None = None
    try:
        url = f"kafka://127.0.0.1:{PORT}/faults?partitions=3&delivery_timeout_ms=180000"
        log = open_log(url)
        reader = open_log(url)  # a follower's log object, used before and after the outage
        assert reader.end().total == 0
        writer = Writer(log)
        writer.start()
        wait_for(lambda: len(writer.acked) >= 25 or bool(writer.errors), 60, "25 appends before the outage",
                 writer.cond)
        assert not writer.errors, writer.errors

        t_stop = time.monotonic()
        stop_broker(**where)
        t_stopped = time.monotonic()
        with writer.cond:
            acked_at_stop = len(writer.acked)
        # The writer is inside an append (blocked on the broker) during the outage.
        wait_for(lambda: writer.calling_since is not None or bool(writer.errors), 30,
                 "an append call during the outage", writer.cond)
        assert not writer.errors, writer.errors

        t_restart = time.monotonic()
        restart_took = start_broker(**where)
        print(f"outage {time.monotonic() - t_stop:.1f} s; broker restart took {restart_took:.1f} s")
        wait_for(lambda: len(writer.acked) >= acked_at_stop + 25 or bool(writer.errors), 180,
                 "25 appends after the restart", writer.cond)
        writer.stop.set()
        writer.join(timeout=200)
        assert not writer.is_alive(), "the writer did not finish its last append"
        assert not writer.errors, f"append raised during the outage: {writer.errors!r}"

        # Nothing was acknowledged while the broker was down ...
        during = [n for n, _b, _c, returned in writer.acked if t_stopped < returned < t_restart]
        assert during == [], f"appends {during} returned while the broker was stopped"
        # ... and some append was blocked across the outage rather than failing fast.
        spanning = [n for n, _b, called, returned in writer.acked if called < t_stopped and returned > t_restart]
        spanning += [n for n, _b, called, returned in writer.acked if t_stopped < called < t_restart]
        assert spanning, "no append was in progress during the outage"

        # Log objects opened before the outage keep working (stale leader epochs are retried).
        end = reader.end()
        assert log.end() == end
        assert end.total >= sum(len(b) for _n, b, _c, _r in writer.acked)
        assert sum(len(b) for b in reader.read_raw()) == end.total
        log.close()
        reader.close()

        # Every append that returned is on the log, in order per key.
        appended = [e for _n, batch, _c, _r in writer.acked for e in batch]
        with open_log(url) as again:
            got = [r.envelope for b in again.read() for r in b]
        assert {e.event_id for e in got} == {e.event_id for e in appended}
        # Delivery is at-least-once: a produce request that the broker answered with
        # NOT_LEADER while shutting down can still have been written, and the retry
        # after the restart is then stored again (seen about once in 20 runs, even
        # with the idempotent producer). A duplicate is an exact copy (same event id),
        # which the fold ignores; the first copies keep the appended order per key.
        first: dict[str, ev.Envelope] = {}
        for e in got:
            assert first.setdefault(e.event_id, e) == e
        duplicates = len(got) - len(first)
        if duplicates:
            print(f"{duplicates} duplicate record(s) after the outage")
        # appends are sequential, so at most one batch (40 records) is ever in flight
        assert duplicates <= 40, f"{duplicates} duplicates: more than one batch in flight"
        per_key_got: dict[str, list[str]] = defaultdict(list)
        per_key_appended: dict[str, list[str]] = defaultdict(list)
        seen: set[str] = set()
        for e in got:
            if e.event_id not in seen:
                seen.add(e.event_id)
                per_key_got[e.key].append(e.event_id)
        for e in appended:
            per_key_appended[e.key].append(e.event_id)
        assert per_key_got == per_key_appended
    finally:
        if writer is not None:
            writer.stop.set()
        stop_broker(**where)


class PipelineWriter(threading.Thread):
    """The demo's write path: simulated cloud → normalizer → Kafka log, ``batches`` times."""

    def __init__(self, log, sim, batches: int) -> None:  # noqa: ANN001
        super().__init__(name="pipeline-writer", daemon=True)
        from eventmodel.sources.nova import NovaNormalizer

        self.log, self.sim, self.batches = log, sim, batches
        self.normalizer = NovaNormalizer()
        self.cond = threading.Condition()
        self.done = 0
        self.in_append = False
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            for _ in range(self.batches):
                envelopes = []
                for raw in self.sim.step(20):
                    out = self.normalizer.normalize(raw)
                    assert out.status != "dead", out.reason
                    envelopes.extend(out.events)
                with self.cond:
                    self.in_append = True
                    self.cond.notify_all()
                self.log.append(envelopes)
                with self.cond:
                    self.in_append = False
                    self.done += 1
                    self.cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            with self.cond:
                self.errors.append(exc)
                self.cond.notify_all()


@pytest.mark.kafka
def test_model_equals_ground_truth_after_a_broker_outage(tmp_path: Path) -> None:
    from eventmodel.sim.cloud import Faults, SimCloud, diff_truth
    from eventmodel.sources.sync import Snapshotter
    from projections.projection import Follower, Projection

    where = {"port": PORT + 10, "controller_port": PORT + 11, "data": tmp_path / "kafka-fault2"}
    assert not broker_running(**where)
    start_broker(**where)
    follower = None
    try:
        url = f"kafka://127.0.0.1:{PORT + 10}/pipeline?partitions=3&delivery_timeout_ms=180000"
        log = open_log(url)
        sim = SimCloud(8, 60, seed=11, faults=Faults(drop=0.05, duplicate=0.05, reorder=0.05))
        syncer = Snapshotter(sim, log, clock=lambda: sim.clock_us)
        assert syncer.run_once().ok
        projection = Projection(partitions=log.partitions())
        follower = Follower(open_log(url), projection, poll=0.02).start()

        writer = PipelineWriter(log, sim, batches=60)
        writer.start()
        wait_for(lambda: writer.done >= 15 or bool(writer.errors), 60, "15 batches before the outage", writer.cond)
        stop_broker(**where)
        wait_for(lambda: writer.in_append or bool(writer.errors), 60, "an append during the outage", writer.cond)
        done_at_stop = writer.done
        start_broker(**where)
        wait_for(lambda: writer.done == 60 or bool(writer.errors), 240, "all batches after the restart",
                 writer.cond)
        assert not writer.errors, writer.errors
        assert done_at_stop < 60

        writer.join(timeout=30)
        sim_rest = sim.flush()
        from eventmodel.sources.nova import NovaNormalizer

        norm = NovaNormalizer()
        log.append([e for raw in sim_rest for e in norm.normalize(raw).events])
        assert syncer.run_once().ok
        end = log.end()
        model = projection.wait_for(lambda m: m.position.covers(end), timeout=120)
        assert follower.stale is None
        truth = sim.truth()
        assert diff_truth(truth, model.instances(), model.compute_nodes(), model.services()) == []
        assert len(model.instances()) == len(truth.instances) > 0
        log.close()
    finally:
        if follower is not None:
            follower.stop()
        stop_broker(**where)
