"""The openstacksdk reader on a fake connection that answers the JSON the Nova and
Placement APIs document (the same reader over real HTTP against the simulated cloud
is tests/integration/test_sync_http.py)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.clock import parse_time
from eventmodel.log import open_log
from eventmodel.sources.openstack import (
    COMPUTE_SERVERS,
    CloudApiError,
    OpenStackReader,
    RequestCounter,
    ServerConverter,
    aggregate_from_api,
    negotiate,
    server_to_instance,
)
from eventmodel.sources.sync import STOPPED, Snapshotter
from projections.projection import Projection, catch_up

SERVER = {
    "id": "11111111-2222-3333-4444-555555555555", "name": "vm1", "status": "ACTIVE",
    "updated": "2026-11-25T10:00:00Z", "created": "2026-11-24T09:00:00Z",
    "OS-EXT-SRV-ATTR:host": "cmp1", "OS-EXT-SRV-ATTR:hypervisor_hostname": "cmp1.example",
    "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1, "OS-EXT-STS:task_state": None,
    "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 5, "swap": 0,
               "extra_specs": {"hw:cpu_policy": "dedicated"}},
    "tenant_id": "p1", "user_id": "u1", "locked": True, "locked_reason": "audit",
    "OS-EXT-AZ:availability_zone": "nova", "metadata": {"watcher-exclude": "true"},
}
INVENTORY = {
    "VCPU": {"total": 32, "reserved": 2, "allocation_ratio": 4.0, "min_unit": 1, "max_unit": 32, "step_size": 1},
    "MEMORY_MB": {"total": 65536, "reserved": 512, "allocation_ratio": 1.5, "min_unit": 1, "max_unit": 65536,
                  "step_size": 1},
    "DISK_GB": {"total": 1000, "reserved": 0, "allocation_ratio": 1.0, "min_unit": 1, "max_unit": 1000,
                "step_size": 1},
    "VGPU": {"total": 4, "reserved": 0, "allocation_ratio": 1.0},
}


def hypervisor(n: int, disabled: bool = False) -> dict[str, Any]:
    return {"id": f"rp-{n}", "hypervisor_hostname": f"cmp{n}.example", "state": "up",
            "status": "disabled" if disabled else "enabled", "hypervisor_type": "QEMU",
            "service": {"host": f"cmp{n}", "id": f"svc-{n}", "disabled_reason": "maint" if disabled else None}}


class Resp:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.content = msgspec.json.encode(body)
        self.text = self.content.decode()
        self.reason = "error" if status >= 400 else "OK"
        self._content_consumed = True

    def close(self) -> None:
        pass


class FakeApi:
    """One service endpoint, as openstacksdk's proxy shows it: where, which versions."""

    def __init__(self, name: str, versions: tuple[str, str]) -> None:
        self.name, self.versions = name, versions

    def get_endpoint(self) -> str:
        return f"http://fake/{self.name}/v1"

    def get_endpoint_data(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(min_microversion=self.versions[0], max_microversion=self.versions[1])


class FakeSession:
    """The connection's keystoneauth session: answers GETs of absolute URLs from the cloud."""

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def get(self, url: str, params: dict, headers: dict, microversion: str, microversion_service_type: str,
            raise_exc: bool, connect_retries: int, stream: bool) -> Resp:
        assert not raise_exc
        service, _, path = url[len("http://fake/"):].partition("/v1")
        assert service == microversion_service_type
        with self.cloud.lock:
            self.cloud.calls.append((service, path, dict(params), microversion))
        return self.cloud.answer(service, path, params)


class FakeCloud:
    """A connection (``.compute``, ``.placement``) over hypervisors and servers in memory."""

    def __init__(self, hypervisors: list[dict], servers: list[dict], *, compute_max: str = "2.100",
                 aggregates: list[dict] | None = None, page_cap: int | None = None) -> None:
        self.hypervisors, self.servers = hypervisors, servers
        self.aggregates = aggregates if aggregates is not None else [
            {"id": 1, "uuid": "agg-1", "name": "fast", "availability_zone": "az1", "hosts": ["cmp1"],
             "metadata": {"availability_zone": "az1", "ssd": "true"}}]
        self.page_cap = page_cap  # the API's max_limit
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, dict, str]] = []
        self.compute = FakeApi("compute", ("2.1", compute_max))
        self.placement = FakeApi("placement", ("1.0", "1.39"))
        self.session = FakeSession(self)
        self.fail: dict[str, Exception] = {}  # url prefix -> exception to raise

    def _page(self, items: list[dict], params: dict, links: str) -> dict:
        limit = int(params.get("limit", 1000))
        if self.page_cap:
            limit = min(limit, self.page_cap)
        ids = [i["id"] for i in items]
        start = ids.index(params["marker"]) + 1 if params.get("marker") else 0
        page = items[start:start + limit]
        body: dict[str, Any] = {links.split("_")[0]: page}
        if len(page) == limit:
            body[links] = [{"rel": "next", "href": f"http://fake/?marker={page[-1]['id']}"}]
        return body

    def answer(self, service: str, url: str, params: dict) -> Resp:
        for prefix, exc in self.fail.items():
            if url.startswith(prefix):
                raise exc
        if url == "/os-services":
            return Resp(200, {"services": [
                {"id": f"svc-{n}", "host": h["service"]["host"], "binary": "nova-compute", "zone": "az1",
                 "status": h["status"], "state": "up", "updated_at": "2026-11-25T10:00:01.5",
                 "disabled_reason": h["service"]["disabled_reason"], "forced_down": False}
                for n, h in enumerate(self.hypervisors)]})
        if url == "/os-aggregates":
            return Resp(200, {"aggregates": self.aggregates})
        if url == "/os-hypervisors/detail":
            return Resp(200, self._page(self.hypervisors, params, "hypervisors_links"))
        if url == "/servers/detail":
            return Resp(200, self._page(self.servers, params, "servers_links"))
        if url.startswith("/resource_providers/") and url.endswith("/inventories"):
            rp = url.split("/")[2]
            if rp == "rp-missing":
                return Resp(404, {"errors": [{"title": "Not Found"}]})
            return Resp(200, {"inventories": INVENTORY, "resource_provider_generation": 3})
        return Resp(404, {"itemNotFound": {"message": url}})

    def requests_to(self, url: str) -> list[tuple[str, str, dict, str]]:
        return [c for c in self.calls if c[1] == url]


