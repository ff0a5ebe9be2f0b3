"""The openstacksdk reader's conversions, on fakes shaped like openstacksdk resources.

(The simulated cloud's HTTP API, for the same reader over real HTTP, is a later piece.)
"""

from __future__ import annotations

from types import SimpleNamespace as NS

from eventmodel import events as ev
from eventmodel.sources.openstack import OpenStackReader, server_to_instance
from eventmodel.sources.sync import Snapshotter
from eventmodel.log import open_log
from projections.projection import Projection, catch_up

SERVER = {
    "id": "11111111-2222-3333-4444-555555555555", "name": "vm1", "updated_at": "2026-11-25T10:00:00Z",
    "OS-EXT-SRV-ATTR:host": "cmp1", "OS-EXT-SRV-ATTR:hypervisor_hostname": "cmp1.example",
    "OS-EXT-STS:vm_state": "active", "power_state": 1, "OS-EXT-STS:task_state": None,
    "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 5, "swap": 0},
    "tenant_id": "p1", "user_id": "u1", "locked": True, "locked_reason": "audit",
    "OS-EXT-AZ:availability_zone": "nova",
}


class FakeConn:
    def __init__(self, servers: list[dict]) -> None:
        self._servers = servers
        self.compute = NS(services=self._services, hypervisors=self._hypervisors, servers=self._list)
        self.placement = NS(resource_providers=lambda: [NS(id="rp1", name="cmp1.example")],
                            resource_provider_inventories=lambda rp: [
                                NS(resource_class="VCPU", total=32, reserved=2, allocation_ratio=4.0),
                                NS(resource_class="MEMORY_MB", total=65536, reserved=512, allocation_ratio=1.5),
                                NS(resource_class="DISK_GB", total=1000, reserved=0, allocation_ratio=1.0)])

    def _services(self, binary: str):
        assert binary == "nova-compute"
        return [NS(host="cmp1", binary="nova-compute", updated_at="2026-11-25T10:00:01.5Z", status="disabled",
                   disabled_reason="maint", is_forced_down=False, state="up", id="s1")]

    def _hypervisors(self, details: bool):
        return [NS(id="rp1", name="cmp1.example", service_details={"host": "cmp1"}, hypervisor_type="QEMU",
                   state="up")]

    def _list(self, details: bool, all_projects: bool, limit: int, marker: str | None = None):
        ids = [s["id"] for s in self._servers]
        start = ids.index(marker) + 1 if marker else 0
        yield from self._servers[start:]  # like the SDK: keeps paginating if not stopped


def test_server_conversion() -> None:
    i = server_to_instance(SERVER)
    assert (i.host, i.node, i.vm_state, i.power_state, i.project_id, i.locked) == \
        ("cmp1", "cmp1.example", "active", "running", "p1", True)
    assert i.flavor == ev.Flavor("m1.small", 2, 4096, 20, 5, 0)
    assert i.version % 1_000_000 == 0


def test_full_sync_through_the_reader(tmp_path) -> None:
    servers = [{**SERVER, "id": f"00000000-0000-0000-0000-{n:012d}"} for n in range(7)]
    reader = OpenStackReader(FakeConn(servers))
    nodes = reader.list_nodes()
    assert nodes[0].vcpus == 32 and nodes[0].cpu_allocation_ratio == 4.0 and nodes[0].host == "cmp1"
    assert reader.list_services()[0].disabled
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(reader, log, page_size=3).run_once()
    assert result.ok and result.counts == {"service": 1, "node": 1, "instance": 7}
    p = Projection()
    catch_up(p, log)
    m = p.latest()
    assert len(m.instances()) == 7
    assert m.node_used("cmp1.example").vcpus == 14
    assert m.node_capacity("cmp1.example").vcpus == 120


def test_failed_sync_leaves_the_model_alone(tmp_path) -> None:
    class Broken(FakeConn):
        def _hypervisors(self, details: bool):
            raise ConnectionError("nova-api unreachable")

    log = open_log(f"sqlite:///{tmp_path}/e.db")
    ok = Snapshotter(OpenStackReader(FakeConn([SERVER])), log).run_once()
    bad = Snapshotter(OpenStackReader(Broken([])), log).run_once()
    assert ok.ok and not bad.ok and "unreachable" in bad.error
    p = Projection()
    catch_up(p, log)
    assert len(p.latest().instances()) == 1  # nothing deleted by the failed sync
    assert p.latest().last_snapshot.snapshot_id == ok.snapshot_id
    assert len(p.latest().state.open_snapshots) == 0  # the aborted sync is closed, not left open
    assert p.latest().stale and "nova-api unreachable" in p.latest().stale
    assert Snapshotter(OpenStackReader(FakeConn([SERVER])), log).run_once().ok
    catch_up(p, log)
    assert p.latest().stale is None


def test_a_log_outage_fails_the_sync_without_raising(tmp_path) -> None:
    from eventmodel.log import LogError

    class DownLog:
        url = "kafka://down:9092/t"

        def partitions(self) -> int:
            return 1

        def append(self, envelopes) -> None:  # noqa: ANN001
            raise LogError("broker unreachable")

    result = Snapshotter(OpenStackReader(FakeConn([SERVER])), DownLog()).run_once()
    assert not result.ok and "broker unreachable" in result.error
