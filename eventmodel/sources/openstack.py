"""Reading a real cloud for full syncs, through openstacksdk.

Credentials come the way every OpenStack tool takes them: ``clouds.yaml`` with
``--cloud``/``OS_CLOUD``, or ``OS_*`` environment variables. openstacksdk does the
authentication, the catalogue, version discovery and the HTTP session (keystoneauth:
tokens, re-authentication on a 401, timeouts, retries); the listings are GETs on
that session at the endpoints it resolved, with explicit microversions, decoded
straight into the fields the model keeps (an SDK resource object per server, or
even a whole JSON object, costs more than the rest of the sync). What is read
(ADR 0010):

- compute services (``nova-compute`` only), with their zone;
- hypervisors, page by page (compute ≥ 2.53: uuid ids and markers; the 2.88 shape
  when the cloud has it), with their status (``disabled`` and the service's reason);
  each joined to its Placement inventory — the hypervisor id is the resource
  provider's uuid — for total, reserved and allocation ratio of VCPU, MEMORY_MB and
  DISK_GB; the inventories are read on a bounded thread pool;
- host aggregates, with their zone, hosts and metadata;
- every server of every project, page by page, with its embedded flavor and extra
  specs (≥ 2.47), metadata and created time; a down cell's minimal record (≥ 2.69)
  is a :class:`~eventmodel.events.PartialInstance`. The next page is requested while
  the current one is being stored, and never after a page the API did not fill;
- one server by uuid (``get_server``: the sync's follow-up reads), the same record
  at the same microversion, None when Nova answers 404.

Microversions are negotiated against what the endpoints announce: the highest the
reader knows up to the cloud's maximum, and an error naming both when the cloud is
older than the minimum the model needs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import quote

import msgspec

from eventmodel.errors import SourceError
from eventmodel import events as ev
from eventmodel.sources.nova import values as nova_values

#: Nova's power_state codes (nova/compute/power_state.py) by the names notifications use
POWER_STATES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed", 7: "suspended"}

#: (lowest the model needs, highest the reader knows) per listing; see the module docstring
COMPUTE_SERVERS = ("2.53", "2.100")
COMPUTE_HYPERVISORS = ("2.53", "2.88")
COMPUTE_SERVICES = ("2.53", "2.69")
COMPUTE_AGGREGATES = ("2.53", "2.81")
PLACEMENT_INVENTORIES = ("1.0", "1.39")

#: the resource classes the model keeps
RESOURCE_CLASSES = ("VCPU", "MEMORY_MB", "DISK_GB")

#: what a service's requests are counted under when its URL matches no endpoint
OTHER = "other"


class CloudApiError(SourceError, RuntimeError):
    """An API answered with an error, or with something that is not what it documents."""


class FlavorRecord(msgspec.Struct, frozen=True):
    """The flavor embedded in a server (compute ≥ 2.47): what the model keeps of it."""

    vcpus: int | None = None
    ram: int = 0
    disk: int = 0
    ephemeral: int = 0
    swap: int | str = 0  # an int from 2.47; '' meant none in older flavor views
    original_name: str | None = None
    extra_specs: dict[str, str] | None = None


class ServerRecord(msgspec.Struct):
    """A server of ``GET /servers/detail``, decoded straight from JSON: only the fields
    the model keeps are built (about 5× faster than decoding whole objects)."""

    id: str
    status: str | None = None
    name: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    created: str | None = None
    updated: str | None = None
    flavor: FlavorRecord | None = None
    metadata: dict[str, str] | None = None
    locked: bool | None = None
    locked_reason: str | None = None
    host: str | None = msgspec.field(default=None, name="OS-EXT-SRV-ATTR:host")
    node: str | None = msgspec.field(default=None, name="OS-EXT-SRV-ATTR:hypervisor_hostname")
    vm_state: str | None = msgspec.field(default=None, name="OS-EXT-STS:vm_state")
    power_state: int | None = msgspec.field(default=None, name="OS-EXT-STS:power_state")
    task_state: str | None = msgspec.field(default=None, name="OS-EXT-STS:task_state")
    availability_zone: str | None = msgspec.field(default=None, name="OS-EXT-AZ:availability_zone")


class Link(msgspec.Struct):
    rel: str | None = None
    href: str | None = None


class ServerPage(msgspec.Struct):
    """One page of ``GET /servers/detail``."""

    servers: list[ServerRecord]
    servers_links: list[Link] | None = None


class ServerShow(msgspec.Struct):
    """The answer of ``GET /servers/{id}``."""

    server: ServerRecord


class FlavorCache:
    """One Flavor object per distinct embedded flavor: 50,000 servers of a dozen
    flavors share a dozen objects (less to build, less for the projection to hold)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._cache: dict[tuple, ev.Flavor] = {}
        self.limit = limit

    def __call__(self, fl: FlavorRecord) -> ev.Flavor:
        specs = fl.extra_specs
        key = (fl.original_name, fl.vcpus, fl.ram, fl.disk, fl.ephemeral, fl.swap,
               tuple(sorted(specs.items())) if specs else ())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        flavor = ev.Flavor(
            name=fl.original_name or "", vcpus=int(fl.vcpus or 0), memory_mb=int(fl.ram or 0),
            root_gb=int(fl.disk or 0), ephemeral_gb=int(fl.ephemeral or 0), swap_mb=int(fl.swap or 0),
            extra_specs=dict(specs) if specs else {},
        )
        if len(self._cache) < self.limit:
            self._cache[key] = flavor
        return flavor