def servers(n: int) -> list[dict]:
    return [{**SERVER, "id": f"00000000-0000-0000-0000-{i:012d}"} for i in range(n)]


def test_server_conversion() -> None:
    i = server_to_instance(SERVER)
    assert (i.host, i.node, i.vm_state, i.power_state, i.project_id, i.locked) == \
        ("cmp1", "cmp1.example", "active", "running", "p1", True)
    assert i.flavor == ev.Flavor("m1.small", 2, 4096, 20, 5, 0, {"hw:cpu_policy": "dedicated"})
    assert i.flavor.extra_specs == {"hw:cpu_policy": "dedicated"}
    assert i.metadata == {"watcher-exclude": "true"}
    assert i.created_at == 1_795_510_800_000_000  # 2026-11-24T09:00:00Z in µs
    assert i.version % 1_000_000 == 0 and i.version > i.created_at


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_api_times_parse_as_the_clock_does(dt: datetime) -> None:
    for text in (dt.strftime("%Y-%m-%dT%H:%M:%SZ"), dt.isoformat() + "Z", dt.strftime("%Y-%m-%d %H:%M:%S")):
        assert server_to_instance({**SERVER, "created": text}).created_at == parse_time(text)


@pytest.mark.parametrize("metadata, expected", [
    (None, {}), ({}, {}), ({"ssd": "true"}, {"ssd": "true"}),
    ({"ssd": None, "n": 2, "on": True}, {"ssd": "", "n": "2", "on": "True"})])
def test_aggregate_metadata_reads_as_the_notifications_do(metadata: Any, expected: dict) -> None:
    agg = {"id": 1, "uuid": "agg-1", "name": "fast", "hosts": [], "metadata": metadata}
    assert aggregate_from_api(agg).metadata == expected


@pytest.mark.parametrize("metadata", [["ssd"], "ssd=true", {"ssd": ["true"]}])
def test_aggregate_metadata_not_an_object_of_strings_is_a_clear_error(tmp_path, metadata: Any) -> None:
    agg = {"id": 1, "uuid": "agg-1", "name": "fast", "hosts": [], "metadata": metadata}
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(OpenStackReader(FakeCloud([hypervisor(1)], servers(1), aggregates=[agg])), log).run_once()
    assert not result.ok and "an aggregate of /os-aggregates is not as documented" in result.error


