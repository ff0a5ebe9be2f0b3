"""Reading Ironic for a baremetal full sync, through the same openstacksdk connection as
the compute sync (:class:`~eventmodel.sources.openstack.OpenStackReader`).

The requests are those of openstacksdk's ``baremetal`` proxy — ``nodes(details=True)``
and ``get_node(id)`` — sent as GETs on the connection's keystoneauth session at the
endpoint the catalog names (``baremetal``) with an explicit microversion (keystoneauth
sends it as ``OpenStack-API-Version: baremetal X`` and ``X-OpenStack-Ironic-API-Version``),
and decoded straight into :class:`~eventmodel.events.BaremetalNode`:

- ``GET /v1/nodes/detail`` paged by ``limit``/``marker`` while the answer has a
  ``next`` link; Ironic answers 404 when the marker node was deleted meanwhile, and the
  reader then asks again after the node listed before it (:func:`follow_markers`);
- ``GET /v1/nodes/{uuid}`` for a sync's follow-up reads (None on 404).

Values follow the notification normalizer's rules (:mod:`eventmodel.sources.ironic.values`):
version = ``updated_at`` else ``created_at`` floored to the second, ``extra`` verbatim.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from eventmodel import events as ev
from eventmodel.sources.ironic import values as iv
from eventmodel.sources.nova import values as nova_values
from eventmodel.sources.openstack import CloudApiError, OpenStackReader, _documented
from eventmodel.sources.service_reader import ServiceReader, follow_markers

#: the Bare Metal microversions this reader uses (lowest needed: ``resource_class`` 1.21)
BAREMETAL_VERSIONS = ("1.21", "1.109")
SERVICE = "baremetal"


def baremetal_node_from_api(n: Mapping[str, Any]) -> ev.BaremetalNode:
    """A node of ``/v1/nodes/detail`` or ``/v1/nodes/{uuid}``."""
    version = nova_values.version_of(dict(n), iv.NODE_VERSION_FIELDS)
    return ev.BaremetalNode(
        uuid=str(n["uuid"]), version=version, name=n.get("name"), power_state=n.get("power_state"),
        provision_state=n.get("provision_state"), maintenance=bool(n.get("maintenance") or False),
        maintenance_reason=n.get("maintenance_reason"), resource_class=n.get("resource_class"),
        instance_uuid=n.get("instance_uuid"), extra=iv.extra(n.get("extra")),
    )


class IronicReader(ServiceReader):
    """A baremetal reader for :class:`~eventmodel.sources.sync.Snapshotter` (``service=
    "baremetal"``) over the connection, session and request counter of ``base``; the
    catalog lists Ironic unversioned, as Ironic registers it."""

    SERVICE = SERVICE
    CATALOG_TYPES = (SERVICE,)
    PROXY = "baremetal"
    VERSIONS = BAREMETAL_VERSIONS
    VERSION_PATH = "/v1"

    def _page(self, limit: int, marker: str | None) -> tuple[list[ev.BaremetalNode], bool] | None:
        params: dict[str, Any] = {"limit": limit}
        if marker is not None:
            params["marker"] = marker
        body = self._get("/nodes/detail", params, missing_ok=marker is not None)
        if body is None:  # the marker node is gone
            return None
        out = []
        for n in OpenStackReader._field(body, "nodes", "/nodes/detail"):
            with _documented("a node of /nodes/detail", n):
                out.append(baremetal_node_from_api(n))
        return out, bool(body.get("next")) and len(out) > 0

    def baremetal_pages(self, limit: int | None = None) -> Iterator[list[ev.BaremetalNode]]:
        """Every node, a page at a time (following the ``next`` links; see :func:`follow_markers`)."""
        return follow_markers(self._page, limit or self.page_size)

    def list_baremetal_nodes(self) -> list[ev.BaremetalNode]:
        return [n for page in self.baremetal_pages() for n in page]

    def get_baremetal_node(self, uuid: str) -> ev.BaremetalNode | None:
        """One node by uuid (``GET /v1/nodes/{uuid}``); None when Ironic answers 404."""
        url = "/nodes/" + quote(uuid, safe="")
        body = self._get(url, missing_ok=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise CloudApiError(f"GET {url}: the answer is not an object")
        with _documented("the node of " + url, body):
            return baremetal_node_from_api(body)
