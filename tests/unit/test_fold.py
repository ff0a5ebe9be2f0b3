"""Fold rules: versions, tombstones, idempotence, snapshot reconciliation."""

from __future__ import annotations

import attrs
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log.base import Position, Record
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState

FLAVORS = [ev.Flavor("small", 1, 512, 10), ev.Flavor("large", 8, 16384, 80)]
UUIDS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(6)]
NODES = ["node-a", "node-b", "node-c"]


def inst(uuid: str, version: int, node: str | None = "node-a", flavor: int = 0, state: str = "active") -> ev.Instance:
    return ev.Instance(uuid, version, node, node, state, FLAVORS[flavor])


#: when the test's full syncs start (source time): after every entity version used here
SYNC_TIME = 1_000


def records(payloads: list[object], partition: int = 0, start: int = 0) -> list[Record]:
    out = []
    for i, p in enumerate(payloads):
        e = ev.envelope(p, source="test", message_id=str(start + i),
                        occurred_at=getattr(ev.entity_of(p), "version", SYNC_TIME), recorded_at=start + i)
        out.append(Record(partition, start + i, e))
    return out


def model(recs: list[Record]) -> ClusterModel:
    return ClusterModel(fold(ClusterState.empty(), recs))


def test_update_moves_instance_between_nodes() -> None:
    m = model(records([ev.InstanceCreated(inst(UUIDS[0], 10, "node-a")),
                       ev.InstanceMigrated(inst(UUIDS[0], 11, "node-b"), "node-a", "node-a")]))
    assert m.instance(UUIDS[0]).node == "node-b"
    assert [i.uuid for i in m.node_instances("node-b")] == [UUIDS[0]]
    assert list(m.node_instances("node-a")) == []
    assert m.position == Position((2,))


def test_older_record_never_overwrites_newer() -> None:
    # live_migration_post.end arrives after post_dest.end with the older updated_at
    m = model(records([ev.InstanceMigrated(inst(UUIDS[0], 20, "node-b")),
                       ev.InstanceUpdated(inst(UUIDS[0], 19, "node-a"))]))
    assert m.instance(UUIDS[0]).node == "node-b"


def test_equal_version_later_record_wins() -> None:
    m = model(records([ev.InstanceUpdated(inst(UUIDS[0], 5, state="building")),
                       ev.InstanceUpdated(inst(UUIDS[0], 5, state="active"))]))
    assert m.instance(UUIDS[0]).vm_state == "active"


def test_tombstone_blocks_late_update() -> None:
    m = model(records([ev.InstanceCreated(inst(UUIDS[0], 5)),
                       ev.InstanceDeleted(inst(UUIDS[0], 7, state="deleted")),
                       ev.InstanceUpdated(inst(UUIDS[0], 6)),
                       ev.InstanceUpdated(inst(UUIDS[0], 7))]))
    assert UUIDS[0] not in m.instances()
    assert m.state.tombstones[ev.INSTANCE][UUIDS[0]] == 7
    assert list(m.node_instances("node-a")) == []


def test_delete_before_create_is_remembered() -> None:
    m = model(records([ev.InstanceDeleted(inst(UUIDS[0], 9)), ev.InstanceCreated(inst(UUIDS[0], 8))]))
    assert UUIDS[0] not in m.instances()


def test_fold_does_not_change_its_input() -> None:
    s0 = fold(ClusterState.empty(), records([ev.InstanceCreated(inst(UUIDS[0], 1))]))
    s1 = fold(s0, records([ev.InstanceDeleted(inst(UUIDS[0], 2))], start=1))
    assert UUIDS[0] in ClusterModel(s0).instances()
    assert UUIDS[0] not in ClusterModel(s1).instances()


def _sync(sid: str, observed: list[ev.Instance], at: int, partitions: int = 1) -> list[object]:
    return [ev.SnapshotStarted(sid, ev.KINDS, partitions), *[ev.InstanceObserved(sid, i) for i in observed],
            ev.SnapshotCompleted(sid, {"instance": len(observed)})]


