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
  ``servers_links`` when a page is full), ``os-hypervisors`` and
  ``os-hypervisors/detail`` (paged from 2.33), ``os-services``, ``os-aggregates``;
  microversion from ``OpenStack-API-Version: compute X`` or
  ``X-OpenStack-Nova-API-Version``, echoed in both; 406 out of range;
- ``/placement``: version document, ``resource_providers`` (and one by uuid, its
  ``inventories``, ``usages``, ``aggregates``), microversion from
  ``OpenStack-API-Version: placement X``;
- ``/_sim``: control, no auth: ``GET /_sim/stats``, ``POST /_sim/stats/reset``,
  ``GET|POST|DELETE /_sim/faults`` (see :mod:`eventmodel.sim.http_faults`),
  ``POST /_sim/tokens/expire``.

Servers are listed through ``SimCloud.list_servers`` (sorted by uuid, the sim's
listing faults and ``during_listing`` hook apply); a down cell's servers are minimal
records (``status: UNKNOWN``) from 2.69 and left out below, as Nova does.

Threads: the sim is changed by operations on other threads while HTTP reads it.
Every read of the sim holds :func:`sim_lock` (an ``RLock`` kept on the sim as
``sim.truth_lock``); whoever changes the sim while a server runs must hold it too
(``with api.lock: sim.step(5)``).

In tests and the demo, run it with :class:`eventmodel.sim.server.SimServer`::

    with SimServer(SimCloud(hosts=4, instances=20, seed=1)) as srv:
        conn = openstack.connect(**srv.auth_args())   # or srv.write_clouds_yaml(path)
        srv.api.arm(HttpFault("reset", service="compute", path="servers/detail"))
        srv.api.stats()                                # requests by service
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
import time
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from eventmodel.events import ComputeNode, ComputeService, Instance, PartialInstance
from eventmodel.sim import notifications as N
from eventmodel.sim.http_faults import FaultPlan, HttpFault
from eventmodel.sim.server_views import (
    ServerViews,
    iso_us,
    service_state,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COMPUTE_MIN, COMPUTE_MAX = (2, 1), (2, 100)
PLACEMENT_MIN, PLACEMENT_MAX = (1, 0), (1, 39)
#: Nova's and Placement's default page size (``[api] max_limit``)
MAX_LIMIT = 1000

# Nova's fault names by status (the key of its error body); others are "computeFault"
_NOVA_FAULT = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 429: "overLimit",
               501: "notImplemented", 503: "serviceUnavailable"}  # fmt: skip
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           406: "Not Acceptable", 409: "Conflict", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip

_VERSION_RE = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")
_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.decode


def sim_lock(sim: Any) -> threading.RLock:
    """The lock that guards a sim's truth (``sim.truth_lock``), created on first use."""
    lock = getattr(sim, "truth_lock", None)
    if lock is None:
        lock = threading.RLock()
        sim.truth_lock = lock
    return lock


@attrs.frozen(slots=True)
class Credentials:
    """The one user the simulated Keystone knows (an admin, as a syncer needs)."""

    username: str = "admin"
    password: str = "sim-password"
    project_name: str = "admin"
    user_domain: str = "Default"
    project_domain: str = "Default"
    region: str = "RegionOne"