def test_a_server_not_as_documented_is_a_clear_error() -> None:
    with pytest.raises(CloudApiError, match="flavor.vcpus"):
        server_to_instance({**SERVER, "flavor": {**SERVER["flavor"], "vcpus": "two"}})


@pytest.mark.parametrize("broken", ["service", "hypervisor", "inventory", "aggregate"])
def test_a_record_not_as_documented_fails_the_sync_with_a_clear_error(tmp_path, broken: str) -> None:
    class Broken(FakeCloud):
        def answer(self, service: str, url: str, params: dict) -> Resp:
            resp = super().answer(service, url, params)
            body = msgspec.json.decode(resp.content)
            if broken == "service" and url == "/os-services":
                del body["services"][0]["host"]
            elif broken == "hypervisor" and url == "/os-hypervisors/detail":
                body["hypervisors"][0]["hypervisor_hostname"] = None
            elif broken == "inventory" and url.endswith("/inventories"):
                body["inventories"]["VCPU"]["total"] = "many"
            elif broken == "aggregate" and url == "/os-aggregates":
                body["aggregates"][0]["id"] = "x"
            return Resp(resp.status_code, body)

    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(OpenStackReader(Broken([hypervisor(1)], servers(3))), log).run_once()
    assert not result.ok and "CloudApiError" in result.error and ("not as documented" in result.error
                                                            or "without an id or a hostname" in result.error)


def test_servers_of_one_flavor_share_one_flavor_object() -> None:
    cache = ServerConverter()
    plain = {k: v for k, v in SERVER["flavor"].items() if k != "extra_specs"}
    a = server_to_instance({**SERVER, "flavor": plain}, cache)
    b = server_to_instance({**SERVER, "id": "other", "flavor": dict(plain)}, cache)
    assert a.flavor is b.flavor and a.flavor.extra_specs == {}


def test_a_down_cells_minimal_record_is_partial() -> None:
    p = server_to_instance({"id": "u1", "status": "UNKNOWN", "tenant_id": "p1", "created": "2026-11-24T09:00:00Z"})
    assert p == ev.PartialInstance("u1", "UNKNOWN", "p1")


@pytest.mark.parametrize(("announced", "chosen"), [
    (("2.1", "2.100"), "2.100"), (("2.1", "2.79"), "2.79"), (("2.1", "2.120"), "2.100"), (("2.53", "2.53"), "2.53"),
])
def test_microversions_are_negotiated(announced: tuple[str, str], chosen: str) -> None:
    assert negotiate("compute", announced, COMPUTE_SERVERS) == chosen


@given(st.integers(0, 130), st.integers(0, 130))
def test_negotiation_never_picks_outside_either_range(lo: int, hi: int) -> None:
    try:
        v = negotiate("compute", (f"2.{lo}", f"2.{hi}"), COMPUTE_SERVERS)
    except CloudApiError as exc:
        assert "2.53" in str(exc)
        assert max(lo, 53) > min(hi, 100)
        return
    minor = int(v.split(".")[1])
    assert max(lo, 53) <= minor <= min(hi, 100) and minor == min(hi, 100)


def test_a_cloud_older_than_needed_is_a_clear_error(tmp_path) -> None:
    cloud = FakeCloud([hypervisor(1)], servers(3), compute_max="2.40")
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(OpenStackReader(cloud), log).run_once()
    assert not result.ok and "2.1..2.40" in result.error and "2.53" in result.error


