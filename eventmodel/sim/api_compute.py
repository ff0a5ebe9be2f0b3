"""Nova's API (compute 2.1–2.100) of the simulated cloud: version documents, servers
(paged, with the sim's listing faults; one by id), hypervisors (paged from 2.33),
services and aggregates, in Nova's shapes per microversion (server records:
:mod:`server_views`)."""

from __future__ import annotations

import hashlib
import threading
import uuid as _uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from eventmodel.events import ComputeNode, ComputeService, Instance, PartialInstance
from eventmodel.sim.api_common import (
    COMPUTE_MAX,
    COMPUTE_MIN,
    ENCODE,
    MAX_LIMIT,
    SimApiError,
    base_url,
    error_body,
    fmt,
    json_response,
    limit_param,
    list_query,
    next_href,
    page_body,
)
from eventmodel.sim.api_identity import Identity
from eventmodel.sim.api_view import SimView
from eventmodel.sim.server_views import ServerViews, iso_us, service_state

if TYPE_CHECKING:
    from eventmodel.sim.cloud import SimCloud


class Compute:
    """The simulated Nova's routes; reads hold ``lock``."""

    def __init__(self, view: SimView, lock: threading.RLock, identity: Identity) -> None:
        self.view = view
        self.lock = lock
        self.identity = identity
        self.sim = view.sim
        self._host_ids: dict[tuple[str, str], str] = {}  # Nova's hostId per (project, host)

    def _compute_version(self, base: str) -> dict[str, Any]:
        return {
            "id": "v2.1", "status": "CURRENT", "version": fmt(COMPUTE_MAX), "min_version": fmt(COMPUTE_MIN),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"},
                      {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }  # fmt: skip

    async def compute_versions(self, request: Request) -> Response:
        return json_response({"versions": [self._compute_version(base_url(request.scope))]})

    async def compute_v21(self, request: Request) -> Response:
        return json_response({"version": self._compute_version(base_url(request.scope))})

    async def servers(self, request: Request) -> Response:
        return self._servers(request, detail=False)

    async def servers_detail(self, request: Request) -> Response:
        return self._servers(request, detail=True)

    def _servers(self, request: Request, *, detail: bool) -> Response:
        try:
            q = list_query(request)
            project = q.params.get("project_id") or q.params.get("tenant_id")
            if not q.all_tenants:
                project = self._token_project(request)
            with self.lock:
                page = self._server_page(q.limit, q.marker, project if (project or not q.all_tenants) else None,
                                         q.params.get("host"))
                views = ServerViews(q.base, q.mv, self.view.services_by_host(), self.view.extras, self.view.created,
                                    self._host_ids)
                render = views.detail if detail else views.summary
                records = [r for r in map(render, page) if r is not None]
                payload = ENCODE(page_body("servers", records, page, q, request))  # under the lock: shared objects
            return Response(payload, media_type="application/json")
        except SimApiError as exc:
            return json_response(error_body("compute", exc.status, exc.message), exc.status)

    async def server(self, request: Request) -> Response:
        """``GET /servers/{server_id}``: Nova's show server, the record of ``servers/detail``
        at the request's microversion under ``server``; 404 ``itemNotFound`` when there is
        no such server. A down cell's server is a minimal record from 2.69; before, Nova
        fails the request (500), as its compute API raises when the cell does not answer.
        The sim's one user is an admin: any project's server is shown."""
        u = request.path_params["server_id"]
        mv: tuple[int, int] = request.state.mv
        base = base_url(request.scope)
        with self.lock:
            s = self.view.get_server(u)
            if s is None:
                return json_response(error_body("compute", 404, f"Instance {u} could not be found."), 404)
            views = ServerViews(base, mv, self.view.services_by_host(), self.view.extras, self.view.created,
                                self._host_ids)
            record = views.detail(s)
            if record is None:
                return json_response(error_body("compute", 500, f"Cell of instance {u} is not responding or "
                                                "returned an exception, hence instance info is not available."), 500)
            payload = ENCODE({"server": record})  # under the lock: the record shares the truth's objects
        return Response(payload, media_type="application/json")

    def _token_project(self, request: Request) -> str:
        t = self.identity.token(request.headers.get("x-auth-token"))
        return (t.project_id if t is not None else None) or ""

    def _server_page(self, limit: int, marker: str | None, project: str | None,
                     host: str | None) -> list[Instance | PartialInstance]:
        if project is None and host is None:
            return self.view.list_servers(limit, marker)
        out: list[Instance | PartialInstance] = []
        chunk = max(limit, MAX_LIMIT)
        while len(out) < limit:
            got = self.view.list_servers(chunk, marker)
            for s in got:
                if project is not None and s.project_id != project:
                    continue
                if host is not None and getattr(s, "host", None) != host:
                    continue
                out.append(s)
                if len(out) == limit:
                    break
            if len(got) < chunk:
                break
            marker = got[-1].uuid
        return out

    async def hypervisors(self, request: Request) -> Response:
        return self._hypervisors(request, detail=False)

    async def hypervisors_detail(self, request: Request) -> Response:
        return self._hypervisors(request, detail=True)

    def _hypervisors(self, request: Request, *, detail: bool) -> Response:
        try:
            params = dict(request.query_params)
            mv: tuple[int, int] = request.state.mv
            uuids = mv >= (2, 53)
            paged = mv >= (2, 33)
            limit = limit_param(params) if paged else None
            marker = params.get("marker") if paged else None
            pattern = params.get("hypervisor_hostname_pattern")
            base = base_url(request.scope)
            with self.lock:
                nodes = self.view.list_nodes()
                services = self.view.services_by_host()
                usage = {n.host: self.view.usage(n.host) for n in nodes if n.host} if detail and mv < (2, 88) else {}
            indexed = list(enumerate(nodes, start=1))
            if pattern:
                indexed = [(i, n) for i, n in indexed if pattern in n.name]
            if marker:
                pos = next((k for k, (i, n) in enumerate(indexed) if (n.uuid if uuids else str(i)) == marker), None)
                if pos is None:
                    raise SimApiError(400, f"marker [{marker}] not found")
                indexed = indexed[pos + 1:]
            page = indexed[:limit] if limit is not None else indexed
            views = [self._hypervisor_view(i, n, mv, detail, services.get(n.host or ""), usage) for i, n in page]
            body: dict[str, Any] = {"hypervisors": views}
            if limit is not None and len(page) == limit and page:
                last_i, last = page[-1]
                body["hypervisors_links"] = [{"rel": "next", "href": next_href(
                    base + request.url.path, request.url.query, last.uuid if uuids else str(last_i))}]
            return json_response(body)
        except SimApiError as exc:
            return json_response(error_body("compute", exc.status, exc.message), exc.status)

    def _hypervisor_view(self, i: int, n: ComputeNode, mv: tuple[int, int], detail: bool,
                         svc: ComputeService | None, usage: Mapping[str, tuple[int, int, int]]) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": n.uuid if mv >= (2, 53) else i,
            "hypervisor_hostname": n.name,
            "state": service_state(svc) if svc is not None else n.state,
            "status": "disabled" if (svc.disabled if svc is not None else n.disabled) else "enabled",
        }
        if not detail:
            return rec
        rec.update({
            "hypervisor_type": n.hypervisor_type or "QEMU",
            "hypervisor_version": 8002000,
            "host_ip": _host_ip(n.name),
            "service": {"host": n.host, "id": (svc.uuid if svc is not None and mv >= (2, 53) else i),
                        "disabled_reason": svc.disabled_reason if svc is not None else n.disabled_reason},
        })  # fmt: skip
        if mv >= (2, 88):
            rec["uptime"] = None
        else:
            ucpu, uram, udisk = usage.get(n.host or "", (0, 0, 0))
            rec.update({
                "vcpus": n.vcpus, "memory_mb": n.memory_mb, "local_gb": n.disk_gb,
                "vcpus_used": ucpu, "memory_mb_used": uram + n.memory_mb_reserved, "local_gb_used": udisk,
                "free_ram_mb": n.memory_mb - uram - n.memory_mb_reserved, "free_disk_gb": n.disk_gb - udisk,
                "current_workload": 0, "running_vms": None, "disk_available_least": n.disk_gb - udisk,
                "cpu_info": "{}" if mv < (2, 28) else {},
            })  # fmt: skip
        return rec

    async def services(self, request: Request) -> Response:
        params = dict(request.query_params)
        mv: tuple[int, int] = request.state.mv
        with self.lock:
            services = self.view.list_services()
        recs = [self._service_view(i, s, mv) for i, s in enumerate(services, start=1)]
        recs += [self._controller_service(len(recs) + k, host, binary, mv)
                 for k, (host, binary) in enumerate(_controller_services(self.sim), start=1)]
        binary, host = params.get("binary"), params.get("host")
        recs = [r for r in recs if (binary is None or r["binary"] == binary) and (host is None or r["host"] == host)]
        return json_response({"services": recs})

    def _service_view(self, i: int, s: ComputeService, mv: tuple[int, int]) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": s.uuid if mv >= (2, 53) and s.uuid else i,
            "binary": s.binary,
            "host": s.host,
            "zone": s.availability_zone or "nova",
            "status": "disabled" if s.disabled else "enabled",
            "state": service_state(s),
            "updated_at": iso_us(s.version),
            "disabled_reason": s.disabled_reason,
        }
        if mv >= (2, 11):
            rec["forced_down"] = s.forced_down
        return rec

    def _controller_service(self, i: int, host: str, binary: str, mv: tuple[int, int]) -> dict[str, Any]:
        start = self.sim.start_time_us
        rec: dict[str, Any] = {
            "id": str(_uuid.uuid5(_uuid.NAMESPACE_URL, f"sim-service:{host}:{binary}")) if mv >= (2, 53) else i,
            "binary": binary, "host": host, "zone": "internal", "status": "enabled", "state": "up",
            "updated_at": iso_us(start), "disabled_reason": None,
        }  # fmt: skip
        if mv >= (2, 11):
            rec["forced_down"] = False
        return rec

    async def aggregates(self, request: Request) -> Response:
        mv: tuple[int, int] = request.state.mv
        with self.lock:
            aggs = self.view.list_aggregates()
        start = iso_us(self.sim.start_time_us)  # Nova's aggregates have times; the model's do not
        out = []
        for a in aggs:
            rec = {
                "id": a.id, "name": a.name, "availability_zone": a.availability_zone, "hosts": list(a.hosts),
                "metadata": dict(a.metadata), "deleted": False, "deleted_at": None,
                "created_at": start, "updated_at": None,
            }  # fmt: skip
            if mv >= (2, 41):
                rec["uuid"] = a.uuid
            out.append(rec)
        return json_response({"aggregates": out})


def _host_ip(name: str) -> str:
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)  # an address, not security
    return f"192.168.{(h >> 8) & 255}.{(h & 253) + 2}"


def _controller_services(sim: SimCloud) -> Iterable[tuple[str, str]]:
    """The control plane's services, listed beside the compute services as Nova does."""
    for host in sim.controllers:
        for binary in ("nova-scheduler", "nova-conductor"):
            yield host, binary