def test_snapshot_deletes_unobserved_and_counts_drift() -> None:
    a, b, c = UUIDS[:3]
    live = [ev.InstanceCreated(inst(a, 1)), ev.InstanceCreated(inst(b, 1)), ev.InstanceCreated(inst(c, 1))]
    # the sync sees a unchanged, b moved (a lost notification), c gone (a lost delete)
    m = model(records(live + _sync("s1", [inst(a, 1), inst(b, 3, "node-c")], at=10)))
    assert set(m.instances()) == {a, b}
    assert m.instance(b).node == "node-c"
    assert m.last_snapshot is not None
    assert m.last_snapshot.corrected == 2 and m.last_snapshot.deleted == 1 and m.last_snapshot.observed == 2


def test_snapshot_keeps_entities_created_or_touched_during_it() -> None:
    a, b = UUIDS[:2]
    recs = [ev.InstanceCreated(inst(a, 1)), ev.SnapshotStarted("s1", ev.KINDS, 1),
            ev.InstanceCreated(inst(b, 2)),  # created after started: not observed, must survive
            ev.InstanceMigrated(inst(a, 2, "node-b")),  # touched after the API read below
            ev.InstanceObserved("s1", inst(a, 2, "node-a")),  # same version, older view: loses
            ev.SnapshotCompleted("s1", {})]
    m = model(records(recs))
    assert set(m.instances()) == {a, b}
    assert m.instance(a).node == "node-b"


def test_snapshot_over_partitions_reconciles_each_partition_at_its_completed_marker() -> None:
    a, b = UUIDS[:2]
    p0 = records([ev.InstanceCreated(inst(a, 1)), ev.SnapshotStarted("s", ev.KINDS, 2),
                  ev.SnapshotCompleted("s", {})], partition=0)
    p1 = records([ev.InstanceCreated(inst(b, 1)), ev.SnapshotStarted("s", ev.KINDS, 2),
                  ev.SnapshotCompleted("s", {})], partition=1)
    s = ClusterState.empty(2)
    half = fold(s, [p0[0], p1[0], p0[1], p0[2], p1[1]])  # p0 completed, p1 not yet
    assert set(ClusterModel(half).instances()) == {b}  # a lived in p0 and was not observed
    assert half.last_snapshot is None  # the result waits for every partition
    full = fold(half, p1[2:])
    assert set(ClusterModel(full).instances()) == set()
    assert full.position == Position((3, 3))
    assert full.last_snapshot is not None and full.last_snapshot.deleted == 2


def test_duplicate_markers_are_harmless() -> None:
    a = UUIDS[0]
    recs = records([ev.InstanceCreated(inst(a, 1)), *_sync("s1", [inst(a, 1)], 5)])
    once = fold(ClusterState.empty(), recs)
    twice = fold(once, recs)
    assert ClusterModel(twice).instances() == ClusterModel(once).instances()


# -- properties ---------------------------------------------------------------

def _payload(draw: st.DrawFn) -> object:
    uuid = draw(st.sampled_from(UUIDS))
    version = draw(st.integers(0, 20))
    node = draw(st.sampled_from([*NODES, None]))
    flavor = draw(st.integers(0, 1))
    kind = draw(st.sampled_from(["created", "updated", "migrated", "resized", "deleted"]))
    i = inst(uuid, version, node, flavor)
    return {
        "created": ev.InstanceCreated(i), "updated": ev.InstanceUpdated(i),
        "migrated": ev.InstanceMigrated(i), "resized": ev.InstanceResized(i), "deleted": ev.InstanceDeleted(i),
    }[kind]


payload_lists = st.lists(st.composite(_payload)(), max_size=40)


def _index_consistent(m: ClusterModel) -> bool:
    expected: dict[str, set[str]] = {}
    for uuid, i in m.instances().items():
        if i.node is not None:
            expected.setdefault(i.node, set()).add(uuid)
    return {n: set(v) for n, v in m.state.by_node.items()} == expected


@settings(max_examples=200, deadline=None)
@given(payload_lists)
def test_every_record_applied_twice_gives_the_same_model(payloads: list[object]) -> None:
    recs = records(payloads)
    once = model(recs)
    doubled = [r for rec in recs for r in (rec, rec)]
    twice = model(doubled)
    assert twice.instances() == once.instances()
    assert twice.state.tombstones == once.state.tombstones
    assert _index_consistent(once) and _index_consistent(twice)