def test_full_sync_through_the_reader(tmp_path) -> None:
    hyps = [hypervisor(1), hypervisor(2, disabled=True), hypervisor(3)]
    cloud = FakeCloud(hyps, servers(7))
    reader = OpenStackReader(cloud, page_size=2)
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(reader, log, page_size=3).run_once()
    assert result.ok, result.error
    assert result.counts == {"service": 3, "node": 3, "aggregate": 1, "instance": 7}
    assert result.pages == 3
    # the microversions negotiated are the ones sent
    mv = {url: m for _, url, _, m in cloud.calls}
    assert mv["/servers/detail"] == "2.100" and mv["/os-hypervisors/detail"] == "2.88"
    assert mv["/resource_providers/rp-1/inventories"] == "1.39"
    # pages: 7 servers by 3 -> 3 requests, the short third ends the listing;
    # 3 hypervisors by 2 -> 2 requests
    assert [c[2].get("marker") for c in cloud.requests_to("/servers/detail")] == [
        None, "00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000005"]
    assert len(cloud.requests_to("/os-hypervisors/detail")) == 2
    assert all(c[2]["all_tenants"] == "True" for c in cloud.requests_to("/servers/detail"))
    p = Projection()
    catch_up(p, log)
    m = p.latest()
    assert len(m.instances()) == 7
    node = m.compute_node("cmp1.example")
    assert (node.vcpus, node.vcpus_reserved, node.cpu_allocation_ratio, node.host, node.uuid) == \
        (32, 2, 4.0, "cmp1", "rp-1")
    assert m.compute_node("cmp2.example").disabled and m.compute_node("cmp2.example").disabled_reason == "maint"
    assert not m.compute_node("cmp1.example").disabled
    assert m.node_used("cmp1.example").vcpus == 14
    assert m.node_capacity("cmp1.example").vcpus == 120
    svc = m.service("cmp2")
    assert svc.disabled and svc.availability_zone == "az1" and svc.uuid == "svc-1"
    agg = m.table(ev.AGGREGATE)["agg-1"]
    assert (agg.id, agg.name, agg.availability_zone, agg.hosts, agg.version) == (1, "fast", "az1", ("cmp1",), 0)
    assert agg.metadata == {"availability_zone": "az1", "ssd": "true"}
    inst = m.instance("00000000-0000-0000-0000-000000000004")
    assert inst.metadata == {"watcher-exclude": "true"} and inst.flavor.extra_specs == {"hw:cpu_policy": "dedicated"}


@pytest.mark.parametrize(("n", "limit", "expected"), [(0, 3, 1), (2, 3, 1), (3, 3, 2), (6, 3, 3), (7, 3, 3)])
def test_no_page_is_requested_after_a_short_one(tmp_path, n: int, limit: int, expected: int) -> None:
    cloud = FakeCloud([hypervisor(1)], servers(n))
    result = Snapshotter(OpenStackReader(cloud), open_log(f"sqlite:///{tmp_path}/e.db"), page_size=limit).run_once()
    assert result.ok and result.counts["instance"] == n
    assert len(cloud.requests_to("/servers/detail")) == expected


def test_an_api_capping_the_page_below_the_limit_is_followed_to_the_end(tmp_path) -> None:
    """Nova caps ``limit`` at its max_limit and says so with a next link: a page
    shorter than asked is not the end when the link is there."""
    cloud = FakeCloud([hypervisor(n) for n in range(5)], servers(10), page_cap=4)
    reader = OpenStackReader(cloud, page_size=100)
    result = Snapshotter(reader, open_log(f"sqlite:///{tmp_path}/e.db"), page_size=100).run_once()
    assert result.ok and result.counts["instance"] == 10 and result.counts["node"] == 5
    assert len(cloud.requests_to("/servers/detail")) == 3


def test_inventory_requests_run_concurrently_and_bounded(tmp_path) -> None:
    workers = 4
    barrier = threading.Barrier(workers, timeout=10)
    inflight, peak = [0], [0]
    lock = threading.Lock()

    class Concurrent(FakeCloud):
        def answer(self, service: str, url: str, params: dict) -> Resp:
            if service != "placement":
                return super().answer(service, url, params)
            with lock:
                inflight[0] += 1
                peak[0] = max(peak[0], inflight[0])
            try:
                barrier.wait()  # passes only when `workers` requests are in flight together
                return super().answer(service, url, params)
            finally:
                with lock:
                    inflight[0] -= 1

    cloud = Concurrent([hypervisor(n) for n in range(12)], servers(1))
    result = Snapshotter(OpenStackReader(cloud, inventory_workers=workers),
                         open_log(f"sqlite:///{tmp_path}/e.db")).run_once()
    assert result.ok, result.error
    assert peak[0] == workers and result.counts["node"] == 12


