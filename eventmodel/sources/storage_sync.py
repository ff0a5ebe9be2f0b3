"""Reading Cinder for a storage full sync, through the same openstacksdk connection as
the compute sync (:class:`~eventmodel.sources.openstack.OpenStackReader`).

The requests are those of openstacksdk's ``block_storage`` proxy — ``services(binary=
'cinder-volume')``, ``types(is_public='None')``, ``backend_pools()``, ``volumes(details=
True, all_projects=True)`` and ``get_volume(id)`` — sent as GETs on the connection's
keystoneauth session at the endpoint the catalog names (``block-storage``, alias
``volumev3``), with an explicit microversion, and decoded straight into the model's
entities (as the compute reader does, for the same reasons: one request per page, no
resource objects, requests counted per service):

- ``GET /os-services?binary=cinder-volume`` → :class:`~eventmodel.events.StorageNode`;
- ``GET /types?is_public=None`` → :class:`~eventmodel.events.VolumeType` (the string
  ``None`` lists private types too); read first, because a volume names its type and
  the model keeps the type's id as well (``volume_type_id`` from 3.63, else from this
  table);
- ``GET /scheduler-stats/get_pools?detail=True`` → :class:`~eventmodel.events.StoragePool`
  (``infinite``/``unknown`` capacities are None with the word in ``unbounded``;
  version = the capabilities' ``timestamp``);
- ``GET /volumes/detail?all_tenants=True`` paged by ``volumes_links`` →
  :class:`~eventmodel.events.Volume` (version = ``updated_at`` else ``created_at`` else
  the lowest: :func:`eventmodel.sources.nova.values.version`; ``bootable`` is the string
  ``"true"``/``"false"``); Cinder answers 404 when the marker volume was deleted
  meanwhile, and the listing goes on after the volume listed before it;
- ``GET /volumes/{id}`` for a sync's follow-up reads (None on 404).

The services, the pools and the volume pages are read concurrently (the types first).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from eventmodel import events as ev
from eventmodel.sources.nova import values as nova_values
from eventmodel.sources.openstack import OpenStackReader, _documented, _has_next
from eventmodel.sources.service_reader import ServiceReader, follow_markers

#: the Block Storage microversions this reader uses (lowest needed, highest known)
VOLUME_VERSIONS = ("3.0", "3.71")
#: the catalog's names for Cinder v3
BLOCK_STORAGE_TYPES = ("block-storage", "volumev3")
SERVICE = "block-storage"


def _number(value: Any, what: str) -> tuple[float | None, str | None]:
    """A capacity as Cinder reports it: a number, or ``infinite``/``unknown`` (→ None
    and the word), or a numeric string."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        raise ValueError(f"{what} is a boolean")
    if isinstance(value, (int, float)):
        return float(value), None
    text = str(value).strip().lower()
    if text in ("infinite", "unknown"):
        return None, text
    return float(text), None


def pool_from_api(p: Mapping[str, Any]) -> ev.StoragePool:
    """A pool of ``GET /scheduler-stats/get_pools?detail=True``."""
    caps = p.get("capabilities") or {}
    figures: dict[str, float | None] = {}
    unbounded = None
    for name in ("total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb", "allocated_capacity_gb"):
        figures[name], word = _number(caps.get(name), name)
        unbounded = unbounded or word
    tv = caps.get("total_volumes")
    return ev.StoragePool(
        name=str(p["name"]), version=nova_values.version(nova_values.time_of(caps.get("timestamp"), "timestamp")),
        total_capacity_gb=figures["total_capacity_gb"], free_capacity_gb=figures["free_capacity_gb"],
        provisioned_capacity_gb=figures["provisioned_capacity_gb"],
        allocated_capacity_gb=figures["allocated_capacity_gb"], virtual_free_gb=None,
        total_volumes=int(tv) if tv is not None else None, unbounded=unbounded,
    )


def storage_node_from_api(s: Mapping[str, Any]) -> ev.StorageNode:
    """A cinder-volume service of ``GET /os-services``; Cinder sends nothing about its
    services, so the version is the lowest."""
    return ev.StorageNode(
        host=str(s["host"]), version=ev.LOWEST_VERSION, zone=s.get("zone"), disabled=s.get("status") == "disabled",
        disabled_reason=s.get("disabled_reason"), up=s.get("state") == "up",
    )


def volume_type_from_api(t: Mapping[str, Any]) -> ev.VolumeType:
    """A volume type of ``GET /types``."""
    specs = nova_values.str_map(t.get("extra_specs"), "'extra_specs'")
    public = t.get("is_public", t.get("os-volume-type-access:is_public", True))
    return ev.VolumeType(id=str(t["id"]), version=ev.LOWEST_VERSION, name=str(t.get("name") or ""),
                         backend_name=specs.get("volume_backend_name"), is_public=bool(public), extra_specs=specs)


