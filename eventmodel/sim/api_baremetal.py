"""Ironic's Bare Metal API v1 (1.1–1.109) of the simulated cloud, the part a full sync
reads: the version documents, ``nodes/detail`` and ``nodes?detail=True`` (paged by
``limit``/``marker`` in Ironic's order, with a ``next`` link when a page is full),
``nodes`` (uuid, name, states only) and ``nodes/{uuid}`` (404 as Ironic answers it).
The microversion comes from ``X-OpenStack-Ironic-API-Version`` or
``OpenStack-API-Version: baremetal X`` and is echoed in both, with the minimum and
maximum headers. A cloud without bare-metal nodes answers 404 on every route (its
catalog has no baremetal service)."""

from __future__ import annotations

import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eventmodel.events import BaremetalNode
from eventmodel.sim.api_common import (
    BAREMETAL_MAX,
    BAREMETAL_MIN,
    ENCODE,
    SimApiError,
    base_url,
    bool_param,
    error_body,
    fmt,
    json_response,
    list_query,
    next_href,
)
from eventmodel.sim.truth import OperationError


def _error(status: int, message: str) -> Response:
    return json_response(error_body("baremetal", status, message), status)


class Baremetal:
    """The simulated Ironic's routes; reads hold ``lock``."""

    def __init__(self, sim: Any, lock: threading.RLock) -> None:
        self.sim = sim
        self.lock = lock

    def _version(self, base: str) -> dict[str, Any]:
        return {"id": "v1", "links": [{"href": f"{base}/baremetal/v1/", "rel": "self"}], "status": "CURRENT",
                "version": fmt(BAREMETAL_MAX), "min_version": fmt(BAREMETAL_MIN)}

    async def versions(self, request: Request) -> Response:
        v = self._version(base_url(request.scope))
        return json_response({"name": "OpenStack Ironic API",
                              "description": "Ironic is an OpenStack project which enables the provision and "
                                             "management of baremetal machines.",
                              "versions": [v], "default_version": v})

    async def v1(self, request: Request) -> Response:
        base = base_url(request.scope)
        return json_response({
            "id": "v1", "version": self._version(base),
            "links": [{"href": f"{base}/baremetal/v1/", "rel": "self"}],
            "media_types": [{"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}],
            "nodes": [{"href": f"{base}/baremetal/v1/nodes/", "rel": "self"}],
        })

    def _ironic(self) -> Any:
        if getattr(self.sim, "ironic", None) is None:
            raise SimApiError(404, "The resource could not be found.")
        return self.sim.ironic

    async def nodes(self, request: Request) -> Response:
        detail = request.query_params.get("detail")
        try:
            return self._nodes(request, detail=detail is not None and bool_param(detail))
        except SimApiError as exc:
            return _error(exc.status, exc.message)

    async def nodes_detail(self, request: Request) -> Response:
        if "detail" in request.query_params:
            return _error(400, "Unknown argument: \"detail\"")
        try:
            return self._nodes(request, detail=True)
        except SimApiError as exc:
            return _error(exc.status, exc.message)

    def _nodes(self, request: Request, *, detail: bool) -> Response:
        q = list_query(request)
        if detail and request.url.path.endswith("/nodes") and q.mv < (1, 43):
            raise SimApiError(406, "The detail parameter needs version 1.43 or later.")
        with self.lock:
            ironic = self._ironic()
            try:
                page = self.sim.list_baremetal_nodes(limit=q.limit, marker=q.marker)
            except OperationError:  # Ironic looks the marker up: a deleted (or unknown) node is a 404
                raise SimApiError(404, f"Node {q.marker} could not be found.") from None
            records = [self.record(ironic, n, q.mv, q.base) if detail else self._short(n, q.base) for n in page]
        body: dict[str, Any] = {"nodes": records}
        if len(page) == q.limit and page:
            body["next"] = next_href(q.base + request.url.path, request.url.query, page[-1].uuid)
        return Response(ENCODE(body), media_type="application/json")

    async def node(self, request: Request) -> Response:
        u = request.path_params["node_id"]
        mv: tuple[int, int] = request.state.mv
        try:
            with self.lock:
                ironic = self._ironic()
                n = self.sim.get_baremetal_node(u)
                if n is None:
                    raise SimApiError(404, f"Node {u} could not be found.")
                payload = ENCODE(self.record(ironic, n, mv, base_url(request.scope)))
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return Response(payload, media_type="application/json")

    @staticmethod
    def _links(base: str, u: str) -> list[dict[str, str]]:
        return [{"href": f"{base}/baremetal/v1/nodes/{u}", "rel": "self"},
                {"href": f"{base}/baremetal/nodes/{u}", "rel": "bookmark"}]

    def _short(self, n: BaremetalNode, base: str) -> dict[str, Any]:
        return {"uuid": n.uuid, "name": n.name, "instance_uuid": n.instance_uuid, "power_state": n.power_state,
                "provision_state": n.provision_state, "maintenance": n.maintenance, "links": self._links(base, n.uuid)}

    def record(self, ironic: Any, n: BaremetalNode, mv: tuple[int, int], base: str) -> dict[str, Any]:
        """A node as ``nodes/detail`` shows it at ``mv`` (fields appear with their microversions)."""
        d = ironic.payload_data(n)
        r: dict[str, Any] = {k: d[k] for k in (
            "uuid", "name", "power_state", "target_power_state", "provision_state", "target_provision_state",
            "provision_updated_at", "maintenance", "maintenance_reason", "extra", "instance_uuid", "properties",
            "created_at", "updated_at", "driver", "console_enabled", "last_error")}
        r.update(instance_info={}, driver_info={}, driver_internal_info={}, chassis_uuid=None,
                 links=self._links(base, n.uuid),
                 ports=[{"href": f"{base}/baremetal/v1/nodes/{n.uuid}/ports", "rel": "self"}],
                 states=[{"href": f"{base}/baremetal/v1/nodes/{n.uuid}/states", "rel": "self"}])
        for since, keys in (((1, 7), ("clean_step",)), ((1, 21), ("resource_class",)),
                            ((1, 37), ("traits",)), ((1, 42), ("fault",)), ((1, 44), ("deploy_step",)),
                            ((1, 46), ("conductor_group",)), ((1, 48), ("protected", "protected_reason")),
                            ((1, 50), ("owner",)), ((1, 51), ("description",)), ((1, 61), ("retired", "retired_reason")),
                            ((1, 65), ("lessee",)), ((1, 75), ("boot_mode", "secure_boot"))):
            if mv >= since:
                r.update({k: d[k] for k in keys})
        if mv >= (1, 31):
            r.update({k: v for k, v in d.items() if k.endswith("_interface")})
        return r