class ServerConverter:
    """Turns server records into Instances, sharing one Flavor per distinct flavor
    (one converter per reader)."""

    def __init__(self, flavor_limit: int = 10_000) -> None:
        self.flavors = FlavorCache(flavor_limit)

    def instance(self, s: ServerRecord) -> ev.Instance | ev.PartialInstance:
        """A server record as our Instance; a minimal record (a server in a cell the API
        cannot reach: no flavor, status ``UNKNOWN``, compute ≥ 2.69) as a
        :class:`~eventmodel.events.PartialInstance`."""
        fl = s.flavor
        if fl is None or fl.vcpus is None or s.status == "UNKNOWN":
            return ev.PartialInstance(s.id, s.status or "UNKNOWN", s.tenant_id or "")
        intern = sys.intern
        created, updated = s.created, s.updated
        created_us = nova_values.time_of(created, "created")
        # updated_at else created_at (Nova's value rule), the created time parsed once
        updated_us = created_us if updated == created else nova_values.time_of(updated, "updated")
        power = s.power_state
        host, node = s.host, s.node
        return ev.Instance(
            uuid=s.id,
            version=nova_values.version(updated_us, created_us),
            host=intern(host) if host else None,
            node=intern(node) if node else None,
            vm_state=intern(s.vm_state or "unknown"),
            flavor=self.flavors(fl),
            power_state=POWER_STATES.get(power, str(power)) if power is not None else None,
            task_state=s.task_state,
            project_id=intern(s.tenant_id or ""),
            user_id=s.user_id or "",
            name=s.name or "",
            locked=bool(s.locked),
            locked_reason=s.locked_reason,
            availability_zone=nova_values.zone(s.availability_zone),
            metadata=s.metadata or {},
            created_at=created_us,
        )


def server_to_instance(s: Mapping[str, Any], converter: ServerConverter | None = None
                       ) -> ev.Instance | ev.PartialInstance:
    """A server of ``GET /servers/detail`` given as a JSON object (see
    :meth:`ServerConverter.instance`). Raises CloudApiError when a field has the wrong type."""
    try:
        record = msgspec.convert(s, ServerRecord)
    except msgspec.ValidationError as exc:
        raise CloudApiError(f"a server of /servers/detail is not as documented: {exc}") from None
    return (converter or ServerConverter()).instance(record)


