"""The fold's guarantees, stated as properties and attacked by hypothesis.

* Convergence: from ANY prior state (random entities, versions far in the future or
  at the lowest, tombstones, a log written by another simulated cloud), one quiescent
  full sync makes the model equal the cloud, and the drift it reports is exactly the
  number of entities it corrected.
* Duplicates at any distance (markers included, across a checkpoint) change nothing.
* The outcome does not depend on how a reader interleaves partitions, with snapshots
  completed, aborted, partial or superseded: a live follower, a replay with other
  batch sizes and a checkpoint + tail all agree.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log.base import Record
from eventmodel.sim.cloud import SimCloud, diff_truth
from eventmodel.sources.sync import Snapshotter
from projections.checkpoint import read_checkpoint, write_checkpoint
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState
from tests.unit.memlog import MemLog, interleave

S = 1_000_000
FLAVORS = [ev.Flavor("small", 1, 512, 10), ev.Flavor("large", 8, 16384, 80)]
UUIDS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(5)]
NODES = ["node-a", "node-b", "node-c"]
STATES = ["building", "active", "stopped", "migrating"]


def same_model(a: ClusterState, b: ClusterState) -> None:
    assert a.tables == b.tables
    assert a.tombstones == b.tombstones
    assert a.by_node == b.by_node


# ---------------------------------------------------------------------------
# A random history: live records and full syncs, as a log would hold them
# ---------------------------------------------------------------------------

@st.composite
def histories(draw: st.DrawFn, lowering: bool = True) -> list[tuple[object, tuple[int, ...] | None]]:
    """(payload, partitions-for-a-partial-marker or None) in append order.

    With ``lowering`` False, an observation never carries a version below one the
    log already holds for its key (a cloud whose hosts' clocks agree)."""
    out: list[tuple[object, tuple[int, ...] | None]] = []
    newest: dict[str, int] = {}
    gone: dict[str, int] = {}  # deleted keys: the delete's version
    n = draw(st.integers(1, 40))
    open_sync: str | None = None
    started_at = 0
    syncs = 0
    for _ in range(n):
        what = draw(st.sampled_from(["live", "live", "live", "delete", "sync", "observe", "end"]))
        u = draw(st.sampled_from(UUIDS))
        v = draw(st.integers(1, 8)) * S
        i = ev.Instance(u, v, None, draw(st.sampled_from(NODES + [None])), draw(st.sampled_from(STATES)),
                        FLAVORS[draw(st.integers(0, 1))])
        i = attrs.evolve(i, host=i.node)
        if what == "live":
            out.append((ev.InstanceUpdated(i), None))
            newest[u] = max(newest.get(u, 0), v)
        elif what == "delete":
            out.append((ev.InstanceDeleted(i), None))
            newest[u] = max(newest.get(u, 0), v)
            gone[u] = newest[u]
        elif what == "sync" and open_sync is None:
            syncs += 1
            open_sync = f"sync-{syncs}"
            started_at = len(out)  # its occurred_at in to_log()
            partial = draw(st.none() | st.just((0,)))
            out.append((ev.SnapshotStarted(open_sync, (ev.INSTANCE,), 3), partial))
        elif what == "observe" and open_sync is not None:
            if not lowering:
                # a cloud lists a deleted server again only after a newer save
                floor = gone.pop(u) + S if u in gone else 0
                i = attrs.evolve(i, version=max(v, newest.get(u, 0), floor))
                newest[u] = i.version
            if draw(st.integers(0, 5)) == 0:
                out.append((ev.InstanceSeen(open_sync, u), None))
            else:
                out.append((ev.InstanceObserved(open_sync, i), None))
        elif what == "end" and open_sync is not None:
            how = draw(st.sampled_from(["completed", "completed", "aborted", "abandoned"]))
            partial = draw(st.none() | st.just((1,)))
            if how == "completed":
                out.append((ev.SnapshotCompleted(open_sync, {}, started_at), partial))
            elif how == "aborted":
                out.append((ev.SnapshotAborted(open_sync, "API error", started_at), partial))
            open_sync = None
    return out


def to_log(history: list[tuple[object, tuple[int, ...] | None]], partitions: int) -> MemLog:
    log = MemLog(partitions)
    for n, (payload, only) in enumerate(history):
        env = ev.envelope(payload, source="test", message_id=str(n), occurred_at=n, recorded_at=n)
        log.append([env], only=[p for p in only if p < partitions] if only else None)
    return log


@given(histories(), st.integers(1, 3), st.randoms(use_true_random=False), st.randoms(use_true_random=False),
       st.integers(1, 7))
@settings(max_examples=200, deadline=None)
def test_outcome_does_not_depend_on_partition_interleaving(history, partitions, r1, r2, batch) -> None:
    log = to_log(history, partitions)
    empty = ClusterState.empty(partitions)
    follower = empty
    for rec in interleave(log.parts, r1):  # a live follower: one record at a time
        follower = fold(follower, [rec])
    replayed = empty
    order = interleave(log.parts, r2)
    for k in range(0, len(order), batch):  # a replay with other batches
        replayed = fold(replayed, order[k: k + batch])
    same_model(follower, replayed)
    assert follower.position == replayed.position
    assert follower.rejected == replayed.rejected == 0
    if all(only is None for _, only in history):
        # Markers on every partition, in append order (as the syncer writes them):
        # outcomes are reported in that order too.
        assert follower.sync_error == replayed.sync_error
        assert follower.last_snapshot == replayed.last_snapshot
        assert set(follower.open_snapshots.keys()) == set(replayed.open_snapshots.keys())


@given(histories(), st.integers(1, 3), st.randoms(use_true_random=False), st.integers(0, 60))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_checkpoint_and_tail_equal_a_replay_from_zero(tmp_path: Path, history, partitions, rng, cut) -> None:
    log = to_log(history, partitions)
    order = interleave(log.parts, rng)
    whole = fold(ClusterState.empty(partitions), order)
    cut = min(cut, len(order))
    head = fold(ClusterState.empty(partitions), order[:cut])
    restored = read_checkpoint(write_checkpoint(tmp_path / "c.ckpt", head))
    assert restored == head
    # The tail is read from the checkpoint's position, partition by partition.
    tail = [r for r in order[cut:] if r.offset >= restored.position.offsets[r.partition]]
    resumed = fold(restored, tail)
    same_model(whole, resumed)
    assert whole.position == resumed.position
    if all(only is None for _, only in history):  # see the interleaving test
        assert whole.open_snapshots == resumed.open_snapshots
        assert (whole.sync_error, whole.last_snapshot) == (resumed.sync_error, resumed.last_snapshot)


@given(histories(lowering=False), st.integers(1, 3), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
       max_size=12), st.randoms(use_true_random=False), st.integers(0, 60))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_duplicates_at_any_distance_change_nothing(tmp_path: Path, history, partitions, dups, rng, cut) -> None:
    """Each record may be appended again anywhere later (a bridge redelivering after a
    restart, two bridges, a syncer retrying an append): fold(log + copies) == fold(log)."""
    clean = to_log(history, partitions)
    doubled: list[tuple[object, tuple[int, ...] | None, int]] = [(p, only, n) for n, (p, only) in enumerate(history)]
    for a, b in dups:
        if not doubled:
            break
        src = a % len(doubled)
        dst = src + 1 + b % (len(doubled) - src)
        doubled.insert(dst, doubled[src])
    log = MemLog(partitions)
    for payload, only, n in doubled:  # a copy keeps its event id: same source message
        env = ev.envelope(payload, source="test", message_id=str(n), occurred_at=n, recorded_at=n)
        log.append([env], only=[p for p in only if p < partitions] if only else None)
    a = fold(ClusterState.empty(partitions), interleave(clean.parts, rng))
    order = interleave(log.parts, rng)
    cut = min(cut, len(order))
    head = read_checkpoint(write_checkpoint(tmp_path / "d.ckpt", fold(ClusterState.empty(partitions), order[:cut])))
    b = fold(head, order[cut:])
    same_model(a, b)
    if all(only is None for _, only in history):  # see the interleaving test
        assert (a.sync_error, a.last_snapshot) == (b.sync_error, b.last_snapshot)


