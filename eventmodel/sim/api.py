"""The simulated cloud over HTTP: Keystone v3, Nova (compute 2.1–2.100) and Placement
(1.0–1.39) as one ASGI app (Starlette), served from a :class:`~eventmodel.sim.SimCloud`'s
ground truth, in the shapes openstacksdk reads from the real services.

Layout of the URL space (one host and port):

- ``/identity`` (and ``/`` and ``/v3``): version documents, ``POST /v3/auth/tokens``
  (password, project scope by name or id, domain by name or id); tokens expire after
  ``token_ttl_s``; an unknown or expired token gets 401, so keystoneauth
  re-authenticates;
- ``/compute`` and ``/compute/v2.1``: version documents, then ``servers`` and
  ``servers/detail`` (``all_tenants``, ``limit``/``marker``, ``host``, ``project_id``;
  ``servers_links`` when a page is full), ``servers/{id}`` (show server; 404
  ``itemNotFound`` when there is none), ``os-hypervisors`` and
  ``os-hypervisors/detail`` (paged from 2.33), ``os-services``, ``os-aggregates``;
  microversion from ``OpenStack-API-Version: compute X`` or
  ``X-OpenStack-Nova-API-Version``, echoed in both; 406 out of range;
- ``/placement``: version document, ``resource_providers`` (and one by uuid, its
  ``inventories``, ``usages``, ``aggregates``), microversion from
  ``OpenStack-API-Version: placement X``;
- ``/volume`` and ``/volume/v3`` (a cloud with volumes; see
  :mod:`~eventmodel.sim.api_block_storage`): Cinder's version documents, ``os-services``,
  ``types``, ``scheduler-stats/get_pools``, ``volumes[/detail]`` (paged), ``volumes/{id}``,
  ``os-availability-zone``; microversion from ``OpenStack-API-Version: volume X``;
- ``/_sim``: control, no auth: ``GET /_sim/stats``, ``POST /_sim/stats/reset``,
  ``GET|POST|DELETE /_sim/faults`` (see :mod:`eventmodel.sim.http_faults`),
  ``POST /_sim/tokens/expire``.

Servers are listed through ``SimCloud.list_servers`` (sorted by uuid, the sim's
listing faults and ``during_listing`` hook apply) and shown one by id through
``SimCloud.get_server``; a down cell's servers are minimal records (``status:
UNKNOWN``) from 2.69 and left out of listings below (a show fails), as Nova does.

Threads: the sim is changed by operations on other threads while HTTP reads it.
Every read of the sim holds :func:`sim_lock` (an ``RLock`` kept on the sim as
``sim.truth_lock``); whoever changes the sim while a server runs must hold it too
(``with api.lock: sim.step(5)``).

The services live in their own modules (:mod:`api_identity`, :mod:`api_compute`,
:mod:`api_placement`; shared pieces in :mod:`api_common`, reads of the sim in
:mod:`api_view`); this one holds what comes before them: the ASGI wrapper (request
counts, faults, token check, microversion), the control routes and the route table.

In tests and the demo, run it with :class:`eventmodel.sim.server.SimServer`::

    with SimServer(SimCloud(hosts=4, instances=20, seed=1)) as srv:
        conn = openstack.connect(**srv.auth_args())   # or srv.write_clouds_yaml(path)
        srv.api.arm(HttpFault("reset", service="compute", path="servers/detail"))
        srv.api.stats()                                # requests by service
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid as _uuid
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from eventmodel.sim.api_common import (
    BAREMETAL_MAX,
    BAREMETAL_MIN,
    COMPUTE_MAX,
    COMPUTE_MIN,
    DECODE,
    ENCODE,
    PLACEMENT_MAX,
    PLACEMENT_MIN,
    PUBLIC,
    SimApiError,
    Receive,
    Scope,
    Send,
    base_url,
    error_body,
    fmt,
    header_list,
    json_response,
    negotiate,
    route_key,
    service_of,
)
from eventmodel.sim.api_baremetal import Baremetal
from eventmodel.sim.api_block_storage import BlockStorage
from eventmodel.sim.api_compute import Compute
from eventmodel.sim.api_identity import Credentials, Identity
from eventmodel.sim.api_placement import Placement
from eventmodel.sim.api_view import SimView, sim_lock
from eventmodel.sim.http_faults import FaultPlan, HttpFault

__all__ = [
    "COMPUTE_MAX", "COMPUTE_MIN", "PLACEMENT_MAX", "PLACEMENT_MIN", "SimApiError", "Credentials", "Scope", "SimApi",
    "negotiate", "sim_lock",
]  # fmt: skip


class SimApi:
    """The ASGI app serving a SimCloud; see the module docstring.

    ``token_ttl_s`` is how long a token lives; ``clock`` (seconds, ``time.time`` by
    default) decides when it has expired. ``faults`` is the plan consulted per request.
    """

    def __init__(
        self,
        sim: Any,
        *,
        credentials: Credentials | None = None,
        token_ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        faults: FaultPlan | None = None,
    ) -> None:
        self.sim = sim
        self.view = SimView(sim)
        self.lock = sim_lock(sim)
        self.identity = Identity(self.view, credentials or Credentials(), token_ttl_s, clock)
        self.compute = Compute(self.view, self.lock, self.identity)
        self.placement = Placement(self.view, self.lock)
        self.block_storage = BlockStorage(sim, self.lock)
        self.baremetal = Baremetal(sim, self.lock)
        self.faults = faults if faults is not None else FaultPlan()
        #: closes a connection without an answer; set by the server that runs the app
        self.reset_connection: Callable[[Scope], bool] | None = None
        self._stats_lock = threading.Lock()
        self._stats: dict[str, int] = {}
        self._routes: dict[str, int] = {}
        self.app = Starlette(routes=self._route_table(), exception_handlers={HTTPException: self._http_error})

    @property
    def credentials(self) -> Credentials:
        return self.identity.credentials

    # ------------------------------------------------------------------ Python API

    def stats(self) -> dict[str, Any]:
        """Requests served so far: by service (identity, compute, placement, control),
        ``total`` (control excluded), ``by_route`` (``METHOD /path``), ``status``
        (answers by HTTP status), ``faults_fired``."""
        with self._stats_lock:
            out: dict[str, Any] = {s: self._stats.get(s, 0)
                                   for s in ("identity", "compute", "placement", "block-storage", "baremetal", "control")}
            out["total"] = (out["identity"] + out["compute"] + out["placement"] + out["block-storage"]
                            + out["baremetal"])
            out["by_route"] = dict(self._routes)
            out["status"] = {k[7:]: v for k, v in self._stats.items() if k.startswith("status:")}
        out["faults_fired"] = len(self.faults.fired())
        return out

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()
            self._routes.clear()

    def arm(self, *faults: HttpFault) -> None:
        """Arm faults (one-shot unless ``times`` says otherwise)."""
        self.faults.arm(*faults)

    def expire_tokens(self) -> int:
        """Every token issued so far expires now; returns how many were valid."""
        return self.identity.expire_all()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        service = service_of(path)
        self._count(service, scope["method"], path)
        if service == "control":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = headers.get("x-auth-token")
        extra: list[tuple[bytes, bytes]] = [(b"x-openstack-request-id", b"req-" + str(_uuid.uuid4()).encode())]
        fault = self.faults.take(service, path, token is not None)
        if fault is not None:
            if fault.kind == "reset" and self._reset(scope):
                for _ in range(3):  # let the protocol see the connection lost: no "no response" error log
                    await asyncio.sleep(0)
                return
            if fault.kind == "error" or fault.kind == "reset":
                await self._error(service, fault.status, "Injected fault: the simulated cloud failed this request.",
                                  extra, scope, receive, send)
                return
            if fault.kind == "timeout":
                await asyncio.sleep(fault.stall_s)
            if fault.kind == "expired_token" and token is not None:
                self.identity.revoke(token)
        try:
            if not _is_public(service, path):
                self._authenticate(token, scope)
            if service in ("compute", "placement", "block-storage", "baremetal") and not _is_version_doc(path):
                mv = negotiate(service, headers)
                scope.setdefault("state", {})["mv"] = mv
                extra += _version_headers(service, mv)
        except SimApiError as exc:
            shape = "identity" if exc.status == 401 else service  # keystonemiddleware's 401 body
            await self._error(shape, exc.status, exc.message, extra + header_list(exc.headers), scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
                self._count_status(message["status"])
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _error(self, service: str, status: int, message: str, extra: list[tuple[bytes, bytes]],
                     scope: Scope, receive: Receive, send: Send) -> None:
        self._count_status(status)
        resp = Response(ENCODE(error_body(service, status, message)), status_code=status,
                        media_type="application/json")
        resp.raw_headers.extend(extra)
        await resp(scope, receive, send)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Unknown routes and methods, in the service's error shape."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = "The resource could not be found." if status == 404 else str(getattr(exc, "detail", exc))
        return json_response(error_body(service_of(request.url.path), status, message), status)

    def _reset(self, scope: Scope) -> bool:
        reset = self.reset_connection
        return bool(reset is not None and reset(scope))

    def _authenticate(self, token: str | None, scope: Scope) -> None:
        if self.identity.token(token) is None:
            challenge = {"WWW-Authenticate": f'Keystone uri="{base_url(scope)}/identity"'}
            raise SimApiError(401, "The request you have made requires authentication.", challenge)

    def _count(self, service: str, method: str, path: str) -> None:
        route = f"{method} {route_key(path)}"
        with self._stats_lock:
            self._stats[service] = self._stats.get(service, 0) + 1
            self._routes[route] = self._routes.get(route, 0) + 1

    def _count_status(self, status: int) -> None:
        key = f"status:{status}"
        with self._stats_lock:
            self._stats[key] = self._stats.get(key, 0) + 1

    # ------------------------------------------------------------------ routes

    def _route_table(self) -> list[Any]:
        k, n, p = self.identity, self.compute, self.placement
        identity = [
            Route("/", k.identity_versions, methods=["GET"]),
            Route("/v3", k.identity_v3, methods=["GET"]),
            Route("/v3/", k.identity_v3, methods=["GET"]),
            Route("/v3/auth/tokens", k.issue_token, methods=["POST"]),
        ]
        compute = [
            Route("/", n.compute_versions, methods=["GET"]),
            Route("/v2.1", n.compute_v21, methods=["GET"]),
            Route("/v2.1/", n.compute_v21, methods=["GET"]),
            Route("/v2.1/servers", n.servers, methods=["GET"]),
            Route("/v2.1/servers/detail", n.servers_detail, methods=["GET"]),  # before {server_id}
            Route("/v2.1/servers/{server_id}", n.server, methods=["GET"]),
            Route("/v2.1/os-hypervisors", n.hypervisors, methods=["GET"]),
            Route("/v2.1/os-hypervisors/detail", n.hypervisors_detail, methods=["GET"]),
            Route("/v2.1/os-services", n.services, methods=["GET"]),
            Route("/v2.1/os-aggregates", n.aggregates, methods=["GET"]),
        ]
        placement = [
            Route("/", p.placement_versions, methods=["GET"]),
            Route("/resource_providers", p.resource_providers, methods=["GET"]),
            Route("/resource_providers/{uuid}", p.resource_provider, methods=["GET"]),
            Route("/resource_providers/{uuid}/inventories", p.inventories, methods=["GET"]),
            Route("/resource_providers/{uuid}/usages", p.usages, methods=["GET"]),
            Route("/resource_providers/{uuid}/aggregates", p.rp_aggregates, methods=["GET"]),
        ]
        c = self.block_storage
        volume = [
            Route("/", c.versions, methods=["GET"]),
            Route("/v3", c.v3, methods=["GET"]),
            Route("/v3/", c.v3, methods=["GET"]),
            Route("/v3/os-services", c.services, methods=["GET"]),
            Route("/v3/types", c.types, methods=["GET"]),
            Route("/v3/scheduler-stats/get_pools", c.pools, methods=["GET"]),
            Route("/v3/os-availability-zone", c.zones, methods=["GET"]),
            Route("/v3/volumes", c.volumes, methods=["GET"]),
            Route("/v3/volumes/detail", c.volumes_detail, methods=["GET"]),  # before {volume_id}
            Route("/v3/volumes/{volume_id}", c.volume, methods=["GET"]),
        ]
        b = self.baremetal
        baremetal = [
            Route("/", b.versions, methods=["GET"]),
            Route("/v1", b.v1, methods=["GET"]),
            Route("/v1/", b.v1, methods=["GET"]),
            Route("/v1/nodes", b.nodes, methods=["GET"]),
            Route("/v1/nodes/detail", b.nodes_detail, methods=["GET"]),  # before {node_id}
            Route("/v1/nodes/{node_id}", b.node, methods=["GET"]),
        ]
        control = [
            Route("/stats", self.control_stats, methods=["GET"]),
            Route("/stats/reset", self.control_stats_reset, methods=["POST"]),
            Route("/faults", self.control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/tokens/expire", self.control_expire, methods=["POST"]),
        ]
        return [
            Route("/compute", n.compute_versions, methods=["GET"]),
            Mount("/compute", routes=compute),
            Route("/placement", p.placement_versions, methods=["GET"]),
            Mount("/placement", routes=placement),
            Route("/volume", c.versions, methods=["GET"]),
            Mount("/volume", routes=volume),
            Route("/baremetal", b.versions, methods=["GET"]),
            Mount("/baremetal", routes=baremetal),
            Mount("/_sim", routes=control),
            Route("/identity", k.identity_versions, methods=["GET"]),
            Mount("/identity", routes=identity),
            *identity,
        ]

    # -------------------------------------------------------------- control

    async def control_stats(self, request: Request) -> Response:
        return json_response(self.stats())

    async def control_stats_reset(self, request: Request) -> Response:
        self.reset_stats()
        return Response(status_code=204)

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response(status_code=204)
        if request.method == "POST":
            try:
                data = DECODE(await request.body())
                items = data if isinstance(data, list) else [data]
                faults = [HttpFault.from_dict(d) for d in items]
            except (msgspec.DecodeError, ValueError) as exc:
                return json_response({"error": f"bad fault: {exc}"}, 400)
            self.arm(*faults)
        return json_response({"armed": self.faults.armed(), "fired": self.faults.fired()})

    async def control_expire(self, request: Request) -> Response:
        return json_response({"expired": self.expire_tokens()})


def _is_version_doc(path: str) -> bool:
    return path in PUBLIC


def _is_public(service: str, path: str) -> bool:
    return service == "identity" or path in PUBLIC


def _version_headers(service: str, mv: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    v = fmt(mv).encode()
    out = [(b"openstack-api-version", service.encode() + b" " + v)]
    if service == "block-storage":
        return [(b"openstack-api-version", b"volume " + v), (b"vary", b"openstack-api-version")]
    if service == "baremetal":
        return [*out, (b"x-openstack-ironic-api-version", v),
                (b"x-openstack-ironic-api-minimum-version", fmt(BAREMETAL_MIN).encode()),
                (b"x-openstack-ironic-api-maximum-version", fmt(BAREMETAL_MAX).encode())]
    if service == "compute":
        out.append((b"x-openstack-nova-api-version", v))
        out.append((b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version"))
    else:
        out.append((b"vary", b"openstack-api-version"))
    return out