@settings(max_examples=200, deadline=None)
@given(payload_lists)
def test_model_holds_the_newest_version_of_each_entity(payloads: list[object]) -> None:
    m = model(records(payloads))
    for uuid in UUIDS:
        mine = [p for p in payloads if ev.entity_of(p).uuid == uuid]
        if not mine:
            assert uuid not in m.instances()
            continue
        top = max(ev.entity_of(p).version for p in mine)
        at_top = [p for p in mine if ev.entity_of(p).version == top]
        if any(isinstance(p, ev.InstanceDeleted) for p in at_top):
            assert uuid not in m.instances()  # a delete at the newest version is final
        else:
            assert m.instance(uuid) == ev.entity_of(at_top[-1])  # equal versions: last wins


@settings(max_examples=100, deadline=None)
@given(payload_lists, st.data())
def test_folding_in_pieces_equals_folding_at_once(payloads: list[object], data: st.DataObject) -> None:
    recs = records(payloads)
    cut = data.draw(st.integers(0, len(recs)))
    whole = fold(ClusterState.empty(), recs)
    pieces = fold(fold(ClusterState.empty(), recs[:cut]), recs[cut:])
    assert attrs.evolve(pieces, applied=0) == attrs.evolve(whole, applied=0)


def test_abandoned_snapshot_is_superseded_by_a_later_completed_one() -> None:
    a = UUIDS[0]
    recs = records([ev.InstanceCreated(inst(a, 1)), ev.SnapshotStarted("dead", ev.KINDS, 1)])
    recs[1] = Record(0, 1, msgspec.structs.replace(recs[1].envelope, occurred_at=5))
    later = records(_sync("s2", [inst(a, 1)], 10), start=2)
    later = [Record(r.partition, r.offset, msgspec.structs.replace(r.envelope, occurred_at=10)) for r in later]
    s = fold(ClusterState.empty(), recs)
    assert set(s.open_snapshots.keys()) == {"dead"}
    s = fold(s, later)
    assert len(s.open_snapshots) == 0 and a in ClusterModel(s).instances()


def test_a_record_the_rules_cannot_apply_is_skipped_not_fatal() -> None:
    @attrs.frozen
    class Odd:  # a plugin event whose entity has no key/version
        TYPE = "odd.changed"
        KIND = "odd"
        ENTITY = "thing"
        EFFECT = "upsert"
        thing: str = "x"

    bad = Record(0, 1, ev.Envelope("e", Odd.TYPE, "k", "s", 1, 1, Odd()))
    recs = records([ev.InstanceCreated(inst(UUIDS[0], 1))]) + [bad] + records(
        [ev.InstanceCreated(inst(UUIDS[1], 1))], start=2)
    s = fold(ClusterState.empty(), recs)
    assert set(ClusterModel(s).instances()) == {UUIDS[0], UUIDS[1]}
    assert s.rejected == 1 and "odd.changed" in s.last_rejected
    assert s.position == Position((3,))


def _partition_of(uuid: str) -> int:
    return UUIDS.index(uuid) % 2


@settings(max_examples=150, deadline=None)
@given(payload_lists, payload_lists, payload_lists, st.lists(st.composite(_payload)(), max_size=8),
       st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_snapshot_outcome_does_not_depend_on_partition_interleaving(
        before: list[object], window: list[object], after: list[object], observed: list[object],
        r1, r2) -> None:  # noqa: ANN001
    """Two partitions, a full sync across both: any two read orders give the same model."""
    per: dict[int, list[object]] = {0: [], 1: []}

    def add(payloads: list[object]) -> None:
        for p in payloads:
            per[_partition_of(ev.entity_of(p).uuid)].append(p)

    add(before)
    for part in (0, 1):
        per[part].append(ev.SnapshotStarted("s", ev.KINDS, 2))
    add(window)
    add([ev.InstanceObserved("s", ev.entity_of(p)) for p in observed])
    for part in (0, 1):
        per[part].append(ev.SnapshotCompleted("s", {}))
    add(after)
    streams = {part: records(ps, partition=part) for part, ps in per.items()}

    def interleave(rnd) -> list[Record]:  # noqa: ANN001
        left = {p: list(rs) for p, rs in streams.items()}
        out = []
        while any(left.values()):
            p = rnd.choice([q for q, rs in left.items() if rs])
            out.append(left[p].pop(0))
        return out

    a = fold(ClusterState.empty(2), interleave(r1))
    b = fold(ClusterState.empty(2), interleave(r2))
    assert a.position == b.position
    assert a.tables == b.tables
    assert a.by_node == b.by_node
    assert (a.last_snapshot is None) == (b.last_snapshot is None)