@given(histories(), st.integers(1, 3), st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_records_at_or_below_the_position_are_skipped(history, partitions, rng) -> None:
    """A follower racing catch_up may hand the fold records it already folded."""
    log = to_log(history, partitions)
    order = interleave(log.parts, rng)
    once = fold(ClusterState.empty(partitions), order)
    twice = fold(once, order)
    assert twice == attrs.evolve(once, duplicates=once.duplicates + len(order))


def test_a_redelivered_update_far_later_does_not_revert_a_same_second_migration() -> None:
    """Issue 7 finding 3: A (node-a, second v), B (node-b, second v), A again → node-b."""
    a = ev.InstanceUpdated(ev.Instance(UUIDS[0], 5 * S, "node-a", "node-a", "active", FLAVORS[0], task_state="migrating"))
    b = ev.InstanceMigrated(ev.Instance(UUIDS[0], 5 * S, "node-b", "node-b", "active", FLAVORS[0]))
    ea = ev.envelope(a, source="nova-compute:node-a", message_id="m-a", occurred_at=1, recorded_at=1)
    eb = ev.envelope(b, source="nova-compute:node-b", message_id="m-b", occurred_at=2, recorded_at=2)
    filler = [ev.envelope(ev.InstanceUpdated(ev.Instance(UUIDS[1], k * S, "n", "n", "active", FLAVORS[0])),
                          source="x", message_id=f"f{k}", occurred_at=3, recorded_at=3) for k in range(1, 300)]
    recs = [Record(0, k, e) for k, e in enumerate([ea, eb, *filler, ea])]
    m = ClusterModel(fold(ClusterState.empty(), recs))
    assert m.instance(UUIDS[0]).node == "node-b"
    assert m.state.duplicates == 1


# ---------------------------------------------------------------------------
# Convergence against the simulated cloud
# ---------------------------------------------------------------------------

def _junk(draw: st.DrawFn, sim: SimCloud) -> list[object]:
    """Any prior state: the cloud's keys and others, versions from 0 to years ahead."""
    truth = sim.truth()
    uuids = sorted(truth.instances) + [f"ffffffff-0000-0000-0000-{i:012d}" for i in range(3)]
    hosts = sorted(truth.services) + ["ghost-host"]
    nodes = sorted(truth.nodes) + ["ghost-node.example.org"]
    far = sim.clock_us + 10 * 365 * 86_400 * S
    versions = st.sampled_from([0, sim.clock_us - 86_400 * S, sim.clock_us, far]) | st.integers(0, far)
    out: list[object] = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["instance", "instance", "delete", "node", "service"]))
        v = draw(versions)
        if kind in ("instance", "delete"):
            u = draw(st.sampled_from(uuids))
            node = draw(st.sampled_from(nodes + [None]))
            inst = ev.Instance(u, v, node and node.split(".")[0], node, draw(st.sampled_from(STATES)),
                               draw(st.sampled_from(FLAVORS)), availability_zone=draw(st.sampled_from([None, "nova"])))
            out.append(ev.InstanceUpdated(inst) if kind == "instance" else ev.InstanceDeleted(inst))
        elif kind == "node":
            out.append(ev.ComputeNodeObserved("old-sync", ev.ComputeNode(draw(st.sampled_from(nodes)), v,
                                                                         vcpus=draw(st.integers(0, 8)))))
        else:
            h = draw(st.sampled_from(hosts)).split("/")[0]
            out.append(ev.ComputeServiceChanged(ev.ComputeService(h, "nova-compute", v, disabled=draw(st.booleans()),
                                                                  forced_down=draw(st.booleans()))))
    return out