def service_from_api(s: Mapping[str, Any]) -> ev.ComputeService:
    """A service of ``GET /os-services``."""
    return ev.ComputeService(
        host=str(s["host"]), binary=str(s.get("binary") or "nova-compute"),
        version=nova_values.version_of(s, nova_values.SERVICE_VERSION_FIELDS),
        disabled=s.get("status") == "disabled", disabled_reason=s.get("disabled_reason"),
        forced_down=bool(s.get("forced_down")), up=s.get("state") == "up",
        uuid=str(s["id"]) if s.get("id") is not None else None,
        availability_zone=nova_values.zone(s.get("zone")),
    )


def aggregate_from_api(a: Mapping[str, Any]) -> ev.Aggregate:
    """An aggregate of ``GET /os-aggregates``. Nova gives aggregates no version the
    notifications share, so it is the lowest one (see :class:`~eventmodel.events.Aggregate`)."""
    return ev.Aggregate(
        uuid=str(a.get("uuid") or a["id"]), version=ev.LOWEST_VERSION,
        id=int(a["id"]) if a.get("id") is not None else None, name=str(a.get("name") or ""),
        availability_zone=nova_values.zone(a.get("availability_zone")),
        hosts=tuple(str(h) for h in a.get("hosts") or ()),
        metadata=nova_values.str_map(a.get("metadata"), "'metadata'"),
    )


def node_from_api(h: Mapping[str, Any], inventories: Mapping[str, Mapping[str, Any]]) -> ev.ComputeNode:
    """A hypervisor of ``GET /os-hypervisors/detail`` joined to its Placement inventories
    (resource class → inventory). A resource class the provider does not have (DISK_GB
    on shared storage) counts as zero capacity."""

    def amount(rc: str, field: str, default: Any = 0) -> Any:
        inv = inventories.get(rc)
        value = inv.get(field) if inv is not None else None
        return default if value is None else value

    service = h.get("service") or {}
    # The hypervisors API gives no time of change; nodes change only through full
    # syncs, whose observations are authoritative, so the lowest version will do.
    return ev.ComputeNode(
        name=str(h["hypervisor_hostname"]), version=ev.LOWEST_VERSION, host=service.get("host"),
        uuid=str(h["id"]) if h.get("id") is not None else None,
        vcpus=int(amount("VCPU", "total")), memory_mb=int(amount("MEMORY_MB", "total")),
        disk_gb=int(amount("DISK_GB", "total")),
        vcpus_reserved=int(amount("VCPU", "reserved")),
        memory_mb_reserved=int(amount("MEMORY_MB", "reserved")),
        disk_gb_reserved=int(amount("DISK_GB", "reserved")),
        cpu_allocation_ratio=float(amount("VCPU", "allocation_ratio", 1.0)),
        ram_allocation_ratio=float(amount("MEMORY_MB", "allocation_ratio", 1.0)),
        disk_allocation_ratio=float(amount("DISK_GB", "allocation_ratio", 1.0)),
        hypervisor_type=h.get("hypervisor_type"), state=str(h.get("state") or "up"),
        disabled=h.get("status") == "disabled", disabled_reason=service.get("disabled_reason"),
    )


# ---------------------------------------------------------------------------
# Microversions
# ---------------------------------------------------------------------------


