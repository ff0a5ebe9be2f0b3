"""The simulated cloud over real HTTP (loopback), read with openstacksdk as a syncer reads
a real cloud: paging, microversions, token expiry and re-authentication, every HTTP
fault, a down cell's minimal records, and the served data equal to the sim's truth."""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml
from keystoneauth1 import exceptions as ksa_exceptions

from eventmodel.sim import Faults, PartialInstance, SimCloud
from eventmodel.sim.http_faults import HttpFault
from eventmodel.sim.server import SimProcess, SimServer
from eventmodel.sim.server_views import POWER_CODES
from eventmodel.sources.openstack import CloudApiError, OpenStackReader

HOSTS, SERVERS = 7, 23


@pytest.fixture
def sim() -> SimCloud:
    s = SimCloud(HOSTS, SERVERS, seed=5)
    s.step(30)  # migrations, resizes, locks, disabled services...
    return s


@pytest.fixture
def srv(sim: SimCloud):
    with SimServer(sim) as server:
        yield server


def connect(srv: SimServer, **extra: Any) -> openstack.connection.Connection:
    return openstack.connect(**srv.auth_args(**extra))


def http(srv: SimServer, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """A plain HTTP request (no SDK): status, headers, decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, status, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, dict(exc.headers)
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(raw) if raw else None


def token(srv: SimServer) -> str:
    c = srv.api.credentials
    status, headers, _ = http(srv, "POST", "/identity/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": c.username, "domain": {"name": c.user_domain}, "password": c.password}}},
        "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain}}}}})
    assert status == 201
    return headers["x-subject-token"]


def routes(srv: SimServer, route: str) -> int:
    return srv.api.stats()["by_route"].get(route, 0)


# ---------------------------------------------------------------------------- paging


def test_servers_are_paged_with_next_links_and_each_listed_once(srv: SimServer, sim: SimCloud) -> None:
    conn = connect(srv)
    listed = [s.id for s in conn.compute.servers(details=True, all_projects=True, limit=5)]
    assert sorted(listed) == sorted(sim.truth().instances)
    assert len(listed) == len(set(listed)) == SERVERS
    # 23 servers in pages of 5: four full pages carry a next link, the fifth (3) none;
    # openstacksdk, given a limit, still asks once more after a page without a link
    assert routes(srv, "GET /compute/v2.1/servers/detail") == math.ceil(SERVERS / 5) + 1
    tok = token(srv)
    status, _, page = http(srv, "GET", "/compute/v2.1/servers/detail?all_tenants=1&limit=5",
                           headers={"X-Auth-Token": tok})
    assert status == 200 and len(page["servers"]) == 5
    (link,) = page["servers_links"]
    assert link["rel"] == "next" and f"marker={page['servers'][-1]['id']}" in link["href"]
    assert "all_tenants=1" in link["href"] and "limit=5" in link["href"]


def test_hypervisors_are_paged_by_uuid_marker(srv: SimServer, sim: SimCloud) -> None:
    conn = connect(srv)
    hvs = list(conn.compute.hypervisors(details=True, limit=3))
    assert [h.name for h in hvs] == [n.name for n in sim.list_nodes()]
    assert routes(srv, "GET /compute/v2.1/os-hypervisors/detail") == math.ceil(HOSTS / 3) + 1  # the SDK's extra ask
    tok = token(srv)
    _, _, page = http(srv, "GET", "/compute/v2.1/os-hypervisors/detail?limit=3",
                      headers={"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.88"})
    assert "marker=" + page["hypervisors"][-1]["id"] in page["hypervisors_links"][0]["href"]
    status, _, body = http(srv, "GET", "/compute/v2.1/os-hypervisors/detail?marker=nope",
                           headers={"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.88"})
    assert status == 400 and "marker" in body["badRequest"]["message"]


# ---------------------------------------------------------------------------- the truth


def test_served_data_equals_the_truth(srv: SimServer, sim: SimCloud) -> None:
    conn = connect(srv)
    truth = sim.truth()
    servers = {s.id: s for s in conn.compute.servers(details=True, all_projects=True)}
    assert set(servers) == set(truth.instances)
    for u, inst in truth.instances.items():
        s = servers[u]
        f = s.flavor
        assert (s.compute_host, s.hypervisor_hostname, s.vm_state, s.task_state, s.power_state) == (
            inst.host, inst.node, inst.vm_state, inst.task_state, POWER_CODES[inst.power_state])
        assert (f.original_name, f.vcpus, f.ram, f.disk, f.ephemeral, f.swap, f.extra_specs) == (
            inst.flavor.name, inst.flavor.vcpus, inst.flavor.memory_mb, inst.flavor.root_gb,
            inst.flavor.ephemeral_gb, inst.flavor.swap_mb, inst.flavor.extra_specs)
        assert (s.project_id, s.user_id, s.name, s.is_locked, s.locked_reason, s.metadata) == (
            inst.project_id, inst.user_id, inst.name, inst.locked, inst.locked_reason, inst.metadata)
        assert s.availability_zone == inst.availability_zone
        assert s.updated_at == _iso(inst.version)
        if inst.created_at is not None:
            assert s.created_at == _iso(inst.created_at)
    services = {s.host: s for s in conn.compute.services(binary="nova-compute")}
    assert set(services) == set(truth.services)
    for host, svc in truth.services.items():
        s = services[host]
        assert (s.status == "disabled", s.disabled_reason, s.is_forced_down, s.id) == (
            svc.disabled, svc.disabled_reason, svc.forced_down, svc.uuid)
        assert s.state == ("down" if svc.forced_down or not svc.up else "up")
        assert s.availability_zone == (svc.availability_zone or "nova")
    hvs = {h.name: h for h in conn.compute.hypervisors(details=True)}
    providers = {rp.name: rp for rp in conn.placement.resource_providers()}
    assert set(hvs) == set(providers) == set(truth.nodes)
    for name, node in truth.nodes.items():
        h, rp = hvs[name], providers[name]
        assert h.id == rp.id == node.uuid and h.service_details["host"] == node.host
        assert h.status == ("disabled" if truth.services[node.host].disabled else "enabled")
        inv = {i.resource_class: i for i in conn.placement.resource_provider_inventories(rp)}
        assert (inv["VCPU"].total, inv["VCPU"].reserved, inv["VCPU"].allocation_ratio) == (
            node.vcpus, node.vcpus_reserved, node.cpu_allocation_ratio)
        assert (inv["MEMORY_MB"].total, inv["MEMORY_MB"].reserved, inv["MEMORY_MB"].allocation_ratio) == (
            node.memory_mb, node.memory_mb_reserved, node.ram_allocation_ratio)
        assert (inv["DISK_GB"].total, inv["DISK_GB"].reserved, inv["DISK_GB"].allocation_ratio) == (
            node.disk_gb, node.disk_gb_reserved, node.disk_allocation_ratio)
        assert all((i.min_unit, i.max_unit, i.step_size) == (1, i.total, 1) for i in inv.values())
    aggregates = {a.uuid: a for a in conn.compute.aggregates()}
    truth_aggregates = getattr(truth, "aggregates", {})
    assert set(aggregates) == set(truth_aggregates)
    for u, agg in truth_aggregates.items():
        a = aggregates[u]
        assert (a.name, a.availability_zone, sorted(a.hosts), a.metadata) == (
            agg.name, agg.availability_zone, sorted(agg.hosts), agg.metadata)
        for host in agg.hosts:
            rp = providers[sim.node_of(host)]
            assert u in rp.fetch_aggregates(conn.placement).aggregates


def _iso(us: int) -> str:
    from eventmodel.sim.notifications import nova_time

    return nova_time(us)


def test_pages_stay_consistent_while_operations_run(srv: SimServer, sim: SimCloud) -> None:
    """Operations on another thread while the SDK pages: every server that existed
    throughout the listing is listed exactly once, and no request fails."""
    before = set(sim.truth().instances)
    stop = threading.Event()

    def operate() -> None:
        while not stop.is_set():
            with srv.lock:
                sim.step(1)

    worker = threading.Thread(target=operate)
    worker.start()
    try:
        conn = connect(srv)
        listed = [s.id for s in conn.compute.servers(details=True, all_projects=True, limit=3)]
    finally:
        stop.set()
        worker.join()
    throughout = before & set(sim.truth().instances)
    assert len(listed) == len(set(listed))
    assert throughout <= set(listed)
    assert srv.api.stats()["status"].get("500", 0) == 0


# ---------------------------------------------------------------------------- microversions


def test_microversion_negotiation(srv: SimServer) -> None:
    conn = connect(srv)
    resp = conn.compute.get("/servers/detail?all_tenants=1&limit=1", microversion="2.46")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.46"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.46"
    assert set(resp.json()["servers"][0]["flavor"]) == {"id", "links"}  # embedded only from 2.47
    resp = conn.compute.get("/servers/detail?all_tenants=1&limit=1", microversion="2.100")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.100"
    server = resp.json()["servers"][0]
    assert {"original_name", "vcpus", "ram", "disk", "ephemeral", "swap", "extra_specs"} == set(server["flavor"])
    assert {"locked_reason", "pinned_availability_zone", "scheduler_hints", "host_status"} <= set(server)
    assert conn.compute.get("/servers", microversion="2.101").status_code == 406
    tok = token(srv)
    # the legacy header, no header (the minimum), latest, a malformed one
    _, h, _ = http(srv, "GET", "/compute/v2.1/os-services", headers={
        "X-Auth-Token": tok, "X-OpenStack-Nova-API-Version": "2.53"})
    assert h["x-openstack-nova-api-version"] == "2.53" and h["openstack-api-version"] == "compute 2.53"
    _, h, body = http(srv, "GET", "/compute/v2.1/os-services", headers={"X-Auth-Token": tok})
    assert h["openstack-api-version"] == "compute 2.1" and isinstance(body["services"][0]["id"], int)
    _, h, _ = http(srv, "GET", "/compute/v2.1/os-services",
                   headers={"X-Auth-Token": tok, "OpenStack-API-Version": "compute latest"})
    assert h["openstack-api-version"] == "compute 2.100"
    status, _, _ = http(srv, "GET", "/compute/v2.1/os-services",
                        headers={"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.x"})
    assert status == 400
    # Placement: 1.0 without a header, aggregates from 1.1, 406 above 1.39
    status, h, _ = http(srv, "GET", "/placement/resource_providers", headers={"X-Auth-Token": tok})
    assert status == 200 and h["openstack-api-version"] == "placement 1.0"
    status, h, body = http(srv, "GET", "/placement/resource_providers",
                           headers={"X-Auth-Token": tok, "OpenStack-API-Version": "placement 1.40"})
    assert status == 406 and body["errors"][0]["status"] == 406
    rp = conn.placement.resource_providers().__next__()
    status, h, body = http(srv, "GET", f"/placement/resource_providers/{rp.id}/aggregates",
                           headers={"X-Auth-Token": tok, "OpenStack-API-Version": "placement 1.19"})
    assert status == 200 and "resource_provider_generation" in body
    assert h["openstack-api-version"] == "placement 1.19"
    # version documents
    _, _, doc = http(srv, "GET", "/compute/")
    (v,) = doc["versions"]
    assert (v["id"], v["min_version"], v["version"]) == ("v2.1", "2.1", "2.100")
    _, _, doc = http(srv, "GET", "/placement/")
    assert (doc["versions"][0]["min_version"], doc["versions"][0]["max_version"]) == ("1.0", "1.39")


# ---------------------------------------------------------------------------- tokens


def test_an_expired_token_gets_401_and_keystoneauth_reauthenticates(sim: SimCloud) -> None:
    # the server's clock is ours to move; the token says it lives 600 s (keystoneauth
    # renews a token on its own only in its last 120 s)
    now = [1_000.0]
    with SimServer(sim, token_ttl_s=600, clock=lambda: now[0]) as srv:
        conn = connect(srv)
        assert len(list(conn.compute.services())) >= HOSTS
        assert routes(srv, "POST /identity/v3/auth/tokens") == 1
        now[0] += 601  # the token has expired on the server's clock
        assert len(list(conn.compute.services())) >= HOSTS
        assert routes(srv, "POST /identity/v3/auth/tokens") == 2
        assert srv.api.stats()["status"]["401"] == 1
        # a token the server expired (revocation) behaves the same
        assert srv.api.expire_tokens() == 1
        assert len(list(conn.compute.hypervisors())) == HOSTS
        assert routes(srv, "POST /identity/v3/auth/tokens") == 3
        tok = token(srv)
        now[0] += 601
        status, h, body = http(srv, "GET", "/compute/v2.1/os-services", headers={"X-Auth-Token": tok})
        assert status == 401 and h["www-authenticate"].startswith("Keystone uri=")
        assert body["error"]["code"] == 401


def test_wrong_password_is_refused(srv: SimServer) -> None:
    status, _, body = http(srv, "POST", "/identity/v3/auth/tokens", {"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"},
                                                       "password": "wrong"}}}}})
    assert status == 401 and body["error"]["code"] == 401
    status, _, _ = http(srv, "POST", "/identity/v3/auth/tokens", {"not": "auth"})
    assert status == 400
    assert http(srv, "GET", "/compute/v2.1/servers/detail")[0] == 401


# ---------------------------------------------------------------------------- faults


def test_error_fault_in_the_middle_of_a_listing(srv: SimServer) -> None:
    conn = connect(srv)
    srv.api.arm(HttpFault("error", service="compute", path="servers/detail", after=2))
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.compute.servers(details=True, all_projects=True, limit=5))
    assert err.value.status_code == 500
    assert routes(srv, "GET /compute/v2.1/servers/detail") == 3
    # one-shot: the next listing is whole
    assert len(list(conn.compute.servers(details=True, all_projects=True, limit=5))) == SERVERS
    assert [f["kind"] for f in srv.api.faults.fired()] == ["error"]


def test_timeout_fault_the_client_gives_up(srv: SimServer) -> None:
    conn = connect(srv, api_timeout=0.5)
    srv.api.arm(HttpFault("timeout", service="placement", path="inventories", after=1, stall_s=1.0))
    rps = list(conn.placement.resource_providers())
    list(conn.placement.resource_provider_inventories(rps[0]))
    with pytest.raises(ksa_exceptions.ConnectTimeout, match="timed out"):
        list(conn.placement.resource_provider_inventories(rps[1]))
    assert len(list(conn.placement.resource_provider_inventories(rps[1]))) == 3


def test_reset_fault_closes_the_connection_without_an_answer(srv: SimServer) -> None:
    conn = connect(srv)
    srv.api.arm(HttpFault("reset", service="compute", path="os-hypervisors"))
    with pytest.raises(ksa_exceptions.ConnectFailure, match="Connection reset by peer"):
        list(conn.compute.hypervisors(details=True))
    assert len(list(conn.compute.hypervisors(details=True))) == HOSTS


def test_expired_token_fault_reauthenticates_once_then_fails_when_it_persists(srv: SimServer) -> None:
    conn = connect(srv)
    list(conn.compute.services())
    srv.api.arm(HttpFault("expired_token", service="compute", path="servers/detail"))
    assert len(list(conn.compute.servers(details=True, all_projects=True))) == SERVERS
    assert routes(srv, "POST /identity/v3/auth/tokens") == 2 and srv.api.stats()["status"]["401"] == 1
    # the new token expires too: keystoneauth retries once only, the client sees the 401
    srv.api.arm(HttpFault("expired_token", service="compute", path="servers/detail", times=2))
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.compute.servers(details=True, all_projects=True))
    assert err.value.status_code == 401


def test_faults_armed_over_http_and_stats(srv: SimServer) -> None:
    status, _, body = http(srv, "POST", "/_sim/faults", {"kind": "error", "service": "placement",
                                                        "path": "resource_providers", "status": 503})
    assert status == 200 and body["armed"][0]["status"] == 503
    status, _, body = http(srv, "POST", "/_sim/faults", {"kind": "explode"})
    assert status == 400 and "explode" in body["error"]
    conn = connect(srv)
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.placement.resource_providers())
    assert err.value.status_code == 503
    _, _, stats = http(srv, "GET", "/_sim/stats")
    assert stats["by_route"]["GET /placement/resource_providers"] == 1 and stats["faults_fired"] == 1
    assert stats["placement"] == 2 and stats["identity"] == 2  # + version discovery, token
    assert stats["total"] == stats["identity"] + stats["compute"] + stats["placement"]
    assert HttpFault.parse("reset:service=compute,path=servers/detail,after=2") == HttpFault(
        "reset", service="compute", path="servers/detail", after=2)
    with pytest.raises(ValueError, match="unknown fault kind"):
        HttpFault.parse("boom")


# ---------------------------------------------------------------------------- down cell


def test_a_down_cells_servers_are_minimal_records() -> None:
    sim = SimCloud(HOSTS, SERVERS, seed=5, faults=Faults(down_cell=1.0, cells=2))
    with SimServer(sim) as srv:
        conn = connect(srv)
        servers = list(conn.compute.servers(details=True, all_projects=True, limit=10))
        minimal = {s.id for s in servers if s.status == "UNKNOWN"}
        assert minimal and minimal == sim.minimal_last_listing
        assert len(servers) == SERVERS
        tok = token(srv)
        _, _, body = http(srv, "GET", "/compute/v2.1/servers/detail?all_tenants=1", headers={
            "X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.69"})
        for rec in body["servers"]:
            if rec["id"] in sim.minimal_last_listing:
                assert set(rec) == {"id", "status", "tenant_id", "links", "created"}
                assert rec["tenant_id"] == sim.instance(rec["id"]).project_id
        # before 2.69 Nova leaves them out
        _, _, body = http(srv, "GET", "/compute/v2.1/servers/detail?all_tenants=1", headers={
            "X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.68"})
        assert {r["id"] for r in body["servers"]}.isdisjoint(sim.minimal_last_listing)
        assert len(body["servers"]) == SERVERS - len(sim.minimal_last_listing)


# ---------------------------------------------------------------------------- one server by id


def reader(srv: SimServer) -> OpenStackReader:
    return OpenStackReader.connect(None, timeout=10, **srv.auth_args())


def test_show_server_through_the_reader_equals_the_listing(srv: SimServer, sim: SimCloud) -> None:
    r = reader(srv)
    listed = {i.uuid: i for i in r.list_servers(limit=1000)}
    assert set(listed) == set(sim.truth().instances)
    srv.api.reset_stats()
    for u in sorted(listed)[:5]:
        got = r.get_server(u)
        assert got == listed[u]
        inst = sim.instance(u)
        assert (got.host, got.node, got.vm_state, got.task_state, got.flavor, got.metadata, got.locked) == (
            inst.host, inst.node, inst.vm_state, inst.task_state, inst.flavor, inst.metadata, inst.locked)
    # counted as a route of its own, at the listing's microversion
    assert routes(srv, "GET /compute/v2.1/servers/{uuid}") == 5
    # a change shows at once, as Nova's show server would
    u = sorted(listed)[0]
    with srv.lock:
        sim.lock(u, "audit")
    got = r.get_server(u)
    assert got.locked and got.locked_reason == "audit"
    # the same JSON as a record of servers/detail, under "server"
    tok = token(srv)
    hdrs = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.100"}
    status, headers, body = http(srv, "GET", f"/compute/v2.1/servers/{u}", headers=hdrs)
    assert status == 200 and headers["openstack-api-version"] == "compute 2.100"
    _, _, page = http(srv, "GET", "/compute/v2.1/servers/detail?all_tenants=1", headers=hdrs)
    assert body["server"] == next(rec for rec in page["servers"] if rec["id"] == u)
    # servers/detail is still its own route, not a server named "detail"
    assert routes(srv, "GET /compute/v2.1/servers/detail") == 1


def test_show_server_of_a_missing_server_is_404_and_none(srv: SimServer, sim: SimCloud) -> None:
    r = reader(srv)
    u = sorted(sim.truth().instances)[2]
    assert r.get_server(u) is not None
    with srv.lock:
        sim.delete(u)
    assert r.get_server(u) is None
    ghost = "00000000-0000-4000-8000-000000000000"
    assert r.get_server(ghost) is None
    status, _, body = http(srv, "GET", f"/compute/v2.1/servers/{ghost}", headers={"X-Auth-Token": token(srv)})
    assert status == 404
    assert body == {"itemNotFound": {"code": 404, "message": f"Instance {ghost} could not be found."}}
    assert srv.api.stats()["status"]["404"] == 3
    # any other error status is an error
    srv.api.arm(HttpFault("error", service="compute", path="servers/", status=503))
    with pytest.raises(CloudApiError, match="503"):
        r.get_server(sorted(sim.truth().instances)[0])


def test_show_server_of_a_down_cell_is_minimal_from_2_69_and_fails_before() -> None:
    sim = SimCloud(HOSTS, SERVERS, seed=5, faults=Faults(down_cell=1.0, cells=2))
    with SimServer(sim) as srv:
        r = reader(srv)
        listed = r.list_servers(limit=1000)  # draws the down cell
        minimal = sim.minimal_last_listing
        assert minimal and minimal == {i.uuid for i in listed if isinstance(i, PartialInstance)}
        u = sorted(minimal)[0]
        got = r.get_server(u)
        assert isinstance(got, PartialInstance)
        assert (got.uuid, got.status, got.project_id) == (u, "UNKNOWN", sim.instance(u).project_id)
        whole = next(i.uuid for i in listed if i.uuid not in minimal)
        assert r.get_server(whole) == next(i for i in listed if i.uuid == whole)
        tok = token(srv)
        status, _, body = http(srv, "GET", f"/compute/v2.1/servers/{u}", headers={
            "X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.69"})
        assert status == 200 and set(body["server"]) == {"id", "status", "tenant_id", "links", "created"}
        status, _, body = http(srv, "GET", f"/compute/v2.1/servers/{u}", headers={
            "X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.68"})
        assert status == 500 and "computeFault" in body


# ---------------------------------------------------------------------------- clouds.yaml and the command


def test_clouds_yaml_entry_connects_and_keeps_other_clouds(srv: SimServer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "http://elsewhere"}}}}))
    srv.write_clouds_yaml(path, cloud="sim")
    data = yaml.safe_load(path.read_text())
    assert set(data["clouds"]) == {"other", "sim"}
    assert data["clouds"]["sim"]["identity_api_version"] == 3
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    conn = openstack.connect(cloud="sim")
    assert len(list(conn.compute.servers(all_projects=True))) == SERVERS


def test_sim_serve_command_in_its_own_process() -> None:
    """``eventmodel sim serve`` as a user runs it (through SimProcess, as the benchmarks
    do), controlled over HTTP: stats and faults."""
    with SimProcess(3, 9, seed=2, args=("--fault", "error:service=compute,path=os-services,status=503")) as proc:
        conn = openstack.connect(**proc.auth_args())
        assert len(list(conn.compute.servers(all_projects=True))) == 9
        with pytest.raises(openstack.exceptions.HttpException) as err:
            list(conn.compute.services())
        assert err.value.status_code == 503
        proc.control.arm(HttpFault("reset", service="placement", path="resource_providers"))
        with pytest.raises(ksa_exceptions.ConnectFailure):
            list(conn.placement.resource_providers())
        stats = proc.control.stats()
        assert stats["faults_fired"] == 2 and stats["by_route"]["GET /compute/v2.1/os-services"] == 1
        proc.stop()
        out = proc.output()
    assert proc.url in out and "served" in out
