"""Cinder's and Ironic's kinds on the same log: the fold keeps them with the same rules,
a sync of one service's kinds never touches another's, and checkpoints carry them."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.testing import records_of
from projections.checkpoint import read_checkpoint, write_checkpoint
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState

FLAVOR = ev.Flavor("m1.small", 1, 2048, 20)


def _vol(uuid: str, version: int, pool: str = "st1@lvm#pool1", status: str = "available") -> ev.Volume:
    return ev.Volume(uuid, version, pool, 10, status, name=uuid, project_id="p",
                     attachments=(ev.VolumeAttachment("srv-1", "att-1"),) if status == "in-use" else ())


def _bm(uuid: str, version: int, power: str = "power on") -> ev.BaremetalNode:
    return ev.BaremetalNode(uuid, version, power_state=power, extra={"compute_node_id": 7, "rack": ["a", 1]})


def test_a_storage_sync_reconciles_storage_and_leaves_compute_alone() -> None:
    inst = ev.Instance("i1", 5, "h1", "h1", "active", FLAVOR)
    recs = records_of([
        ev.InstanceCreated(inst), ev.VolumeChanged(_vol("v1", 0)), ev.VolumeChanged(_vol("v2", 0)),
        ev.BaremetalNodeChanged(_bm("b1", 3)),
        ev.SnapshotStarted("s", ev.STORAGE_KINDS, 1), ev.VolumeObserved("s", _vol("v1", 9, status="in-use")),
        ev.PoolObserved("s", ev.StoragePool("st1@lvm#pool1", 4, 100.0, 60.0)),
        ev.SnapshotCompleted("s", {ev.VOLUME: 1, ev.POOL: 1}),
    ])
    model = ClusterModel(fold(ClusterState.empty(), recs))
    assert set(model.volumes()) == {"v1"} and model.volume("v1").attachments[0].server_id == "srv-1"
    assert set(model.instances()) == {"i1"} and set(model.baremetal_nodes()) == {"b1"}
    assert model.pools()["st1@lvm#pool1"].node == "st1@lvm"
    assert model.last_snapshot is not None and model.last_snapshot.deleted == 1


def test_a_nova_sync_never_deletes_volumes_or_baremetal_nodes() -> None:
    recs = records_of([ev.VolumeChanged(_vol("v1", 0)), ev.BaremetalNodeChanged(_bm("b1", 3)),
                       ev.SnapshotStarted("n"), ev.SnapshotCompleted("n", {})])
    model = ClusterModel(fold(ClusterState.empty(), recs))
    assert ev.SnapshotStarted("n").scope == ev.COMPUTE_KINDS
    assert set(model.volumes()) == {"v1"} and set(model.baremetal_nodes()) == {"b1"}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["v1", "v2", "b1"]), st.integers(0, 5), st.booleans()), max_size=25),
       st.integers(0, 25))
def test_storage_and_baremetal_records_fold_alike_record_by_record_and_at_once(
        ops: list[tuple[str, int, bool]], cut: int) -> None:
    payloads: list[object] = []
    for key, version, delete in ops:
        if key.startswith("v"):
            payloads.append((ev.VolumeDeleted if delete else ev.VolumeChanged)(_vol(key, version)))
        else:
            payloads.append((ev.BaremetalNodeDeleted if delete else ev.BaremetalNodeChanged)(_bm(key, version)))
    recs = records_of(payloads + payloads[:cut])  # copies at any distance change nothing
    whole = fold(ClusterState.empty(), recs)
    one = ClusterState.empty()
    for r in recs:
        one = fold(one, [r])
    assert one.tables == whole.tables
    first = fold(ClusterState.empty(), records_of(payloads))
    assert whole.tables == first.tables


def test_a_checkpoint_carries_the_new_kinds(tmp_path: Path) -> None:
    recs = records_of([ev.VolumeChanged(_vol("v1", 2, status="in-use")), ev.BaremetalNodeChanged(_bm("b1", 3)),
                       ev.PoolChanged(ev.StoragePool("st1@lvm#pool1", 4, None, None, unbounded="infinite")),
                       ev.SnapshotStarted("s", ev.STORAGE_KINDS, 1),
                       ev.StorageNodeObserved("s", ev.StorageNode("st1@lvm", 0, "nova")),
                       ev.VolumeTypeObserved("s", ev.VolumeType("t1", 0, "lvm-thin", "lvm")),
                       ev.VolumeDeleted(_vol("v9", 1))])
    state = fold(ClusterState.empty(), recs)
    path = tmp_path / "c.ckpt"
    write_checkpoint(path, state)
    back = read_checkpoint(path)
    assert back.tables == state.tables and back.tombstones == state.tombstones
    assert back.table(ev.BAREMETAL_NODE)["b1"].extra == {"compute_node_id": 7, "rack": ["a", 1]}


def test_a_snapshot_export_carries_the_new_kinds_and_a_compute_only_one_is_unchanged(tmp_path: Path) -> None:
    from projections.export import export_snapshot, load_snapshot, to_document

    inst = ev.Instance("i1", 5, "h1", "h1", "active", FLAVOR)
    compute = ClusterModel(fold(ClusterState.empty(), records_of([ev.InstanceCreated(inst)])))
    assert not {"volumes", "pools", "baremetal_nodes"} & set(to_document(compute, exported_at=1))
    recs = records_of([ev.InstanceCreated(inst), ev.VolumeChanged(_vol("v1", 2, status="in-use")),
                       ev.BaremetalNodeChanged(_bm("b1", 3)),
                       ev.PoolChanged(ev.StoragePool("st1@lvm#pool1", 4, 10.0, 5.0, total_volumes=1)),
                       ev.SnapshotStarted("s", ev.STORAGE_KINDS, 1),
                       ev.StorageNodeObserved("s", ev.StorageNode("st1@lvm", 0, "nova")),
                       ev.VolumeTypeObserved("s", ev.VolumeType("t1", 0, "lvm-thin", "lvm"))])
    model = ClusterModel(fold(ClusterState.empty(), recs))
    back = load_snapshot(export_snapshot(model, tmp_path / "s.json", exported_at=1))
    for kind in (*ev.STORAGE_KINDS, *ev.BAREMETAL_KINDS):
        assert dict(back.table(kind)) == dict(model.table(kind)) and len(back.table(kind)) == 1, kind
    assert dict(back.instances()) == dict(model.instances())


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(8)), st.integers(0, 10_000))
def test_an_enrolled_changed_and_deleted_node_stays_deleted_whatever_the_delivery_order(
        order: list[int], seed: int) -> None:
    """The sim's ``create.end``, ``power_set.end``, ``provision_set.end`` and ``delete.end``
    of one node (with copies), normalized as the bridge does: a delete's tombstone carries
    the node's last ``updated_at``, so no earlier notification, however late, brings it back
    (ADR 0004), and a node created with ``updated_at`` null is deleted at its ``created_at``."""
    from eventmodel.sim import Faults, SimCloud
    from eventmodel.sources.plugins import CompositeNormalizer

    sim = SimCloud(1, 0, seed=seed, faults=Faults.kind(), baremetal=1, baremetal_rate=0, baremetal_churn=0)
    raw = sim.baremetal_op("enroll")
    u = sim.ironic.places[-1]
    if seed % 2:  # changed after its creation, or deleted untouched
        raw += sim.baremetal_op("power", u, True)
    raw += sim.baremetal_op("delete", u)
    normalizer = CompositeNormalizer()
    payloads = [e.payload for r in raw for e in normalizer.normalize(r, recorded_at=sim.clock_us).events]
    assert [type(p) for p in payloads][-1] is ev.BaremetalNodeDeleted
    copies = (payloads * 4)[:8]
    shuffled = [copies[i] for i in order]
    model = ClusterModel(fold(ClusterState.empty(), records_of(shuffled)))
    assert u not in model.baremetal_nodes()
    # a baremetal sync that listed the node before it was deleted, the delete reaching the
    # log while it read, does not bring it back either (the key was touched in its window)
    late = records_of([ev.SnapshotStarted("s", ev.BAREMETAL_KINDS, 0)] + shuffled
                      + [ev.BaremetalNodeObserved("s", payloads[0].baremetal_node),
                         ev.SnapshotCompleted("s", {ev.BAREMETAL_NODE: 1})])
    assert u not in ClusterModel(fold(ClusterState.empty(), late)).baremetal_nodes()