def _entities(state: ClusterState) -> dict[tuple[str, str], object]:
    return {(kind, key): attrs.evolve(e, version=0) for kind, t in state.tables.items() for key, e in t.items()}


def _truth_entities(sim: SimCloud) -> dict[tuple[str, str], object]:
    t = sim.truth()
    out: dict[tuple[str, str], object] = {}
    for kind, table in ((ev.INSTANCE, t.instances), (ev.NODE, t.nodes), (ev.SERVICE, t.services),
                        (ev.AGGREGATE, t.aggregates)):
        for e in table.values():
            out[(kind, e.key)] = attrs.evolve(e, version=0)
    return out


@given(st.integers(0, 10_000), st.integers(1, 3), st.none() | st.integers(0, 10_000), st.data())
@settings(max_examples=60, deadline=None)
def test_one_quiescent_full_sync_converges_from_any_prior_state(seed, partitions, other, data) -> None:
    """``other``: the log was first written by another simulated cloud."""
    sim = SimCloud(4, 12, seed=seed)
    sim.step(data.draw(st.integers(0, 20)))
    log = MemLog(partitions)
    n = 0

    def put(payload: object) -> None:
        nonlocal n
        n += 1
        log.append([ev.envelope(payload, source="prior", message_id=str(n), occurred_at=n, recorded_at=n)])

    if other is not None:  # another cloud's whole history, then its own sync
        foreign = SimCloud(4, 12, seed=other, start_time_us=sim.clock_us + data.draw(st.integers(-10**9, 10**9)) * S)
        Snapshotter(foreign, log, source="foreign").run_once()
        from eventmodel.sources.nova import NovaNormalizer

        normalizer = NovaNormalizer()
        for raw in foreign.step(data.draw(st.integers(0, 30))):
            log.append(normalizer.normalize(raw, recorded_at=1).events)
    for payload in _junk(data.draw, sim):
        put(payload)
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    before = fold(ClusterState.empty(partitions), interleave(log.parts, rng))
    # drift: what a lost notification would have said (no notification describes a node)
    wrong = {k for k in set(_entities(before)) | set(_truth_entities(sim))
             if k[0] != ev.NODE and _entities(before).get(k) != _truth_entities(sim).get(k)}

    mark = [len(p) for p in log.parts]
    result = Snapshotter(sim, log, source="sync", clock=lambda: sim.clock_us).run_once()
    assert result.ok
    tail = [p[m:] for p, m in zip(log.parts, mark, strict=True)]
    after = fold(before, interleave(tail, rng))
    m = ClusterModel(after)
    assert diff_truth(sim.truth(), m.instances(), m.compute_nodes(), m.services(), m.aggregates()) == []
    assert after.last_snapshot is not None and after.last_snapshot.snapshot_id == result.snapshot_id
    assert after.last_snapshot.corrected == len(wrong), sorted(wrong)
    assert after.sync_error is None and not after.open_snapshots