class ApiError(Exception):
    """An HTTP error answer, in the shape of the service it is raised from."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_ENCODE(body), status_code=status, headers=headers, media_type="application/json")


def _error_body(service: str, status: int, message: str) -> dict[str, Any]:
    title = _TITLES.get(status, "Error")
    if service == "compute":
        return {_NOVA_FAULT.get(status, "computeFault"): {"code": status, "message": message}}
    if service == "placement":
        return {"errors": [{"status": status, "title": title, "detail": message, "code": "placement.undefined_code",
                            "request_id": "req-" + str(_uuid.uuid4())}]}
    return {"error": {"code": status, "title": title, "message": message}}


def _parse_version(text: str) -> tuple[int, int]:
    m = _VERSION_RE.match(text.strip())
    if m is None:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2))


def _fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def negotiate(service: str, headers: Mapping[str, str]) -> tuple[int, int]:
    """The microversion a request asks for (the minimum without a header, the maximum
    for ``latest``); ApiError 400 for a malformed one, 406 for one out of range."""
    lo, hi = (COMPUTE_MIN, COMPUTE_MAX) if service == "compute" else (PLACEMENT_MIN, PLACEMENT_MAX)
    asked: str | None = None
    for item in headers.get("openstack-api-version", "").split(","):
        name, _, value = item.strip().partition(" ")
        if name.lower() == service and value.strip():
            asked = value.strip()
    if asked is None and service == "compute":
        asked = headers.get("x-openstack-nova-api-version") or None
    if asked is None:
        return lo
    if asked.lower() == "latest":
        return hi
    try:
        v = _parse_version(asked)
    except ValueError:
        raise ApiError(400, f"API version string {asked} format is not valid. It must be MAJOR.MINOR.") from None
    if not lo <= v <= hi:
        raise ApiError(406, f"Version {asked} is not supported by the API. Minimum is {_fmt(lo)} and "
                            f"maximum is {_fmt(hi)}.")
    return v


def _keystone_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _bool_param(value: str) -> bool:
    v = value.strip().lower()
    if v in ("", "1", "true", "t", "yes", "y", "on"):
        return True
    if v in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ApiError(400, f"Invalid input: {value!r} is not a boolean")


def _limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(400, f"limit param must be an integer, got {raw!r}") from None
    if n < 0:
        raise ApiError(400, "limit param must be positive")
    return min(n, MAX_LIMIT) or MAX_LIMIT


@attrs.frozen(slots=True)
class _Token:
    expires_at: float
    user_id: str
    project_id: str | None


class _SimView:
    """Every read of the sim in one place (public methods where the sim has them)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self._node_by_uuid: dict[str, str] = {}
        self._extras = getattr(sim, "extras", None) or getattr(sim, "_extras", None)

    # the sim's own listings (its listing faults and hooks apply)
    def list_services(self) -> list[ComputeService]:
        return list(self.sim.list_services())

    def list_nodes(self) -> list[ComputeNode]:
        return list(self.sim.list_nodes())

    def list_servers(self, limit: int, marker: str | None) -> list[Instance | PartialInstance]:
        return self.sim.list_servers(limit=limit, marker=marker)

    def list_aggregates(self) -> list[Any]:
        reader = getattr(self.sim, "list_aggregates", None)
        return list(reader()) if reader is not None else []

    # single entities, live and without listing side effects (the sim's ``state``, the
    # ground truth, where it has one)
    def _live(self, name: str) -> Mapping[str, Any] | None:
        state = getattr(self.sim, "state", None)
        m = getattr(state, name, None) if state is not None else None
        if not isinstance(m, Mapping):
            m = getattr(self.sim, "_" + name, None)
        return m if isinstance(m, Mapping) else None

    def services_by_host(self) -> Mapping[str, ComputeService]:
        services = self._live("services")
        if services is not None:
            return services
        return {s.host: s for s in self.sim.list_services()}

    def node(self, uuid: str) -> ComputeNode | None:
        nodes = self._live("nodes")
        if nodes is None:
            return next((n for n in self.sim.list_nodes() if n.uuid == uuid), None)
        if uuid not in self._node_by_uuid:
            self._node_by_uuid = {n.uuid: n.name for n in nodes.values() if n.uuid}
        name = self._node_by_uuid.get(uuid)
        return nodes.get(name) if name is not None else None

    def aggregates_of(self, host: str | None) -> list[str]:
        """The uuids of the aggregates a host is in."""
        if host is None:
            return []
        aggregates = self._live("aggregates")
        if aggregates is None:
            return [a.uuid for a in self.list_aggregates() if host in a.hosts]
        return sorted(a.uuid for a in aggregates.values() if host in a.hosts)

    def usage(self, host: str) -> tuple[int, int, int]:
        return self.sim.usage(host)

    def created(self, uuid: str) -> int | None:
        """When an instance was created (µs), if the sim says."""
        inst = self.instance(uuid)
        if inst is not None and inst.created_at is not None:
            return inst.created_at
        extras = self.extras(uuid)
        return extras.created_at if extras is not None else None

    def extras(self, uuid: str) -> N.InstanceExtras | None:
        """What the sim's notifications say of an instance beyond its entity (image, ip, ...)."""
        fn = self._extras
        return fn(uuid) if fn is not None else None

    def instance(self, uuid: str) -> Instance | None:
        try:
            return self.sim.instance(uuid)
        except Exception:  # noqa: BLE001 - deleted since it was listed
            return None

    @property
    def admin_user(self) -> str:
        return str(getattr(self.sim, "admin_user", "0" * 32))

    @property
    def admin_project(self) -> str:
        return str(getattr(self.sim, "admin_project", "1" * 32))


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
        if token_ttl_s <= 0:
            raise ValueError("token_ttl_s must be > 0")
        self.sim = sim
        self.view = _SimView(sim)
        self.lock = sim_lock(sim)
        self.credentials = credentials or Credentials()
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.faults = faults if faults is not None else FaultPlan()
        #: closes a connection without an answer; set by the server that runs the app
        self.reset_connection: Callable[[Scope], bool] | None = None
        self._tokens: dict[str, _Token] = {}
        self._tokens_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats: dict[str, int] = {}
        self._routes: dict[str, int] = {}
        self._generations: dict[str, tuple[tuple[int, int, int], int]] = {}
        self._host_ids: dict[tuple[str, str], str] = {}  # Nova's hostId per (project, host)
        self.app = Starlette(routes=self._route_table(), exception_handlers={HTTPException: self._http_error})

    # ------------------------------------------------------------------ Python API

    def stats(self) -> dict[str, Any]:
        """Requests served so far: by service (identity, compute, placement, control),
        ``total`` (control excluded), ``by_route`` (``METHOD /path``), faults fired."""
        with self._stats_lock:
            out: dict[str, Any] = {s: self._stats.get(s, 0) for s in ("identity", "compute", "placement", "control")}
            out["total"] = out["identity"] + out["compute"] + out["placement"]
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
        now = self.clock()
        with self._tokens_lock:
            n = sum(1 for t in self._tokens.values() if t.expires_at > now)
            self._tokens.clear()
        return n

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        service = _service_of(path)
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
                with self._tokens_lock:
                    self._tokens.pop(token, None)
        try:
            if not _is_public(service, path):
                self._authenticate(token, scope)
            if service in ("compute", "placement") and not _is_version_doc(path):
                mv = negotiate(service, headers)
                scope.setdefault("state", {})["mv"] = mv
                extra += _version_headers(service, mv)
        except ApiError as exc:
            shape = "identity" if exc.status == 401 else service  # keystonemiddleware's 401 body
            await self._error(shape, exc.status, exc.message, extra + _hdrs(exc.headers), scope, receive, send)
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
        resp = Response(_ENCODE(_error_body(service, status, message)), status_code=status,
                        media_type="application/json")
        resp.raw_headers.extend(extra)
        await resp(scope, receive, send)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Unknown routes and methods, in the service's error shape."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = "The resource could not be found." if status == 404 else str(getattr(exc, "detail", exc))
        return _json(_error_body(_service_of(request.url.path), status, message), status)

    def _reset(self, scope: Scope) -> bool:
        reset = self.reset_connection
        return bool(reset is not None and reset(scope))

    def _authenticate(self, token: str | None, scope: Scope) -> None:
        base = _base_url(scope)
        challenge = {"WWW-Authenticate": f'Keystone uri="{base}/identity"'}
        if not token:
            raise ApiError(401, "The request you have made requires authentication.", challenge)
        with self._tokens_lock:
            t = self._tokens.get(token)
            if t is not None and t.expires_at <= self.clock():
                del self._tokens[token]
                t = None
        if t is None:
            raise ApiError(401, "The request you have made requires authentication.", challenge)

    def _count(self, service: str, method: str, path: str) -> None:
        route = f"{method} {_route_key(path)}"
        with self._stats_lock:
            self._stats[service] = self._stats.get(service, 0) + 1
            self._routes[route] = self._routes.get(route, 0) + 1

    def _count_status(self, status: int) -> None:
        key = f"status:{status}"
        with self._stats_lock:
            self._stats[key] = self._stats.get(key, 0) + 1

    # ------------------------------------------------------------------ routes

    def _route_table(self) -> list[Any]:
        identity = [
            Route("/", self.identity_versions, methods=["GET"]),
            Route("/v3", self.identity_v3, methods=["GET"]),
            Route("/v3/", self.identity_v3, methods=["GET"]),
            Route("/v3/auth/tokens", self.issue_token, methods=["POST"]),
        ]
        compute = [
            Route("/", self.compute_versions, methods=["GET"]),
            Route("/v2.1", self.compute_v21, methods=["GET"]),
            Route("/v2.1/", self.compute_v21, methods=["GET"]),
            Route("/v2.1/servers", self.servers, methods=["GET"]),
            Route("/v2.1/servers/detail", self.servers_detail, methods=["GET"]),
            Route("/v2.1/os-hypervisors", self.hypervisors, methods=["GET"]),
            Route("/v2.1/os-hypervisors/detail", self.hypervisors_detail, methods=["GET"]),
            Route("/v2.1/os-services", self.services, methods=["GET"]),
            Route("/v2.1/os-aggregates", self.aggregates, methods=["GET"]),
        ]
        placement = [
            Route("/", self.placement_versions, methods=["GET"]),
            Route("/resource_providers", self.resource_providers, methods=["GET"]),
            Route("/resource_providers/{uuid}", self.resource_provider, methods=["GET"]),
            Route("/resource_providers/{uuid}/inventories", self.inventories, methods=["GET"]),
            Route("/resource_providers/{uuid}/usages", self.usages, methods=["GET"]),
            Route("/resource_providers/{uuid}/aggregates", self.rp_aggregates, methods=["GET"]),
        ]
        control = [
            Route("/stats", self.control_stats, methods=["GET"]),
            Route("/stats/reset", self.control_stats_reset, methods=["POST"]),
            Route("/faults", self.control_faults, methods=["GET", "POST", "DELETE"]),
            Route("/tokens/expire", self.control_expire, methods=["POST"]),
        ]
        return [
            Route("/compute", self.compute_versions, methods=["GET"]),
            Mount("/compute", routes=compute),
            Route("/placement", self.placement_versions, methods=["GET"]),
            Mount("/placement", routes=placement),
            Mount("/_sim", routes=control),
            Route("/identity", self.identity_versions, methods=["GET"]),
            Mount("/identity", routes=identity),
            *identity,
        ]

    # -------------------------------------------------------------- identity

    def _identity_version(self, base: str) -> dict[str, Any]:
        return {
            "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }  # fmt: skip

    async def identity_versions(self, request: Request) -> Response:
        return _json({"versions": {"values": [self._identity_version(_base_url(request.scope))]}}, 300)

    async def identity_v3(self, request: Request) -> Response:
        return _json({"version": self._identity_version(_base_url(request.scope))})

    async def issue_token(self, request: Request) -> Response:
        try:
            body = _DECODE(await request.body())
            auth = body["auth"]
            identity = auth["identity"]
            if "password" not in identity.get("methods", []):
                raise ApiError(401, "Only password authentication is supported.")
            user = identity["password"]["user"]
            scope = auth.get("scope")
        except ApiError as exc:
            return _json(_error_body("identity", exc.status, exc.message), exc.status)
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
            return _json(_error_body("identity", 400, "Expecting to find auth.identity.password.user in the "
                                                      "request body."), 400)
        c = self.credentials
        uid = self.view.admin_user
        if not (
            (user.get("name") == c.username and _domain_ok(user.get("domain"), c.user_domain)) or user.get("id") == uid
        ) or user.get("password") != c.password:
            return _json(_error_body("identity", 401, "The request you have made requires authentication."), 401)
        project: dict[str, Any] | None = None
        pid = self.view.admin_project
        if isinstance(scope, dict) and "project" in scope:
            p = scope["project"]
            if not isinstance(p, dict) or not (
                p.get("id") == pid or (p.get("name") == c.project_name and _domain_ok(p.get("domain"), c.project_domain))
            ):
                return _json(_error_body("identity", 401, "User has no access to the requested project."), 401)
            project = {"id": pid, "name": c.project_name, "domain": _domain(c.project_domain)}
        elif scope is not None:
            return _json(_error_body("identity", 400, "Only project scope is supported."), 400)
        now = self.clock()
        expires = now + self.token_ttl_s
        token = secrets.token_hex(16)
        with self._tokens_lock:
            if len(self._tokens) > 1000:  # forget expired tokens now and then
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[token] = _Token(expires, uid, pid if project else None)
        now_real = time.time()
        out: dict[str, Any] = {
            "methods": ["password"],
            "user": {"id": uid, "name": c.username, "domain": _domain(c.user_domain), "password_expires_at": None},
            "audit_ids": [secrets.token_urlsafe(16)],
            "issued_at": _keystone_time(now_real),
            "expires_at": _keystone_time(now_real + self.token_ttl_s),
        }
        if project is not None:
            out.update(project=project, is_domain=False, roles=[
                {"id": _hexid("role:admin"), "name": "admin"}, {"id": _hexid("role:member"), "name": "member"},
                {"id": _hexid("role:reader"), "name": "reader"}],
                catalog=self._catalog(_base_url(request.scope)))
        return _json({"token": out}, 201, {"X-Subject-Token": token})

    def _catalog(self, base: str) -> list[dict[str, Any]]:
        region = self.credentials.region

        def service(kind: str, name: str, url: str) -> dict[str, Any]:
            return {"id": _hexid("service:" + kind), "type": kind, "name": name, "endpoints": [
                {"id": _hexid(f"endpoint:{kind}:{iface}"), "interface": iface, "region": region,
                 "region_id": region, "url": url} for iface in ("public", "internal", "admin")]}

        return [
            service("identity", "keystone", f"{base}/identity"),
            service("compute", "nova", f"{base}/compute/v2.1"),
            service("placement", "placement", f"{base}/placement"),
        ]

    # -------------------------------------------------------------- compute

    def _compute_version(self, base: str) -> dict[str, Any]:
        return {
            "id": "v2.1", "status": "CURRENT", "version": _fmt(COMPUTE_MAX), "min_version": _fmt(COMPUTE_MIN),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"},
                      {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }  # fmt: skip

    async def compute_versions(self, request: Request) -> Response:
        return _json({"versions": [self._compute_version(_base_url(request.scope))]})

    async def compute_v21(self, request: Request) -> Response:
        return _json({"version": self._compute_version(_base_url(request.scope))})

    async def servers(self, request: Request) -> Response:
        return self._servers(request, detail=False)

    async def servers_detail(self, request: Request) -> Response:
        return self._servers(request, detail=True)

    def _servers(self, request: Request, *, detail: bool) -> Response:
        try:
            params = dict(request.query_params)
            mv: tuple[int, int] = request.state.mv
            limit = _limit(params)
            marker = params.get("marker") or None
            all_tenants = _bool_param(params["all_tenants"]) if "all_tenants" in params else False
            project = params.get("project_id") or params.get("tenant_id")
            if not all_tenants:
                project = self._token_project(request)
            host = params.get("host")
            base = _base_url(request.scope)
            with self.lock:
                page = self._server_page(limit, marker, project if (project or not all_tenants) else None, host)
                views = ServerViews(base, mv, self.view.services_by_host(), self.view.extras, self.view.created,
                                    self._host_ids)
                render = views.detail if detail else views.summary
                records = [r for r in map(render, page) if r is not None]
                body: dict[str, Any] = {"servers": records}
                if len(page) == limit and page:
                    body["servers_links"] = [{"rel": "next", "href": _next_href(
                        base + request.url.path, request.url.query, page[-1].uuid)}]
                payload = _ENCODE(body)  # under the lock: the records share the truth's objects
            return Response(payload, media_type="application/json")
        except ApiError as exc:
            return _json(_error_body("compute", exc.status, exc.message), exc.status)

    def _token_project(self, request: Request) -> str:
        t = self._tokens.get(request.headers.get("x-auth-token", ""))
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
            limit = _limit(params) if paged else None
            marker = params.get("marker") if paged else None
            pattern = params.get("hypervisor_hostname_pattern")
            base = _base_url(request.scope)
            with self.lock:
                nodes = self.view.list_nodes()
                services = self.view.services_by_host()
                usage = {n.host: self.view.usage(n.host) for n in nodes if n.host} if mv < (2, 88) else {}
            indexed = list(enumerate(nodes, start=1))
            if pattern:
                indexed = [(i, n) for i, n in indexed if pattern in n.name]
            if marker:
                pos = next((k for k, (i, n) in enumerate(indexed) if (n.uuid if uuids else str(i)) == marker), None)
                if pos is None:
                    raise ApiError(400, f"marker [{marker}] not found")
                indexed = indexed[pos + 1:]
            page = indexed[:limit] if limit is not None else indexed
            views = [self._hypervisor_view(i, n, mv, detail, services.get(n.host or ""), usage) for i, n in page]
            body: dict[str, Any] = {"hypervisors": views}
            if limit is not None and len(page) == limit and page:
                last_i, last = page[-1]
                body["hypervisors_links"] = [{"rel": "next", "href": _next_href(
                    base + request.url.path, request.url.query, last.uuid if uuids else str(last_i))}]
            return _json(body)
        except ApiError as exc:
            return _json(_error_body("compute", exc.status, exc.message), exc.status)

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
        return _json({"services": recs})

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
        start = int(getattr(self.sim, "start_time_us", 0))
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
        start = int(getattr(self.sim, "start_time_us", 0))
        out = []
        for a in aggs:
            rec = {
                "id": a.id, "name": a.name, "availability_zone": a.availability_zone, "hosts": list(a.hosts),
                "metadata": dict(a.metadata), "deleted": False, "deleted_at": None,
                "created_at": iso_us(getattr(a, "created_at", None) or start),
                "updated_at": iso_us(getattr(a, "updated_at", None)),
            }  # fmt: skip
            if mv >= (2, 41):
                rec["uuid"] = a.uuid
            out.append(rec)
        return _json({"aggregates": out})

    # -------------------------------------------------------------- placement

    async def placement_versions(self, request: Request) -> Response:
        return _json({"versions": [{
            "id": "v1.0", "max_version": _fmt(PLACEMENT_MAX), "min_version": _fmt(PLACEMENT_MIN),
            "status": "CURRENT", "links": [{"rel": "self", "href": ""}],
        }]})  # fmt: skip

    def _generation(self, n: ComputeNode) -> int:
        """A provider's generation: bumped whenever its allocations are seen to change."""
        used = self.view.usage(n.host) if n.host else (0, 0, 0)
        seen = self._generations.get(n.name)
        if seen is None:
            gen = 1
        elif seen[0] != used:
            gen = seen[1] + 1
        else:
            return seen[1]
        self._generations[n.name] = (used, gen)
        return gen

    def _provider_view(self, n: ComputeNode, mv: tuple[int, int]) -> dict[str, Any]:
        href = f"/placement/resource_providers/{n.uuid}"
        links = [{"rel": "self", "href": href}, {"rel": "inventories", "href": href + "/inventories"},
                 {"rel": "usages", "href": href + "/usages"}]
        if mv >= (1, 1):
            links.append({"rel": "aggregates", "href": href + "/aggregates"})
        if mv >= (1, 6):
            links.append({"rel": "traits", "href": href + "/traits"})
        if mv >= (1, 11):
            links.append({"rel": "allocations", "href": href + "/allocations"})
        rec: dict[str, Any] = {"uuid": n.uuid, "name": n.name, "generation": self._generation(n), "links": links}
        if mv >= (1, 14):
            rec["parent_provider_uuid"] = None
            rec["root_provider_uuid"] = n.uuid
        return rec

    def _provider(self, request: Request) -> ComputeNode:
        uuid = request.path_params["uuid"]
        node = self.view.node(uuid)
        if node is None:
            raise ApiError(404, f"No resource provider with uuid {uuid} found")
        return node

    async def resource_providers(self, request: Request) -> Response:
        params = request.query_params
        mv: tuple[int, int] = request.state.mv
        name, uuid = params.get("name"), params.get("uuid")
        member_of = params.get("member_of")
        with self.lock:
            nodes = self.view.list_nodes()
            members: set[str] | None = None
            if member_of:
                wanted = set(member_of.removeprefix("in:").split(","))
                members = {h for a in self.view.list_aggregates() if a.uuid in wanted for h in a.hosts}
            recs = [self._provider_view(n, mv) for n in nodes
                    if (name is None or n.name == name) and (uuid is None or n.uuid == uuid)
                    and (members is None or n.host in members)]
        return _json({"resource_providers": recs})

    async def resource_provider(self, request: Request) -> Response:
        try:
            with self.lock:
                return _json(self._provider_view(self._provider(request), request.state.mv))
        except ApiError as exc:
            return _json(_error_body("placement", exc.status, exc.message), exc.status)

    async def inventories(self, request: Request) -> Response:
        try:
            with self.lock:
                n = self._provider(request)
                gen = self._generation(n)
        except ApiError as exc:
            return _json(_error_body("placement", exc.status, exc.message), exc.status)

        def inv(total: int, reserved: int, ratio: float) -> dict[str, Any]:
            return {"total": total, "reserved": reserved, "min_unit": 1, "max_unit": total, "step_size": 1,
                    "allocation_ratio": ratio}

        return _json({"resource_provider_generation": gen, "inventories": {
            "VCPU": inv(n.vcpus, n.vcpus_reserved, n.cpu_allocation_ratio),
            "MEMORY_MB": inv(n.memory_mb, n.memory_mb_reserved, n.ram_allocation_ratio),
            "DISK_GB": inv(n.disk_gb, n.disk_gb_reserved, n.disk_allocation_ratio),
        }})  # fmt: skip

    async def usages(self, request: Request) -> Response:
        try:
            with self.lock:
                n = self._provider(request)
                gen = self._generation(n)
                cpu, ram, disk = self.view.usage(n.host) if n.host else (0, 0, 0)
        except ApiError as exc:
            return _json(_error_body("placement", exc.status, exc.message), exc.status)
        return _json({"resource_provider_generation": gen, "usages": {"VCPU": cpu, "MEMORY_MB": ram, "DISK_GB": disk}})

    async def rp_aggregates(self, request: Request) -> Response:
        mv: tuple[int, int] = request.state.mv
        if mv < (1, 1):
            return _json(_error_body("placement", 404, "The resource could not be found."), 404)
        try:
            with self.lock:
                n = self._provider(request)
                gen = self._generation(n)
                aggs = self.view.aggregates_of(n.host)
        except ApiError as exc:
            return _json(_error_body("placement", exc.status, exc.message), exc.status)
        body: dict[str, Any] = {"aggregates": aggs}
        if mv >= (1, 19):
            body["resource_provider_generation"] = gen
        return _json(body)

    # -------------------------------------------------------------- control

    async def control_stats(self, request: Request) -> Response:
        return _json(self.stats())

    async def control_stats_reset(self, request: Request) -> Response:
        self.reset_stats()
        return Response(status_code=204)

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response(status_code=204)
        if request.method == "POST":
            try:
                data = _DECODE(await request.body())
                items = data if isinstance(data, list) else [data]
                faults = [HttpFault.from_dict(d) for d in items]
            except (msgspec.DecodeError, ValueError) as exc:
                return _json({"error": f"bad fault: {exc}"}, 400)
            self.arm(*faults)
        return _json({"armed": self.faults.armed(), "fired": self.faults.fired()})

    async def control_expire(self, request: Request) -> Response:
        return _json({"expired": self.expire_tokens()})


# ---------------------------------------------------------------------- helpers


def _service_of(path: str) -> str:
    if path.startswith("/compute"):
        return "compute"
    if path.startswith("/placement"):
        return "placement"
    if path.startswith("/_sim"):
        return "control"
    return "identity"


_PUBLIC = frozenset({"/compute", "/compute/", "/compute/v2.1", "/compute/v2.1/", "/placement", "/placement/"})


def _is_version_doc(path: str) -> bool:
    return path in _PUBLIC


def _is_public(service: str, path: str) -> bool:
    return service == "identity" or path in _PUBLIC


def _version_headers(service: str, mv: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    v = _fmt(mv).encode()
    out = [(b"openstack-api-version", service.encode() + b" " + v)]
    if service == "compute":
        out.append((b"x-openstack-nova-api-version", v))
        out.append((b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version"))
    else:
        out.append((b"vary", b"openstack-api-version"))
    return out


def _hdrs(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def _base_url(scope: Scope) -> str:
    for k, v in scope["headers"]:
        if k == b"host":
            return f"{scope.get('scheme', 'http')}://{v.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def _route_key(path: str) -> str:
    """A path with uuids replaced by ``{uuid}``, so that stats group per route."""
    return _UUID_RE.sub("{uuid}", path)


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _next_href(url: str, query: str, marker: str) -> str:
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "marker"]
    params.append(("marker", marker))
    return f"{url}?{urlencode(params)}"


def _host_ip(name: str) -> str:
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)  # an address, not security
    return f"192.168.{(h >> 8) & 255}.{(h & 253) + 2}"


#: the control plane's services, listed beside the compute services as Nova does
CONTROLLER_HOSTS = ("controller-1", "controller-2", "controller-3")


def _controller_services(sim: Any) -> Iterable[tuple[str, str]]:
    for host in getattr(sim, "controllers", CONTROLLER_HOSTS):
        for binary in ("nova-scheduler", "nova-conductor"):
            yield host, binary


def _hexid(text: str) -> str:
    return _uuid.uuid5(_uuid.NAMESPACE_URL, "sim:" + text).hex


def _domain(name: str) -> dict[str, str]:
    return {"id": "default" if name.lower() == "default" else _hexid("domain:" + name), "name": name}


def _domain_ok(given: Any, name: str) -> bool:
    if not isinstance(given, dict):
        return False
    d = _domain(name)
    return given.get("name") == d["name"] or given.get("id") == d["id"]
