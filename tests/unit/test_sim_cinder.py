"""The simulated Cinder: its operations keep the storage truth consistent (a pool's
figures are what its volumes add up to), its notifications are Cinder's unversioned
ones key for key, they go through the same delivery faults as Nova's, and a cloud
without volumes is the cloud it was before."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventmodel.sim import Faults, OperationError, SimCloud
from eventmodel.sim.cinder import VOLUME_WEIGHTS
from eventmodel.sim.notifications import unwrap
from eventmodel.sim.storage import diff_storage

#: Cinder's ``_usage_from_volume`` keys, in order (research notes §3.3)
USAGE_KEYS = ["tenant_id", "host", "user_id", "availability_zone", "volume_id", "volume_type", "display_name",
              "launched_at", "created_at", "status", "snapshot_id", "size", "replication_status",
              "replication_extended_status", "replication_driver_data", "metadata", "volume_attachment"]
CAPACITY_KEYS = ["name_to_id", "total", "free", "allocated", "provisioned", "virtual_free", "reported_at"]
ENVELOPE_KEYS = {"message_id", "publisher_id", "event_type", "priority", "payload", "timestamp"}
AWARE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$")
NAIVE_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def check_truth(sim: SimCloud) -> None:
    """Every invariant of the storage truth."""
    st_ = sim.storage.state
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for v in st_.volumes.values():
        assert v.host in st_.pools, v
        sizes[v.host] += v.size_gb
        counts[v.host] += 1
        assert (v.status == "in-use") == bool(v.attachments), v
        for a in v.attachments:
            assert a.server_id in sim.state.instances, f"{v.uuid} attached to a deleted server"
        assert st_.volume_types[v.volume_type_id].name == v.volume_type
        upd = st_.updated_at[v.uuid]
        assert v.version == (upd if upd is not None else v.created_at)
        assert v.created_at % 1_000_000 == 0 and (upd is None or upd % 1_000_000 == 0)
    for name, p in st_.pools.items():
        assert p.allocated_capacity_gb == p.provisioned_capacity_gb == sizes[name]
        if p.unbounded:
            assert p.unbounded == "infinite" and p.total_capacity_gb is None and p.free_capacity_gb is None
            assert p.total_volumes is None
        else:
            assert p.free_capacity_gb == p.total_capacity_gb - sizes[name] >= 0
            assert p.total_volumes == counts[name]


def messages(raw: list[bytes]) -> list[dict]:
    return [unwrap(m) for m in raw]


def test_the_storage_the_cloud_starts_with() -> None:
    sim = SimCloud(8, 80, seed=4, volumes=300, storage_backends=3)
    st_ = sim.storage.state
    assert sorted(st_.nodes) == ["storage-01@lvm", "storage-02@lvm", "storage-03@ceph"]
    assert st_.nodes["storage-02@lvm"].disabled and st_.nodes["storage-02@lvm"].disabled_reason
    assert [p.unbounded for p in st_.pools.values()].count("infinite") == 1
    types = {t.name: t for t in st_.volume_types.values()}
    assert types["ceph"].backend_name == "ceph" and types["standard"].extra_specs == {"volume_backend_name": "lvm"}
    assert not types["secret"].is_public and types["__DEFAULT__"].backend_name is None
    assert len(st_.volumes) == 300
    # nothing on the disabled backend, and some volumes are attached to the instances already there
    assert not any(v.host.startswith("storage-02@") for v in st_.volumes.values())
    assert any(v.attachments for v in st_.volumes.values())
    assert any(u is None for u in st_.updated_at.values()) and any(u is not None for u in st_.updated_at.values())
    check_truth(sim)


def test_a_cloud_without_volumes_has_no_block_storage_and_the_same_operations() -> None:
    plain, zero = SimCloud(5, 40, seed=9), SimCloud(5, 40, seed=9, volumes=0)
    assert plain.step(60) == zero.step(60)
    assert zero.cinder is None and zero.storage_truth().volumes == {}
    with pytest.raises(OperationError, match="no block storage"):
        zero.list_volumes()


def test_random_operations_keep_the_truth_consistent_and_send_cinder_notifications() -> None:
    sim = SimCloud(8, 80, seed=5, volumes=200)
    out = messages(sim.step(400))
    check_truth(sim)
    kinds = {k for k in VOLUME_WEIGHTS if sim.counters[k]}
    assert kinds == set(VOLUME_WEIGHTS), f"never ran: {set(VOLUME_WEIGHTS) - kinds}"
    types = Counter(m["event_type"] for m in out)
    for et in ("volume.create.start", "volume.create.end", "volume.attach.start", "volume.attach.end",
               "volume.detach.start", "volume.detach.end", "volume.resize.start", "volume.resize.end",
               "volume.delete.start", "volume.delete.end", "volume.update.start", "volume.update.end",
               "capacity.pool", "capacity.backend"):
        assert types[et] > 0, et


def test_volume_notifications_have_cinders_exact_keys_and_formats() -> None:
    sim = SimCloud(8, 80, seed=6, volumes=200)
    out = [m for m in messages(sim.step(300)) if m["event_type"].split(".")[0] in ("volume", "capacity")]
    type_ids = set(sim.storage.state.volume_types)
    assert out
    for m in out:
        assert ENVELOPE_KEYS <= set(m) and m["priority"] == "INFO"
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$", m["timestamp"])
        p = m["payload"]
        if m["event_type"] == "capacity.pool":
            assert list(p) == CAPACITY_KEYS and p["name_to_id"].count("#") == 1
            assert m["publisher_id"].startswith("capacity.") and NAIVE_US.match(p["reported_at"])
            assert p["name_to_id"] not in sim.storage.state.infinite  # never for an infinite pool
            continue
        if m["event_type"] == "capacity.backend":
            assert list(p) == CAPACITY_KEYS and "#" not in p["name_to_id"]
            continue
        keys = list(p)
        assert keys[:len(USAGE_KEYS)] == USAGE_KEYS and keys[len(USAGE_KEYS):] in ([], ["glance_metadata"])
        assert "updated_at" not in p and "bootable" not in p
        assert p["volume_type"] in type_ids  # the type's id, not its name
        assert AWARE.match(p["created_at"]) and AWARE.match(p["launched_at"])
        assert isinstance(p["size"], int) and all(set(x) == {"key", "value"} for x in p["metadata"])
        for row in p["volume_attachment"]:
            assert row["volume_id"] == p["volume_id"] and row["instance_uuid"] and row["id"]
            assert {"attach_status", "mountpoint", "attach_time", "volume"} <= set(row)
        et, pub = m["event_type"], m["publisher_id"]
        if et.startswith("volume.create."):
            assert pub == "volume." + p["host"] and "#" in pub
        elif et in ("volume.attach.start", "volume.resize.start", "volume.resize.end", "volume.delete.start",
                    "volume.delete.end", "volume.retype"):
            assert pub.startswith("volume.storage-") and "#" not in pub  # the volume manager: host@backend
        else:
            assert pub.startswith("volume.controller-")  # the API
        if et == "volume.delete.end":
            assert p["status"] == "deleted"


def test_a_volume_created_attached_extended_retyped_detached_and_deleted() -> None:
    sim = SimCloud(4, 20, seed=7, volumes=10, storage_backends=3)
    cinder = sim.storage
    out = messages(sim.create_volume("standard", 10))
    u = sim.last_volume
    assert [m["event_type"] for m in out][:2] == ["volume.create.start", "volume.create.end"]
    assert cinder.state.updated_at[u] is None  # never saved since created: the API shows null
    assert out[1]["payload"]["status"] == "available" and out[1]["payload"]["volume_attachment"] == []
    server = next(iter(sim.state.instances))
    out = messages(sim.volume_op("attach", u, server))
    end = out[-1]
    assert end["event_type"] == "volume.attach.end" and end["payload"]["status"] == "in-use"
    assert [r["instance_uuid"] for r in end["payload"]["volume_attachment"]] == [server]
    assert cinder.state.updated_at[u] is not None
    with pytest.raises(OperationError):
        sim.volume_op("delete", u)  # attached
    attachment = cinder.state.volumes[u].attachments[0].attachment_id
    sim.volume_op("detach", u, attachment)
    out = messages(sim.volume_op("extend", u, 30))
    resize_end = next(m for m in out if m["event_type"] == "volume.resize.end")
    assert resize_end["payload"]["size"] == 30 and cinder.state.volumes[u].size_gb == 30
    ceph = next(t for t in cinder.state.volume_types.values() if t.name == "ceph")
    out = messages(sim.volume_op("retype", u, ceph.id))
    retype = next(m for m in out if m["event_type"] == "volume.retype")
    assert retype["payload"]["volume_type"] == ceph.id and retype["payload"]["host"].endswith("@ceph#rbd")
    assert cinder.state.volumes[u].host == retype["payload"]["host"]
    check_truth(sim)
    out = messages(sim.volume_op("delete", u))
    assert [m["event_type"] for m in out if m["event_type"].startswith("volume.")] == [
        "volume.delete.start", "volume.delete.end"]
    assert u not in cinder.state.volumes
    check_truth(sim)


def test_a_migration_sends_no_volume_notification_only_capacity_reports() -> None:
    sim = SimCloud(4, 20, seed=8, volumes=20, storage_backends=3)
    cinder = sim.storage
    v = next(v for v in cinder.state.volumes.values() if v.host.startswith("storage-01@lvm#pool-a"))
    out = messages(sim.volume_op("migrate", v.uuid, "storage-01@lvm#pool-b"))
    assert cinder.state.volumes[v.uuid].host == "storage-01@lvm#pool-b"
    assert {m["event_type"] for m in out} == {"capacity.pool", "capacity.backend"}
    assert sorted(m["payload"]["name_to_id"] for m in out if m["event_type"] == "capacity.pool") == [
        "storage-01@lvm#pool-a", "storage-01@lvm#pool-b"]
    check_truth(sim)


def test_nova_deleting_an_instance_detaches_its_volumes() -> None:
    sim = SimCloud(4, 30, seed=3, volumes=60)
    attached = next(v for v in sim.storage.state.volumes.values() if v.attachments)
    server = attached.attachments[0].server_id
    if sim.state.instances[server].locked:
        sim.unlock(server)
    out = messages(sim.delete(server))
    assert "volume.detach.end" in [m["event_type"] for m in out]
    assert all(server not in {a.server_id for a in v.attachments} for v in sim.storage.state.volumes.values())
    check_truth(sim)


def test_cinder_notifications_go_through_the_same_delivery_faults() -> None:
    sim = SimCloud(4, 20, seed=2, volumes=30, faults=Faults(duplicate=1.0))
    out = sim.create_volume("standard", 5)
    assert len(out) == 2 * len(set(out)) > 0  # each delivered twice in a row
    sim.faults = Faults(delay=1.0, max_delay=50)
    assert sim.create_volume("standard", 5) == [] and sim.held > 0
    released = messages(sim.release())
    assert any(m["event_type"] == "volume.create.end" for m in released)


def test_listing_pages_follow_cinders_order_and_a_deleted_marker_is_refused_as_cinder_does() -> None:
    """Cinder looks a marker up among live volumes (``_volume_get``, VolumeNotFound: 404):
    a marker deleted since the last page is refused; the page after the volume before it
    goes on in order."""
    sim = SimCloud(4, 20, seed=1, volumes=50)
    order = [v.uuid for v in sorted(sim.storage.state.volumes.values(), key=lambda v: (v.created_at, v.uuid),
                                    reverse=True)]
    first = sim.list_volumes(limit=7)
    assert [v.uuid for v in first] == order[:7]
    marker = first[-1]
    if sim.storage.state.volumes[marker.uuid].attachments:
        sim.volume_op("detach", marker.uuid, marker.attachments[0].attachment_id)
    sim.volume_op("delete", marker.uuid)
    with pytest.raises(OperationError, match="could not be found"):
        sim.list_volumes(limit=7, marker=marker.uuid)
    rest = []
    page = sim.list_volumes(limit=7, marker=first[-2].uuid)
    while page:
        rest += page
        page = sim.list_volumes(limit=7, marker=page[-1].uuid)
    assert [v.uuid for v in rest] == order[7:]
    with pytest.raises(OperationError, match="could not be found"):
        sim.list_volumes(marker="00000000-0000-4000-8000-000000000000")


@settings(max_examples=40, deadline=None)
@given(volumes=st.integers(1, 14), limit=st.integers(1, 5), gone=st.lists(st.integers(0, 13), max_size=8))
def test_a_volume_listing_goes_on_when_its_marker_volume_is_deleted_between_pages(
        volumes: int, limit: int, gone: list[int]) -> None:
    """Each page deletes a volume — often the one the next page's marker names (Cinder's
    404): the listing steps back to an earlier volume, lists every volume that survived, each once."""
    from tests.unit.sim_readers import SimStorageReader

    sim = SimCloud(2, 0, seed=volumes, volumes=volumes, volume_rate=0)
    order = sim.storage.state.ordered()[:]
    victims = [order[i % volumes] for i in gone]
    listed: list[str] = []

    def delete_one() -> None:
        vols = sim.storage.state.volumes
        u = victims.pop(0) if victims else (listed[-1] if listed else None)
        if u in vols and not vols[u].attachments:
            sim.volume_op("delete", u)

    sim.during_listing = delete_one
    for page in SimStorageReader(sim).volume_pages(limit):
        listed.extend(v.uuid for v in page)
    sim.during_listing = None
    assert len(listed) == len(set(listed))
    assert set(sim.storage.state.volumes) <= set(listed) <= set(order)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 120), backends=st.integers(1, 5))
def test_any_run_keeps_the_storage_truth_consistent(seed: int, steps: int, backends: int) -> None:
    sim = SimCloud(5, 30, seed=seed, volumes=40, storage_backends=backends, faults=Faults.nova_like())
    sim.step(steps)
    check_truth(sim)
    truth = sim.storage_truth()
    # a copy is equal to itself and independent of later operations
    assert diff_storage(truth, truth.nodes, truth.pools, truth.volumes, truth.volume_types) == []
    sim.step(5)
    assert truth.volumes is not sim.storage.state.volumes


class VolumeLifecycle(RuleBasedStateMachine):
    """Explicit volume operations in any order (and Nova deleting instances) keep the
    storage truth consistent, and each operation sends what Cinder would."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = SimCloud(3, 12, seed=13, volumes=8, storage_backends=3)

    def _volume(self, pick: int, ok) -> str | None:
        vols = [v for v in sorted(self.sim.storage.state.volumes.values(), key=lambda v: v.uuid) if ok(v)]
        return vols[pick % len(vols)].uuid if vols else None

    @rule(type_name=st.sampled_from(["standard", "ssd", "ceph", "secret", "__DEFAULT__"]),
          size=st.integers(1, 300))
    def create(self, type_name: str, size: int) -> None:
        try:
            out = messages(self.sim.create_volume(type_name, size))
        except OperationError:
            return
        assert [m["event_type"] for m in out][:2] == ["volume.create.start", "volume.create.end"]

    @rule(pick=st.integers(0, 1000), server=st.integers(0, 1000))
    def attach(self, pick: int, server: int) -> None:
        u = self._volume(pick, lambda v: v.status == "available")
        servers = sorted(s for s, i in self.sim.state.instances.items() if i.host is not None)
        if u is None or not servers:
            return
        out = messages(self.sim.volume_op("attach", u, servers[server % len(servers)]))
        assert out[-1]["event_type"] == "volume.attach.end" and out[-1]["payload"]["status"] == "in-use"

    @rule(pick=st.integers(0, 1000))
    def detach(self, pick: int) -> None:
        u = self._volume(pick, lambda v: bool(v.attachments))
        if u is not None:
            vol = self.sim.storage.state.volumes[u]
            out = messages(self.sim.volume_op("detach", u, vol.attachments[0].attachment_id))
            assert out[-1]["event_type"] == "volume.detach.end"

    @rule(pick=st.integers(0, 1000), more=st.integers(1, 500))
    def extend(self, pick: int, more: int) -> None:
        u = self._volume(pick, lambda v: v.status == "available")
        if u is not None:
            try:
                self.sim.volume_op("extend", u, self.sim.storage.state.volumes[u].size_gb + more)
            except OperationError:
                pass  # no room in its pool

    @rule(pick=st.integers(0, 1000), to=st.integers(0, 4))
    def retype(self, pick: int, to: int) -> None:
        u = self._volume(pick, lambda v: v.status == "available")
        if u is not None:
            vt = sorted(self.sim.storage.state.volume_types)[to]
            try:
                self.sim.volume_op("retype", u, vt)
            except OperationError:
                pass

    @rule(pick=st.integers(0, 1000), to=st.integers(0, 10))
    def migrate(self, pick: int, to: int) -> None:
        u = self._volume(pick, lambda v: True)
        pools = sorted(self.sim.storage.state.pools)
        if u is not None:
            try:
                out = messages(self.sim.volume_op("migrate", u, pools[to % len(pools)]))
            except OperationError:
                return
            assert not any(m["event_type"].startswith("volume.") for m in out)

    @rule(pick=st.integers(0, 1000))
    def delete(self, pick: int) -> None:
        u = self._volume(pick, lambda v: v.status == "available")
        if u is not None:
            self.sim.volume_op("delete", u)
            assert u not in self.sim.storage.state.volumes

    @rule(pick=st.integers(0, 1000))
    def nova_deletes_an_instance(self, pick: int) -> None:
        servers = sorted(s for s, i in self.sim.state.instances.items() if not i.locked)
        if servers:
            self.sim.delete(servers[pick % len(servers)])

    @invariant()
    def consistent(self) -> None:
        check_truth(self.sim)


TestVolumeLifecycle = VolumeLifecycle.TestCase
TestVolumeLifecycle.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
