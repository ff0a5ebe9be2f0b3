"""The simulated cloud's HTTP parts that need no server: microversion negotiation, the
fault plan's counting, fault specs, next links, the server records' shapes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventmodel.events import Flavor, Instance, PartialInstance
from eventmodel.sim.api_common import (
    COMPUTE_MAX,
    COMPUTE_MIN,
    PLACEMENT_MAX,
    PLACEMENT_MIN,
    SimApiError,
    negotiate,
    next_href,
)
from eventmodel.sim.http_faults import FAULT_KINDS, FaultPlan, HttpFault
from eventmodel.sim.server_views import ServerViews, server_status

versions = st.tuples(st.integers(0, 4), st.integers(0, 150))


@given(service=st.sampled_from(["compute", "placement"]), v=versions, legacy=st.booleans())
def test_a_version_is_granted_inside_the_range_and_406_outside(service: str, v: tuple[int, int],
                                                                 legacy: bool) -> None:
    lo, hi = (COMPUTE_MIN, COMPUTE_MAX) if service == "compute" else (PLACEMENT_MIN, PLACEMENT_MAX)
    text = f"{v[0]}.{v[1]}"
    headers = ({"x-openstack-nova-api-version": text} if legacy and service == "compute"
               else {"openstack-api-version": f"{service} {text}"})
    if v[0] == 0:
        with pytest.raises(SimApiError) as err:
            negotiate(service, headers)
        assert err.value.status == 400  # "0.x" is not a version
    elif lo <= v <= hi:
        assert negotiate(service, headers) == v
    else:
        with pytest.raises(SimApiError) as err:
            negotiate(service, headers)
        assert err.value.status == 406 and f"{hi[0]}.{hi[1]}" in err.value.message


def test_negotiation_defaults_latest_and_other_services() -> None:
    assert negotiate("compute", {}) == COMPUTE_MIN
    assert negotiate("placement", {}) == PLACEMENT_MIN
    assert negotiate("compute", {"openstack-api-version": "compute latest"}) == COMPUTE_MAX
    # another service's version in the same header is not ours
    assert negotiate("compute", {"openstack-api-version": "placement 1.30, compute 2.60"}) == (2, 60)
    assert negotiate("placement", {"openstack-api-version": "compute 2.60"}) == PLACEMENT_MIN
    for bad in ("2", "2.x", "two.one", "2.01"):
        with pytest.raises(SimApiError) as err:
            negotiate("compute", {"openstack-api-version": f"compute {bad}"})
        assert err.value.status == 400


@given(after=st.integers(0, 5), times=st.integers(1, 4), n=st.integers(0, 15), noise=st.integers(0, 5))
def test_a_fault_fires_on_exactly_the_requests_after_after_for_times(after: int, times: int, n: int,
                                                                     noise: int) -> None:
    plan = FaultPlan()
    plan.arm(HttpFault("error", service="compute", path="servers/detail", after=after, times=times))
    hits = []
    for i in range(n):
        for _ in range(noise):  # other routes and services do not count
            assert plan.take("placement", "/placement/resource_providers", True) is None
            assert plan.take("compute", "/compute/v2.1/os-services", True) is None
        hits.append(plan.take("compute", "/compute/v2.1/servers/detail", True) is not None)
    assert [i for i, h in enumerate(hits) if h] == list(range(after, min(n, after + times)))
    assert len(plan.fired()) == sum(hits)
    assert (plan.armed() == []) == (n >= after + times)


def test_an_expired_token_fault_needs_a_token() -> None:
    plan = FaultPlan()
    plan.arm(HttpFault("expired_token"))
    assert plan.take("identity", "/identity/v3/auth/tokens", False) is None
    assert plan.take("compute", "/compute/v2.1/servers/detail", True) is not None


@given(kind=st.sampled_from(FAULT_KINDS), service=st.sampled_from([None, "identity", "compute", "placement"]),
       path=st.one_of(st.none(), st.from_regex(r"[a-z/_-]{1,20}", fullmatch=True)),
       after=st.integers(0, 100), times=st.integers(1, 100), status=st.integers(400, 599))
def test_fault_specs_round_trip(kind: str, service: str | None, path: str | None, after: int, times: int,
                                status: int) -> None:
    f = HttpFault(kind, service=service, path=path, after=after, times=times, status=status)
    assert HttpFault.from_dict(msgspec.json.decode(msgspec.json.encode(f.to_dict()))) == f
    spec = ",".join(f"{k}={v}" for k, v in (("service", service), ("path", path), ("after", after),
                                             ("times", times), ("status", status)) if v is not None)
    assert HttpFault.parse(f"{kind}:{spec}") == f


@pytest.mark.parametrize("spec", ["boom", "error:after=-1", "error:times=0", "error:status=200",
                                  "error:service=glance", "error:after", "error:color=red"])
def test_bad_fault_specs_are_refused_with_the_reason(spec: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        HttpFault.parse(spec)


def test_next_link_keeps_the_query_and_replaces_the_marker() -> None:
    href = next_href("http://h/compute/v2.1/servers/detail", "all_tenants=1&limit=5&marker=old", "new")
    assert href == "http://h/compute/v2.1/servers/detail?all_tenants=1&limit=5&marker=new"


def _instance(**kw: object) -> Instance:
    base = {"uuid": "u-1", "version": 1_700_000_000_000_000, "host": "c1", "node": "c1.example.org", "vm_state": "active",
                "flavor": Flavor("m1.small", 1, 2048, 20, extra_specs={"hw:cpu_policy": "dedicated"}),
                "power_state": "running", "project_id": "p", "user_id": "u", "name": "web-1", "locked": True,
                "locked_reason": "legal hold", "availability_zone": "az1", "metadata": {"role": "web"},
                "created_at": 1_600_000_000_000_000}
    base.update(kw)
    return Instance(**base)  # type: ignore[arg-type]


def _render(mv: tuple[int, int], s: Instance | PartialInstance) -> dict | None:
    views = ServerViews("http://h", mv, {}, lambda u: None, lambda u: 1_600_000_000_000_000)
    rec = views.detail(s)
    return None if rec is None else msgspec.json.decode(msgspec.json.encode(rec))


def test_server_records_follow_the_microversion() -> None:
    new = _render((2, 100), _instance())
    assert new["flavor"] == {"vcpus": 1, "ram": 2048, "disk": 20, "ephemeral": 0, "swap": 0,
                             "original_name": "m1.small", "extra_specs": {"hw:cpu_policy": "dedicated"}}
    assert (new["locked"], new["locked_reason"], new["OS-EXT-STS:power_state"]) == (True, "legal hold", 1)
    assert (new["created"], new["updated"], new["metadata"]) == ("2020-09-13T12:26:40Z", "2023-11-14T22:13:20Z",
                                                                  {"role": "web"})
    old = _render((2, 1), _instance())
    assert set(old["flavor"]) == {"id", "links"}
    assert not {"locked", "locked_reason", "host_status", "tags", "scheduler_hints", "OS-EXT-SRV-ATTR:hostname"} & set(old)
    mid = _render((2, 72), _instance())
    assert "locked" in mid and "locked_reason" not in mid
    minimal = PartialInstance("u-2", "UNKNOWN", "p")
    assert _render((2, 69), minimal) == {"id": "u-2", "status": "UNKNOWN", "tenant_id": "p",
                                         "created": "2020-09-13T12:26:40Z", "links": [
                                             {"rel": "self", "href": "http://h/compute/v2.1/servers/u-2"},
                                             {"rel": "bookmark", "href": "http://h/compute/servers/u-2"}]}
    assert _render((2, 68), minimal) is None


@pytest.mark.parametrize(("vm", "task", "status"), [
    ("active", None, "ACTIVE"), ("active", "migrating", "MIGRATING"), ("active", "resize_prep", "RESIZE"),
    ("stopped", None, "SHUTOFF"), ("resized", None, "VERIFY_RESIZE"), ("resized", "resize_reverting",
                                                                       "REVERT_RESIZE"),
    ("shelved_offloaded", None, "SHELVED_OFFLOADED"), ("paused", "powering-off", "PAUSED"),
])
def test_status_from_vm_and_task_state(vm: str, task: str | None, status: str) -> None:
    assert server_status(vm, task) == status


def test_bad_requests_get_the_services_error_shapes_and_the_app_keeps_serving() -> None:
    """The app in-process (no socket): unknown routes, bad methods, bad parameters and a
    body that is not JSON each get a clear error; nothing breaks the next request."""
    import asyncio

    import httpx

    from eventmodel.sim import SimCloud
    from eventmodel.sim.api import SimApi

    api = SimApi(SimCloud(2, 3, seed=1))
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "sim-password"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}

    async def run() -> list[tuple[int, dict]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://sim") as c:
            bad_body = await c.post("/identity/v3/auth/tokens", content=b"{not json")
            h = {"X-Auth-Token": (await c.post("/identity/v3/auth/tokens", json=auth)).headers["x-subject-token"]}
            out = [(bad_body.status_code, bad_body.json())]
            for method, path in [("GET", "/compute/v2.1/flavors"), ("GET", "/placement/traits"),
                                 ("GET", "/compute/v2.1/servers/detail?limit=abc"),
                                 ("GET", "/compute/v2.1/servers/detail?all_tenants=maybe"),
                                 ("GET", "/placement/resource_providers/nope/inventories"),
                                 ("DELETE", "/compute/v2.1/servers"),
                                 ("GET", "/compute/v2.1/servers/detail?all_tenants=1")]:
                r = await c.request(method, path, headers=h)
                out.append((r.status_code, r.json()))
            return out

    results = asyncio.run(run())
    assert [status for status, _ in results] == [400, 404, 404, 400, 400, 404, 405, 200]
    assert "auth.identity.password.user" in results[0][1]["error"]["message"]
    assert set(results[1][1]) == {"itemNotFound"} and results[2][1]["errors"][0]["status"] == 404
    assert "limit" in results[3][1]["badRequest"]["message"]
    assert "nope" in results[5][1]["errors"][0]["detail"]
    assert len(results[7][1]["servers"]) == 3
