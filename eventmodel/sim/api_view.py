"""How the simulated cloud's HTTP API reads the sim: every read in one class, through
the sim's public methods (its listings, with their faults and hooks) and, for single
lookups without listing side effects, the live maps of its ground truth."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from eventmodel.events import ComputeNode, ComputeService, Instance, PartialInstance
from eventmodel.sim import notifications as N


def sim_lock(sim: Any) -> threading.RLock:
    """The lock that guards a sim's truth (``sim.truth_lock``), created on first use."""
    lock = getattr(sim, "truth_lock", None)
    if lock is None:
        lock = threading.RLock()
        sim.truth_lock = lock
    return lock


class SimView:
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
