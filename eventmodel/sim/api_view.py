"""How the simulated cloud's HTTP API reads the sim: every read in one class, through
the sim's listings (with their faults and hooks) and, for single lookups without
listing side effects, the live maps of its ground truth (``SimCloud.state``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventmodel.events import (
    Aggregate,
    ComputeNode,
    ComputeService,
    Instance,
    PartialInstance,
)
from eventmodel.sim import notifications as N

if TYPE_CHECKING:
    from eventmodel.sim.cloud import SimCloud


def sim_lock(sim: Any) -> threading.RLock:
    """The lock that guards a sim's truth (``sim.truth_lock``), created on first use."""
    lock = getattr(sim, "truth_lock", None)
    if lock is None:
        lock = threading.RLock()
        sim.truth_lock = lock
    return lock


class SimView:
    """Every read of the sim in one place: its listings, and its ground truth (``state``)
    for single lookups."""

    def __init__(self, sim: SimCloud) -> None:
        self.sim = sim
        self._node_by_uuid: dict[str, str] = {}

    # the sim's own listings (its listing faults and hooks apply)
    def list_services(self) -> list[ComputeService]:
        return list(self.sim.list_services())

    def list_nodes(self) -> list[ComputeNode]:
        return list(self.sim.list_nodes())

    def list_servers(self, limit: int, marker: str | None) -> list[Instance | PartialInstance]:
        return self.sim.list_servers(limit=limit, marker=marker)

    def list_aggregates(self) -> list[Aggregate]:
        return list(self.sim.list_aggregates())

    def get_server(self, uuid: str) -> Instance | PartialInstance | None:
        """One server by uuid (Nova's show server; its ``during_listing`` hook applies)."""
        return self.sim.get_server(uuid)

    # single entities, live and without listing side effects (the ground truth)
    def services_by_host(self) -> Mapping[str, ComputeService]:
        return self.sim.state.services

    def node(self, uuid: str) -> ComputeNode | None:
        nodes = self.sim.state.nodes
        if uuid not in self._node_by_uuid:
            self._node_by_uuid = {n.uuid: n.name for n in nodes.values() if n.uuid}
        name = self._node_by_uuid.get(uuid)
        return nodes.get(name) if name is not None else None

    def aggregates_of(self, host: str | None) -> list[str]:
        """The uuids of the aggregates a host is in."""
        if host is None:
            return []
        return sorted(a.uuid for a in self.sim.state.aggregates.values() if host in a.hosts)

    def usage(self, host: str) -> tuple[int, int, int]:
        return self.sim.usage(host)

    def created(self, uuid: str) -> int | None:
        """When an instance was created (µs): its own ``created_at``, else its extras'."""
        return self.sim.extras(uuid).created_at

    def extras(self, uuid: str) -> N.InstanceExtras | None:
        """What the sim's notifications say of an instance beyond its entity (image, ip, ...)."""
        return self.sim.extras(uuid)

    @property
    def has_block_storage(self) -> bool:
        """Whether the sim has a Cinder (volumes): then the catalog lists it."""
        return getattr(self.sim, "cinder", None) is not None

    @property
    def has_baremetal(self) -> bool:
        """Whether the sim has an Ironic (bare-metal nodes): then the catalog lists it."""
        return getattr(self.sim, "ironic", None) is not None

    @property
    def admin_user(self) -> str:
        return self.sim.admin_user

    @property
    def admin_project(self) -> str:
        return self.sim.admin_project
