"""Cinder's Block Storage API v3 (3.0–3.71) of the simulated cloud, the part a full sync
reads: version documents, ``os-services`` (``binary`` filter), ``types``
(``is_public``: public only by default, every type with the string ``None``),
``scheduler-stats/get_pools`` (``detail``), ``volumes`` and ``volumes/detail``
(``all_tenants``, ``limit``/``marker`` in Cinder's order created_at desc, id desc,
``volumes_links`` when a page is full), ``volumes/{id}`` (404 ``itemNotFound``) and
``os-availability-zone``. Microversion from ``OpenStack-API-Version: volume X``,
echoed; 406 out of range. A cloud without volumes answers 404 on every route (its
catalog has no block-storage service)."""

from __future__ import annotations

import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eventmodel.events import Volume
from eventmodel.sim.api_common import (
    ENCODE,
    VOLUME_MAX,
    VOLUME_MIN,
    SimApiError,
    base_url,
    bool_param,
    error_body,
    fmt,
    json_response,
    list_query,
    page_body,
)
from eventmodel.sim.cinder import iso_api
from eventmodel.sim.truth import OperationError

#: the controllers' cinder-scheduler services (listed without a binary filter)
SCHEDULERS = ("controller-1", "controller-2", "controller-3")


def _error(status: int, message: str) -> Response:
    return json_response(error_body("compute", status, message), status)  # Cinder's faults are Nova's shape