def _mv(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def _mv_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def negotiate(service: str, announced: tuple[Any, Any], wanted: tuple[str, str]) -> str:
    """The microversion to use: the highest of ``wanted`` (lowest needed, highest known)
    that the endpoint announces (``announced`` = its min and max, parsed or text).

    Raises CloudApiError naming both ranges when there is none."""
    lo_text, hi_text = announced
    if hi_text is None:
        raise CloudApiError(f"the {service} API announces no microversions; {wanted[0]} or later is needed")
    lo = _mv(_mv_text(lo_text) if isinstance(lo_text, tuple) else lo_text) if lo_text else (0, 0)
    hi = _mv(_mv_text(hi_text) if isinstance(hi_text, tuple) else hi_text)
    need, know = _mv(wanted[0]), _mv(wanted[1])
    chosen = min(hi, know)
    if chosen < need or chosen < lo:
        raise CloudApiError(f"the {service} API offers microversions {_mv_text(lo)}..{_mv_text(hi)}; "
                       f"this reader needs {wanted[0]}..{wanted[1]}")
    return _mv_text(chosen)


# ---------------------------------------------------------------------------
# Counting requests
# ---------------------------------------------------------------------------

_VERSION_SUFFIX = re.compile(r"/v\d+(\.\d+)?/?$")


def _base(url: str) -> str:
    """An endpoint URL without its version suffix (``…/compute/v2.1`` → ``…/compute``):
    version discovery asks the unversioned root."""
    url = url.split("?", 1)[0].rstrip("/")
    return _VERSION_SUFFIX.sub("", url)


class RequestCounter:
    """Counts every HTTP request a session sends, by the service whose endpoint its URL
    is under (``identity``, ``compute``, ``placement``; ``other`` when none matches).

    It wraps the session's transport adapters (:meth:`attach`), so an attempt that
    fails to connect counts too, and it needs no guess about what a call costs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._unknown: Counter[str] = Counter()
        self._prefixes: list[tuple[str, str]] = []  # (url prefix, service), longest first

    def add_endpoint(self, url: str, service: str) -> None:
        """Count requests under ``url`` (its unversioned root) as ``service``'s."""
        prefix = _base(url)
        with self._lock:
            if (prefix, service) not in self._prefixes:
                # a new list, never sorted in place: other threads read it unlocked
                self._prefixes = sorted([*self._prefixes, (prefix, service)], key=lambda p: -len(p[0]))

    def service_of(self, url: str) -> str:
        for prefix, service in self._prefixes:
            if url.startswith(prefix) and (len(url) == len(prefix) or url[len(prefix)] in "/?"):
                return service
        return OTHER

    def count(self, url: str) -> None:
        service = self.service_of(url)
        with self._lock:
            if service == OTHER:
                # e.g. version discovery before the endpoint was learnt: classified later
                self._unknown[url.split("?", 1)[0]] += 1
            else:
                self._counts[service] += 1

    def counts(self) -> dict[str, int]:
        """Requests so far, by service."""
        with self._lock:
            out = Counter(self._counts)
            for url, n in self._unknown.items():
                out[self.service_of(url)] += n
            return dict(out)

    def attach(self, http: Any, pool_size: int = 10) -> None:
        """Wrap every transport adapter of a ``requests.Session`` (keystoneauth's
        ``session.session``) in a counting subclass of its own class (keystoneauth's
        keeps its TCP options); ``pool_size`` keeps that many connections per host."""
        counter = self
        for scheme, old in list(http.adapters.items()):
            if getattr(old, "_eventmodel_counting", False):
                continue
            base = type(old)

            def send(adapter: Any, request: Any, *args: Any, _base: type = base, **kwargs: Any) -> Any:
                counter.count(request.url)
                return _base.send(adapter, request, *args, **kwargs)

            cls = type(f"Counting{base.__name__}", (base,), {"send": send, "_eventmodel_counting": True})
            tls = {name: getattr(old, name) for name in ("tls_ciphers", "tls_min_version") if hasattr(old, name)}
            new = cls(pool_connections=max(10, pool_size), pool_maxsize=max(10, pool_size),
                      max_retries=old.max_retries, **tls)
            http.mount(scheme, new)
            old.close()


# ---------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------


class OpenStackReader:
    """A :class:`~eventmodel.sources.sync.CloudReader` over an openstacksdk connection.
    Its listings may run at the same time (``concurrent_listings``): the Snapshotter
    reads the nodes while it reads the servers.

    ``inventory_workers`` bounds the Placement inventory requests in flight;
    ``page_size`` is the ``limit`` of hypervisor listings (server pages are the
    Snapshotter's). ``connect_retries``: how many times a GET whose connection failed
    or timed out is sent again (keystoneauth's retry: a server closing an idle
    keep-alive connection as it is reused must not fail a sync of thousands of
    requests); an answer with an error status is never retried. ``requests`` counts
    every request the connection's session sends.
    """

    concurrent_listings = True

    def __init__(self, conn: Any, *, inventory_workers: int = 8, page_size: int = 1000,
                 connect_retries: int = 1, count_requests: bool = True) -> None:
        if inventory_workers < 1:
            raise ValueError("inventory_workers must be >= 1")
        if connect_retries < 0:
            raise ValueError("connect_retries must be >= 0")
        self.connect_retries = connect_retries
        self.conn = conn
        self.inventory_workers = inventory_workers
        self.page_size = page_size
        self.requests = RequestCounter()
        self._versions: dict[str, str] | None = None
        self._endpoints: dict[str, str] = {}
        self._convert = ServerConverter()
        self._lock = threading.Lock()
        if count_requests:
            self._attach_counter()

    @classmethod
    def connect(cls, cloud: str | None = None, *, timeout: float | None = 60.0,
                inventory_workers: int = 8, connect_retries: int = 1, **config: Any) -> OpenStackReader:
        """Connect as every OpenStack tool does (``cloud`` in clouds.yaml, else ``OS_*``
        variables, else ``config`` such as ``auth_url``/``username``...). ``timeout``
        bounds each request (seconds)."""
        import openstack

        if timeout is not None:
            config.setdefault("api_timeout", timeout)
        return cls(openstack.connect(cloud=cloud, **config), inventory_workers=inventory_workers,
                   connect_retries=connect_retries)

    # -- plumbing ------------------------------------------------------------
    def _attach_counter(self) -> None:
        session = getattr(self.conn, "session", None)
        http = getattr(session, "session", None)
        if http is None or not hasattr(http, "adapters"):
            return  # a fake connection: nothing to count
        self.requests.attach(http, pool_size=self.inventory_workers + 2)
        if not _proxies_in_environment():
            # requests scans the environment for proxies on every request (about a
            # third of the client's CPU per inventory request); with none set, read
            # the one other thing it takes from there, a CA bundle, once
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle and getattr(session, "verify", None) is True:
                session.verify = bundle
            http.trust_env = False
        auth_url = None
        try:
            auth_url = self.conn.config.get_auth_args().get("auth_url")
        except Exception:  # noqa: BLE001 - a connection without auth arguments
            auth_url = None
        if auth_url:
            self.requests.add_endpoint(auth_url, "identity")

    def start_sync(self) -> None:
        """A sync begins: endpoints and microversions are looked up again (two discovery
        requests), so that a cloud upgraded or moved while the syncer runs is followed."""
        with self._lock:
            self._versions = None

    def microversions(self) -> dict[str, str]:
        """The microversion per listing, negotiated once per sync (one discovery request
        per API)."""
        with self._lock:
            if self._versions is None:
                compute, placement = self.conn.compute, self.conn.placement
                # one catalogue lookup per sync, not one per request
                self._endpoints = {"compute": compute.get_endpoint().rstrip("/"),
                                   "placement": placement.get_endpoint().rstrip("/")}
                for service, url in self._endpoints.items():
                    self.requests.add_endpoint(url, service)
                c = compute.get_endpoint_data()
                p = placement.get_endpoint_data()
                if c is None or p is None:
                    raise CloudApiError("version discovery found no compute or no placement endpoint")
                cv = (c.min_microversion, c.max_microversion)
                pv = (p.min_microversion, p.max_microversion)
                self._versions = {
                    "servers": negotiate("compute", cv, COMPUTE_SERVERS),
                    "hypervisors": negotiate("compute", cv, COMPUTE_HYPERVISORS),
                    "services": negotiate("compute", cv, COMPUTE_SERVICES),
                    "aggregates": negotiate("compute", cv, COMPUTE_AGGREGATES),
                    "inventories": negotiate("placement", pv, PLACEMENT_INVENTORIES),
                }
            return self._versions

    def _get(self, service: str, url: str, version: str, params: Mapping[str, Any] | None = None,
             *, missing_ok: bool = False, decoder: msgspec.json.Decoder | None = None) -> Any:
        """GET ``url`` of ``service`` (its endpoint, resolved once) at ``version``, through
        the connection's keystoneauth session (token, re-authentication on a 401,
        timeouts, retries); the JSON body decoded (by ``decoder`` when given). Any
        error status but an accepted 404 raises CloudApiError."""
        resp = self.conn.session.get(
            self._endpoints[service] + url, params=dict(params or {}), headers={"Accept": "application/json"},
            microversion=version, microversion_service_type=service, raise_exc=False,
            connect_retries=self.connect_retries, stream=True)
        try:
            status = resp.status_code
            if missing_ok and status == 404:
                return None
            if status >= 400:
                body = (resp.text or "")[:300].strip()
                raise CloudApiError(f"GET {url} answered {status}: {body or resp.reason}")
            # read the body in one call (requests reads it in 10 kB chunks); debug
            # logging of the response may already have read it
            content = resp.content if getattr(resp, "_content_consumed", True) else \
                resp.raw.read(decode_content=True)
        finally:
            resp.close()
        try:
            return (decoder or _JSON).decode(content)
        except msgspec.ValidationError as exc:
            raise CloudApiError(f"GET {url}: the answer is not as documented: {exc}") from None
        except msgspec.DecodeError as exc:
            raise CloudApiError(f"GET {url} answered {status} with a body that is not JSON: {exc}") from None

    @staticmethod
    def _field(body: Any, name: str, url: str) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get(name), (list, dict)):
            raise CloudApiError(f"GET {url}: no {name!r} in the answer")
        return body[name]

    # -- listings ------------------------------------------------------------
    def list_services(self) -> list[ev.ComputeService]:
        v = self.microversions()["services"]
        body = self._get("compute", "/os-services", v, {"binary": "nova-compute"})
        out = []
        for s in self._field(body, "services", "/os-services"):
            with _documented("a service of /os-services", s):
                if s.get("binary", "nova-compute") != "nova-compute" or s.get("status") == "UNKNOWN":
                    continue  # another binary, or a down cell's service (ADR 0010: left out)
                out.append(service_from_api(s))
        return out

    def list_aggregates(self) -> list[ev.Aggregate]:
        v = self.microversions()["aggregates"]
        body = self._get("compute", "/os-aggregates", v)
        out = []
        for a in self._field(body, "aggregates", "/os-aggregates"):
            with _documented("an aggregate of /os-aggregates", a):
                out.append(aggregate_from_api(a))
        return out

    def hypervisor_pages(self) -> Iterator[list[dict[str, Any]]]:
        """The hypervisor listing, one page (a list of JSON objects) at a time."""
        v = self.microversions()["hypervisors"]
        marker: str | None = None
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if marker is not None:
                params["marker"] = marker
            body = self._get("compute", "/os-hypervisors/detail", v, params)
            page = self._field(body, "hypervisors", "/os-hypervisors/detail")
            if page:
                yield page
            if not _has_next(body.get("hypervisors_links"), len(page), self.page_size):
                return
            marker = str(page[-1]["id"])

    def inventories(self, provider: str) -> dict[str, dict[str, Any]]:
        """A resource provider's inventories of the classes the model keeps (empty when
        Placement has no such provider: a compute node not registered yet)."""
        v = self.microversions()["inventories"]
        url = f"/resource_providers/{provider}/inventories"
        body = self._get("placement", url, v, missing_ok=True)
        if body is None:
            return {}
        inv = self._field(body, "inventories", url)
        return {rc: inv[rc] for rc in RESOURCE_CLASSES if rc in inv}

    def list_nodes(self) -> Iterator[ev.ComputeNode]:
        """Every hypervisor joined to its inventories, yielded as each inventory arrives;
        at most ``inventory_workers`` inventory requests in flight."""
        pool = ThreadPoolExecutor(self.inventory_workers, thread_name_prefix="eventmodel-placement")
        try:
            for page in self.hypervisor_pages():
                futures: dict[Future, dict[str, Any]] = {}
                for h in page:
                    if not isinstance(h, dict) or h.get("id") is None or not h.get("hypervisor_hostname"):
                        raise CloudApiError(f"a hypervisor of /os-hypervisors/detail without an id or a hostname: "
                                       f"{str(h)[:200]}")
                    futures[pool.submit(self.inventories, str(h["id"]))] = h
                for f in as_completed(futures):
                    h = futures[f]
                    inventory = f.result()
                    with _documented("a hypervisor or its inventory", {"hypervisor": h, "inventory": inventory}):
                        node = node_from_api(h, inventory)
                    yield node
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def list_servers(self, *, limit: int = 1000, marker: str | None = None
                     ) -> list[ev.Instance | ev.PartialInstance]:
        """One page of servers after ``marker``."""
        return self._server_page(limit, marker)[0]

    def _server_page(self, limit: int, marker: str | None) -> tuple[list[ev.Instance | ev.PartialInstance], bool]:
        v = self.microversions()["servers"]
        params: dict[str, Any] = {"all_tenants": "True", "limit": limit}
        if marker is not None:
            params["marker"] = marker
        page: ServerPage = self._get("compute", "/servers/detail", v, params, decoder=_SERVER_PAGE)
        instance = self._convert.instance
        return [instance(s) for s in page.servers], _has_next(page.servers_links, len(page.servers), limit)

    def get_server(self, uuid: str) -> ev.Instance | ev.PartialInstance | None:
        """One server by uuid (``GET /servers/{uuid}``, Nova's show server) at the
        listing's microversion, converted as the listing's servers are; None when Nova
        answers 404 (no such server, or deleted). Any other error status raises CloudApiError."""
        v = self.microversions()["servers"]
        url = "/servers/" + quote(uuid, safe="")
        body: ServerShow | None = self._get("compute", url, v, missing_ok=True, decoder=_SERVER_SHOW)
        if body is None:
            return None
        return self._convert.instance(body.server)

    def server_pages(self, limit: int = 1000) -> Iterator[list[ev.Instance | ev.PartialInstance]]:
        """Every server, a page at a time; the next page is fetched (on one background
        thread) while the caller stores this one. No page is requested after one the
        API did not fill."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="eventmodel-servers")
        try:
            ahead = pool.submit(self._server_page, limit, None)
            while ahead is not None:
                page, more = ahead.result()
                ahead = pool.submit(self._server_page, limit, page[-1].uuid) if more and page else None
                if page:
                    yield page
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _documented(what: str, item: Any) -> Iterator[None]:
    """Turns a conversion error on an API record into an CloudApiError that shows the record."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CloudApiError(f"{what} is not as documented ({type(exc).__name__}: {exc}): {str(item)[:300]}") from None


_JSON = msgspec.json.Decoder()
_SERVER_PAGE = msgspec.json.Decoder(ServerPage)
_SERVER_SHOW = msgspec.json.Decoder(ServerShow)


def _proxies_in_environment() -> bool:
    """Whether the environment sets a proxy (``http_proxy``, ``HTTPS_PROXY``, ...)."""
    return any(n.lower().endswith("_proxy") and n.lower() != "no_proxy" and v for n, v in os.environ.items())


def _has_next(links: Iterable[Any] | None, got: int, limit: int) -> bool:
    """Whether another page may follow: the API gave a ``next`` link (a decoded
    :class:`Link` or a JSON object), or, giving no links at all, filled the page. Nova
    gives the link exactly when the page is full, so a short page ends the listing."""
    if links is None:
        return got >= limit > 0
    for link in links:
        rel = link.get("rel") if isinstance(link, Mapping) else getattr(link, "rel", None)
        if rel == "next":
            return True
    return False
