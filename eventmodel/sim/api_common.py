"""HTTP pieces the simulated services share: error shapes, microversion negotiation,
query parameters, links, JSON encoding."""

from __future__ import annotations

import json as _json
import re
import uuid as _uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import msgspec
from starlette.responses import Response

from eventmodel.errors import SimError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

COMPUTE_MIN, COMPUTE_MAX = (2, 1), (2, 100)
PLACEMENT_MIN, PLACEMENT_MAX = (1, 0), (1, 39)
VOLUME_MIN, VOLUME_MAX = (3, 0), (3, 71)
BAREMETAL_MIN, BAREMETAL_MAX = (1, 1), (1, 109)
_RANGES = {"compute": (COMPUTE_MIN, COMPUTE_MAX), "placement": (PLACEMENT_MIN, PLACEMENT_MAX),
           "block-storage": (VOLUME_MIN, VOLUME_MAX), "baremetal": (BAREMETAL_MIN, BAREMETAL_MAX)}
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
ENCODE = msgspec.json.Encoder().encode
DECODE = msgspec.json.decode


class SimApiError(SimError):
    """An HTTP error answer, in the shape of the service it is raised from."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer, encoded with msgspec."""
    return Response(ENCODE(body), status_code=status, headers=headers, media_type="application/json")


def error_body(service: str, status: int, message: str) -> dict[str, Any]:
    """An error in the service's own shape (Nova's fault name, Placement's errors list,
    Keystone's error object)."""
    title = _TITLES.get(status, "Error")
    if service in ("compute", "block-storage"):  # Cinder's faults have Nova's shape
        return {_NOVA_FAULT.get(status, "computeFault"): {"code": status, "message": message}}
    if service == "baremetal":  # Ironic's (wsme) fault: a JSON document inside a string
        return {"error_message": _json.dumps({"faultstring": message, "faultcode": "Client" if status < 500
                                              else "Server", "debuginfo": None})}
    if service == "placement":
        return {"errors": [{"status": status, "title": title, "detail": message, "code": "placement.undefined_code",
                            "request_id": "req-" + str(_uuid.uuid4())}]}
    return {"error": {"code": status, "title": title, "message": message}}


def parse_version(text: str) -> tuple[int, int]:
    """``"2.53"`` → ``(2, 53)``; ValueError unless MAJOR.MINOR without leading zeros."""
    m = _VERSION_RE.match(text.strip())
    if m is None:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2))


def fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def negotiate(service: str, headers: Mapping[str, str]) -> tuple[int, int]:
    """The microversion a request asks for (the minimum without a header, the maximum
    for ``latest``); SimApiError 400 for a malformed one, 406 for one out of range."""
    lo, hi = _RANGES[service]
    names = ("volume", "block-storage") if service == "block-storage" else (service,)
    asked: str | None = None
    for item in headers.get("openstack-api-version", "").split(","):
        name, _, value = item.strip().partition(" ")
        if name.lower() in names and value.strip():
            asked = value.strip()
    if asked is None and service == "compute":
        asked = headers.get("x-openstack-nova-api-version") or None
    if asked is None and service == "baremetal":
        asked = headers.get("x-openstack-ironic-api-version") or None
    if asked is None:
        return lo
    if asked.lower() == "latest":
        return hi
    try:
        v = parse_version(asked)
    except ValueError:
        raise SimApiError(400, f"API version string {asked} format is not valid. It must be MAJOR.MINOR.") from None
    if not lo <= v <= hi:
        raise SimApiError(406, f"Version {asked} is not supported by the API. Minimum is {fmt(lo)} and "
                            f"maximum is {fmt(hi)}.")
    return v


def bool_param(value: str) -> bool:
    """A boolean query parameter as Nova reads one (a bare key is true); SimApiError 400."""
    v = value.strip().lower()
    if v in ("", "1", "true", "t", "yes", "y", "on"):
        return True
    if v in ("0", "false", "f", "no", "n", "off"):
        return False
    raise SimApiError(400, f"Invalid input: {value!r} is not a boolean")


def limit_param(params: Mapping[str, str]) -> int:
    """``limit``, capped at :data:`MAX_LIMIT` (also the default); SimApiError 400."""
    raw = params.get("limit")
    if raw is None:
        return MAX_LIMIT
    try:
        n = int(raw)
    except ValueError:
        raise SimApiError(400, f"limit param must be an integer, got {raw!r}") from None
    if n < 0:
        raise SimApiError(400, "limit param must be positive")
    return min(n, MAX_LIMIT) or MAX_LIMIT


def service_of(path: str) -> str:
    """Which service a path belongs to: compute, placement, block-storage, baremetal, control or identity."""
    if path.startswith("/compute"):
        return "compute"
    if path.startswith("/placement"):
        return "placement"
    if path.startswith("/volume"):
        return "block-storage"
    if path.startswith("/baremetal"):
        return "baremetal"
    if path.startswith("/_sim"):
        return "control"
    return "identity"


#: version documents: no token needed
PUBLIC = frozenset({"/compute", "/compute/", "/compute/v2.1", "/compute/v2.1/", "/placement", "/placement/",
                    "/volume", "/volume/", "/volume/v3", "/volume/v3/",
                    "/baremetal", "/baremetal/", "/baremetal/v1", "/baremetal/v1/"})


def header_list(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def base_url(scope: Scope) -> str:
    """``http://host:port`` as the client addressed us (its Host header)."""
    for k, v in scope["headers"]:
        if k == b"host":
            return f"{scope.get('scheme', 'http')}://{v.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def route_key(path: str) -> str:
    """A path with uuids replaced by ``{uuid}``, so that stats group per route."""
    return _UUID_RE.sub("{uuid}", path)


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def next_href(url: str, query: str, marker: str) -> str:
    """The next page's link: the same query with ``marker`` replaced."""
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "marker"]
    params.append(("marker", marker))
    return f"{url}?{urlencode(params)}"


def hex_id(text: str) -> str:
    """A stable 32-hex id for a name (Keystone's id format)."""
    return _uuid.uuid5(_uuid.NAMESPACE_URL, "sim:" + text).hex


@attrs.frozen
class ListQuery:
    """What a paged listing (``servers/detail``, ``volumes/detail``) is asked for."""

    params: dict[str, str]
    mv: tuple[int, int]
    limit: int
    marker: str | None
    all_tenants: bool
    base: str


def list_query(request: Any) -> ListQuery:
    """A listing request's query: its limit, marker and ``all_tenants`` (SimApiError 400
    for a bad one), its microversion and the base URL of links."""
    params = dict(request.query_params)
    return ListQuery(params, request.state.mv, limit_param(params), params.get("marker") or None,
                     bool_param(params["all_tenants"]) if "all_tenants" in params else False,
                     base_url(request.scope))


def page_body(name: str, records: list[Any], page: list[Any], query: ListQuery, request: Any) -> dict[str, Any]:
    """A listing's body: ``{name: records}``, with the ``<name>_links`` next link when the
    page is full (its marker the last entity's uuid)."""
    body: dict[str, Any] = {name: records}
    if len(page) == query.limit and page:
        body[f"{name}_links"] = [{"rel": "next", "href": next_href(
            query.base + request.url.path, request.url.query, page[-1].uuid)}]
    return body
