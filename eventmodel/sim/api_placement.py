"""Placement (1.0–1.39) of the simulated cloud: version document, resource providers
(one per compute node, same uuid), their inventories (VCPU, MEMORY_MB, DISK_GB),
usages and aggregates."""

from __future__ import annotations

import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from eventmodel.events import ComputeNode
from eventmodel.sim.api_common import (
    PLACEMENT_MAX,
    PLACEMENT_MIN,
    SimApiError,
    error_body,
    fmt,
    json_response,
)
from eventmodel.sim.api_view import SimView


class Placement:
    """The simulated Placement's routes; reads hold ``lock``."""

    def __init__(self, view: SimView, lock: threading.RLock) -> None:
        self.view = view
        self.lock = lock
        self._generations: dict[str, tuple[tuple[int, int, int], int]] = {}

    async def placement_versions(self, request: Request) -> Response:
        return json_response({"versions": [{
            "id": "v1.0", "max_version": fmt(PLACEMENT_MAX), "min_version": fmt(PLACEMENT_MIN),
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
            raise SimApiError(404, f"No resource provider with uuid {uuid} found")
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
        return json_response({"resource_providers": recs})

    async def resource_provider(self, request: Request) -> Response:
        try:
            with self.lock:
                return json_response(self._provider_view(self._provider(request), request.state.mv))
        except SimApiError as exc:
            return json_response(error_body("placement", exc.status, exc.message), exc.status)

    async def inventories(self, request: Request) -> Response:
        try:
            with self.lock:
                n = self._provider(request)
                gen = self._generation(n)
        except SimApiError as exc:
            return json_response(error_body("placement", exc.status, exc.message), exc.status)

        def inv(total: int, reserved: int, ratio: float) -> dict[str, Any]:
            return {"total": total, "reserved": reserved, "min_unit": 1, "max_unit": total, "step_size": 1,
                    "allocation_ratio": ratio}

        return json_response({"resource_provider_generation": gen, "inventories": {
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
        except SimApiError as exc:
            return json_response(error_body("placement", exc.status, exc.message), exc.status)
        return json_response({"resource_provider_generation": gen, "usages": {"VCPU": cpu, "MEMORY_MB": ram, "DISK_GB": disk}})

    async def rp_aggregates(self, request: Request) -> Response:
        mv: tuple[int, int] = request.state.mv
        if mv < (1, 1):
            return json_response(error_body("placement", 404, "The resource could not be found."), 404)
        try:
            with self.lock:
                n = self._provider(request)
                gen = self._generation(n)
                aggs = self.view.aggregates_of(n.host)
        except SimApiError as exc:
            return json_response(error_body("placement", exc.status, exc.message), exc.status)
        body: dict[str, Any] = {"aggregates": aggs}
        if mv >= (1, 19):
            body["resource_provider_generation"] = gen
        return json_response(body)