def parse_bool(value: Any, what: str) -> bool:
    """Cinder's ``bootable`` (the string ``"true"``/``"false"``) or a JSON boolean."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{what} is not a boolean: {value!r}")


def volume_from_api(v: Mapping[str, Any], type_ids: Mapping[str, str]) -> ev.Volume:
    """A volume of ``GET /volumes/detail`` (or ``/volumes/{id}``); ``type_ids`` maps a
    type name to its id where the API (before 3.63) gives only the name."""
    created = nova_values.time_of(v.get("created_at"), "created_at")
    updated = nova_values.time_of(v.get("updated_at"), "updated_at")
    type_name = v.get("volume_type")
    return ev.Volume(
        uuid=str(v["id"]), version=nova_values.version(updated, created), host=v.get("os-vol-host-attr:host"),
        size_gb=int(v["size"]), status=str(v.get("status") or ""), name=v.get("name") or "",
        project_id=str(v.get("os-vol-tenant-attr:tenant_id") or ""), user_id=str(v.get("user_id") or ""),
        volume_type_id=v.get("volume_type_id") or (type_ids.get(type_name) if type_name else None),
        volume_type=type_name, availability_zone=v.get("availability_zone"),
        attachments=tuple(ev.VolumeAttachment(str(a["server_id"]), str(a["attachment_id"]))
                          for a in v.get("attachments") or ()),
        multiattach=parse_bool(v.get("multiattach"), "multiattach"), bootable=parse_bool(v.get("bootable"), "bootable"),
        snapshot_id=v.get("snapshot_id"), metadata=nova_values.str_map(v.get("metadata"), "'metadata'"),
        created_at=created,
    )


class CinderReader(ServiceReader):
    """A storage reader for :class:`~eventmodel.sources.sync.Snapshotter` (``service=
    "storage"``) over the connection, session and request counter of ``base``."""

    SERVICE = SERVICE
    CATALOG_TYPES = BLOCK_STORAGE_TYPES
    PROXY = "block_storage"
    VERSIONS = VOLUME_VERSIONS

    def __init__(self, base: OpenStackReader, *, page_size: int = 1000) -> None:
        super().__init__(base, page_size=page_size)
        self._type_ids: dict[str, str] = {}

    def list_storage_nodes(self) -> list[ev.StorageNode]:
        body = self._get("/os-services", {"binary": "cinder-volume"})
        out = []
        for s in OpenStackReader._field(body, "services", "/os-services"):
            with _documented("a service of /os-services", s):
                if s.get("binary", "cinder-volume") == "cinder-volume":
                    out.append(storage_node_from_api(s))
        return out

    def list_volume_types(self) -> list[ev.VolumeType]:
        body = self._get("/types", {"is_public": "None"})
        out = []
        for t in OpenStackReader._field(body, "volume_types", "/types"):
            with _documented("a volume type of /types", t):
                out.append(volume_type_from_api(t))
        self._type_ids = {t.name: t.id for t in out}
        return out

    def list_pools(self) -> list[ev.StoragePool]:
        body = self._get("/scheduler-stats/get_pools", {"detail": "True"})
        out = []
        for p in OpenStackReader._field(body, "pools", "/scheduler-stats/get_pools"):
            with _documented("a pool of /scheduler-stats/get_pools", p):
                out.append(pool_from_api(p))
        return out

    def _volume_page(self, limit: int, marker: str | None) -> tuple[list[ev.Volume], bool] | None:
        params: dict[str, Any] = {"all_tenants": "True", "limit": limit}
        if marker is not None:
            params["marker"] = marker
        body = self._get("/volumes/detail", params, missing_ok=marker is not None)
        if body is None:  # the marker volume was deleted since the last page
            return None
        page = OpenStackReader._field(body, "volumes", "/volumes/detail")
        out = []
        for v in page:
            with _documented("a volume of /volumes/detail", v):
                out.append(volume_from_api(v, self._type_ids))
        return out, _has_next(body.get("volumes_links"), len(out), limit)

    def volume_pages(self, limit: int | None = None) -> Iterator[list[ev.Volume]]:
        """Every volume, a page at a time, the next page fetched while this one is stored
        (see :func:`~eventmodel.sources.service_reader.follow_markers`)."""
        return follow_markers(self._volume_page, limit or self.page_size, ahead=True)

    def get_volume(self, uuid: str) -> ev.Volume | None:
        """One volume by id (``GET /volumes/{id}``); None when Cinder answers 404."""
        url = "/volumes/" + quote(uuid, safe="")
        body = self._get(url, missing_ok=True)
        if body is None:
            return None
        v = OpenStackReader._field(body, "volume", url)
        with _documented("a volume of " + url, v):
            return volume_from_api(v, self._type_ids)