class BlockStorage:
    """The simulated Cinder's routes; reads hold ``lock``."""

    def __init__(self, sim: Any, lock: threading.RLock) -> None:
        self.sim = sim
        self.lock = lock

    def _version(self, base: str) -> dict[str, Any]:
        return {
            "id": "v3.0", "status": "CURRENT", "version": fmt(VOLUME_MAX), "min_version": fmt(VOLUME_MIN),
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{base}/volume/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}],
        }  # fmt: skip

    async def versions(self, request: Request) -> Response:
        return json_response({"versions": [self._version(base_url(request.scope))]}, 300)

    async def v3(self, request: Request) -> Response:
        return json_response({"version": self._version(base_url(request.scope))})

    def _cinder(self) -> Any:
        if self.sim.cinder is None:
            raise SimApiError(404, "The resource could not be found.")
        return self.sim.cinder

    async def services(self, request: Request) -> Response:
        mv: tuple[int, int] = request.state.mv
        binary = request.query_params.get("binary")
        try:
            with self.lock:
                cinder = self._cinder()
                now = iso_api(self.sim.clock_us)
                out = []
                if binary in (None, "cinder-scheduler"):
                    for h in SCHEDULERS:
                        out.append(self._service("cinder-scheduler", h, "nova", False, None, True, now, mv))
                if binary in (None, "cinder-volume"):
                    for n in cinder.state.nodes.values():
                        out.append(self._service("cinder-volume", n.host, n.zone, n.disabled, n.disabled_reason,
                                                 n.up, now, mv))
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return json_response({"services": out})

    @staticmethod
    def _service(binary: str, host: str, zone: str | None, disabled: bool, reason: str | None, up: bool,
                 now: str | None, mv: tuple[int, int]) -> dict[str, Any]:
        s: dict[str, Any] = {"binary": binary, "host": host, "zone": zone,
                             "status": "disabled" if disabled else "enabled", "state": "up" if up else "down",
                             "updated_at": now, "disabled_reason": reason}
        if binary == "cinder-volume":
            s.update(replication_status="disabled", active_backend_id=None, frozen=False)
        if mv >= (3, 7):
            s["cluster"] = None
        if mv >= (3, 49) and binary == "cinder-volume":
            s["backend_state"] = "up" if up else "down"
        return s

    async def types(self, request: Request) -> Response:
        raw = request.query_params.get("is_public")
        try:
            public: bool | None = True
            if raw is not None:
                public = None if raw.strip().lower() == "none" else bool_param(raw)
            with self.lock:
                types = list(self._cinder().state.volume_types.values())
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        out = [{"id": t.id, "name": t.name, "description": None, "is_public": t.is_public,
                "os-volume-type-access:is_public": t.is_public, "extra_specs": dict(t.extra_specs),
                "qos_specs_id": None} for t in types if public is None or t.is_public == public]
        return json_response({"volume_types": out})

    async def pools(self, request: Request) -> Response:
        detail = request.query_params.get("detail", "false")
        try:
            detailed = bool_param(detail)
            with self.lock:
                cinder = self._cinder()
                st = cinder.state
                out = []
                for p in st.pools.values():
                    if not detailed:
                        out.append({"name": p.name})
                        continue
                    backend = p.node.partition("@")[2]
                    caps: dict[str, Any] = {
                        "pool_name": p.name.partition("#")[2], "volume_backend_name": backend,
                        "vendor_name": "Open Source", "driver_version": "3.0.0",
                        "storage_protocol": "iSCSI" if backend == "lvm" else "ceph",
                        "total_capacity_gb": p.unbounded if p.total_capacity_gb is None else p.total_capacity_gb,
                        "free_capacity_gb": p.unbounded if p.free_capacity_gb is None else p.free_capacity_gb,
                        "allocated_capacity_gb": p.allocated_capacity_gb,
                        "provisioned_capacity_gb": p.provisioned_capacity_gb,
                        "reserved_percentage": 0, "max_over_subscription_ratio": "1.0",
                        "thin_provisioning_support": backend != "lvm", "thick_provisioning_support": backend == "lvm",
                        "QoS_support": False, "multiattach": True, "backend_state": "up",
                        "timestamp": iso_api(p.version), "filter_function": None, "goodness_function": None,
                        "location_info": f"LVMVolumeDriver:{p.node}:{backend}:thick:0",
                    }
                    if p.total_volumes is not None:
                        caps["total_volumes"] = p.total_volumes
                    out.append({"name": p.name, "capabilities": caps})
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return json_response({"pools": out})

    async def zones(self, request: Request) -> Response:
        try:
            with self.lock:
                zones = sorted({n.zone or "nova" for n in self._cinder().state.nodes.values()})
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return json_response({"availabilityZoneInfo": [{"zoneName": z, "zoneState": {"available": True}}
                                                       for z in zones]})

    async def volumes(self, request: Request) -> Response:
        return self._volumes(request, detail=False)

    async def volumes_detail(self, request: Request) -> Response:
        return self._volumes(request, detail=True)

    def _volumes(self, request: Request, *, detail: bool) -> Response:
        try:
            q = list_query(request)
            with self.lock:
                cinder = self._cinder()
                try:
                    page = self.sim.list_volumes(limit=q.limit, marker=q.marker)
                except OperationError as exc:  # Cinder looks the marker up among live volumes
                    raise SimApiError(404, str(exc)) from None
                if not q.all_tenants:  # the sim's one user is the admin: its own project has none
                    page = [v for v in page if v.project_id == self.sim.admin_project]
                records = [self.record(cinder, v, q.mv, q.base) if detail else
                           {"id": v.uuid, "name": v.name, "links": self._links(q.base, v.uuid)} for v in page]
                payload = ENCODE(page_body("volumes", records, page, q, request))
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return Response(payload, media_type="application/json")

    async def volume(self, request: Request) -> Response:
        u = request.path_params["volume_id"]
        mv: tuple[int, int] = request.state.mv
        try:
            with self.lock:
                cinder = self._cinder()
                v = self.sim.get_volume(u)
                if v is None:
                    raise SimApiError(404, f"Volume {u} could not be found.")
                payload = ENCODE({"volume": self.record(cinder, v, mv, base_url(request.scope))})
        except SimApiError as exc:
            return _error(exc.status, exc.message)
        return Response(payload, media_type="application/json")

    @staticmethod
    def _links(base: str, u: str) -> list[dict[str, str]]:
        return [{"rel": "self", "href": f"{base}/volume/v3/volumes/{u}"},
                {"rel": "bookmark", "href": f"{base}/volume/volumes/{u}"}]

    def record(self, cinder: Any, v: Volume, mv: tuple[int, int], base: str) -> dict[str, Any]:
        """A volume as ``volumes/detail`` shows it to an admin at ``mv``."""
        rows = cinder.rows
        r: dict[str, Any] = {
            "id": v.uuid, "name": v.name or None, "description": None, "status": v.status, "size": v.size_gb,
            "availability_zone": v.availability_zone, "created_at": iso_api(v.created_at),
            "updated_at": iso_api(cinder.state.updated_at.get(v.uuid)), "volume_type": v.volume_type,
            "snapshot_id": v.snapshot_id, "source_volid": None, "metadata": dict(v.metadata),
            "user_id": v.user_id, "bootable": "true" if v.bootable else "false", "encrypted": False,
            "multiattach": v.multiattach, "replication_status": None, "consistencygroup_id": None,
            "os-vol-tenant-attr:tenant_id": v.project_id, "os-vol-host-attr:host": v.host,
            "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None,
            "migration_status": None, "links": self._links(base, v.uuid),
            "attachments": [
                {"id": v.uuid, "attachment_id": a.attachment_id, "volume_id": v.uuid, "server_id": a.server_id,
                 "host_name": rows[a.attachment_id].attached_host if a.attachment_id in rows else None,
                 "device": rows[a.attachment_id].mountpoint if a.attachment_id in rows else None,
                 "attached_at": iso_api(rows[a.attachment_id].attach_time) if a.attachment_id in rows else None}
                for a in v.attachments],
        }
        if mv >= (3, 13):
            r["group_id"] = None
        if mv >= (3, 21):
            r["provider_id"] = None
        if mv >= (3, 48):
            r["service_uuid"] = None
            r["shared_targets"] = False
        if mv >= (3, 61):
            r["cluster_name"] = None
        if mv >= (3, 63):
            r["volume_type_id"] = v.volume_type_id
        if mv >= (3, 65):
            r["consumes_quota"] = True
        return r