def test_a_provider_placement_does_not_have_yet_is_a_node_without_capacity(tmp_path) -> None:
    hyps = [hypervisor(1), {**hypervisor(2), "id": "rp-missing"}]
    nodes = {n.name: n for n in OpenStackReader(FakeCloud(hyps, [])).list_nodes()}
    assert nodes["cmp2.example"].vcpus == 0 and nodes["cmp1.example"].vcpus == 32


def test_failed_sync_leaves_the_model_alone(tmp_path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    ok = Snapshotter(OpenStackReader(FakeCloud([hypervisor(1)], [SERVER])), log).run_once()
    broken = FakeCloud([hypervisor(1)], servers(5))
    broken.fail["/resource_providers/"] = ConnectionError("placement unreachable")
    bad = Snapshotter(OpenStackReader(broken), log).run_once()
    assert ok.ok and not bad.ok and "unreachable" in bad.error
    p = Projection()
    catch_up(p, log)
    assert len(p.latest().instances()) == 1  # nothing deleted, nothing added by the failed sync
    assert p.latest().last_snapshot.snapshot_id == ok.snapshot_id
    assert len(p.latest().state.open_snapshots) == 0  # the aborted sync is closed, not left open
    assert p.latest().stale and "placement unreachable" in p.latest().stale
    assert Snapshotter(OpenStackReader(FakeCloud([hypervisor(1)], [SERVER])), log).run_once().ok
    catch_up(p, log)
    assert p.latest().stale is None


def test_an_error_status_fails_the_sync_with_the_status(tmp_path) -> None:
    class Err(FakeCloud):
        def answer(self, service: str, url: str, params: dict) -> Resp:
            if url == "/servers/detail" and params.get("marker"):
                return Resp(500, {"computeFault": {"message": "boom", "code": 500}})
            return super().answer(service, url, params)

    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(OpenStackReader(Err([hypervisor(1)], servers(5))), log, page_size=2).run_once()
    assert not result.ok and "answered 500" in result.error and "boom" in result.error


def test_a_stop_request_aborts_between_pages(tmp_path) -> None:
    cancel = threading.Event()

    class Stopping(FakeCloud):
        def answer(self, service: str, url: str, params: dict) -> Resp:
            if url == "/servers/detail" and params.get("marker"):
                cancel.set()  # the stop arrives while the second page is read
            return super().answer(service, url, params)

    cloud = Stopping([hypervisor(1)], servers(20))
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    result = Snapshotter(OpenStackReader(cloud), log, page_size=2).run_once(cancel=cancel)
    assert result.error == STOPPED
    assert len(cloud.requests_to("/servers/detail")) <= 3  # at most the page read ahead
    p = Projection()
    catch_up(p, log)
    assert not p.latest().state.open_snapshots and STOPPED in p.latest().stale
    # what was read before the stop is a true observation; nothing unread was deleted
    assert len(p.latest().instances()) == result.counts["instance"] < 20


def test_records_are_appended_in_bounded_batches(tmp_path) -> None:
    sizes: list[int] = []
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    real_append = log.append

    def append(envelopes, *args, **kwargs):
        sizes.append(len(envelopes))
        return real_append(envelopes, *args, **kwargs)

    log.append = append  # type: ignore[method-assign]
    result = Snapshotter(OpenStackReader(FakeCloud([hypervisor(1)], servers(250))), log,
                         page_size=40, batch=50).run_once()
    assert result.ok and max(sizes) <= 50 and sum(sizes) == 250 + 3 + 2  # + started, completed


def test_request_counter_classifies_by_endpoint() -> None:
    c = RequestCounter()
    c.add_endpoint("http://127.0.0.1:5000/identity/v3", "identity")
    c.add_endpoint("http://127.0.0.1:5000/compute/v2.1", "compute")
    c.add_endpoint("http://127.0.0.1:5000/placement", "placement")
    for url in ("http://127.0.0.1:5000/identity/v3/auth/tokens", "http://127.0.0.1:5000/compute/",
                "http://127.0.0.1:5000/compute/v2.1/servers/detail?limit=1000",
                "http://127.0.0.1:5000/placement/resource_providers/x/inventories",
                "http://127.0.0.1:5000/placementx", "http://other/"):
        c.count(url)
    assert c.counts() == {"identity": 1, "compute": 2, "placement": 1, "other": 2}
