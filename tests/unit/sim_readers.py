"""In-process readers of the simulated Cinder and Ironic for a storage or baremetal
:class:`~eventmodel.sources.sync.Snapshotter` (``service="storage"`` / ``"baremetal"``),
as the :class:`~eventmodel.sim.cloud.SimCloud` itself is the compute sync's reader (a
test helper: the simulator imports no sources, so they live beside the tests).

They read what the sim's Block Storage and Bare Metal APIs serve, decoded by the HTTP
readers' own functions (:mod:`eventmodel.sources.storage_sync`,
:mod:`eventmodel.sources.baremetal_sync`): a volume and a node go through the API's
JSON record and back, storage nodes and volume types carry the lowest version as the
API gives them none. Every read holds ``lock`` (the sync reads pools on a thread of its
own and re-reads on a pool, while ``during_listing`` changes the sim), as the HTTP
server holds its lock around a request. The HTTP variants are tested in
``tests/integration``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs

from eventmodel import events as ev
from eventmodel.sim.api_baremetal import Baremetal
from eventmodel.sim.api_block_storage import BlockStorage
from eventmodel.sim.api_common import BAREMETAL_MAX, VOLUME_MAX
from eventmodel.sim.truth import OperationError
from eventmodel.sources.baremetal_sync import baremetal_node_from_api
from eventmodel.sources.service_reader import follow_markers
from eventmodel.sources.storage_sync import volume_from_api

BASE = "http://sim.invalid"
T = TypeVar("T")


def _page(lock: threading.RLock, listing: Callable[..., list[T]], decode: Callable[[T], T], limit: int,
          marker: str | None) -> tuple[list[T], bool] | None:
    """One page of ``listing`` after ``marker``, decoded as the API serves it; None for the
    API's 404 (the marker is gone)."""
    with lock:
        try:
            page = [decode(x) for x in listing(limit=limit, marker=marker)]
        except OperationError:
            return None
    return page, len(page) == limit


class SimStorageReader:
    """The storage sync's reads of ``sim`` (a SimCloud with volumes)."""

    def __init__(self, sim: Any, lock: threading.RLock | None = None) -> None:
        self.sim = sim
        self.lock = lock or threading.RLock()
        self._api = BlockStorage(sim, self.lock)

    def list_volume_types(self) -> list[ev.VolumeType]:
        with self.lock:
            return [attrs.evolve(t, version=ev.LOWEST_VERSION) for t in self.sim.storage.state.volume_types.values()]

    def list_storage_nodes(self) -> list[ev.StorageNode]:
        with self.lock:
            return [attrs.evolve(n, version=ev.LOWEST_VERSION) for n in self.sim.storage.state.nodes.values()]

    def list_pools(self) -> list[ev.StoragePool]:
        with self.lock:
            return [attrs.evolve(p, virtual_free_gb=None) for p in self.sim.storage.state.pools.values()]

    def _decode(self, v: ev.Volume) -> ev.Volume:
        return volume_from_api(self._api.record(self.sim.storage, v, VOLUME_MAX, BASE), {})

    def volume_pages(self, limit: int) -> Iterator[list[ev.Volume]]:
        return follow_markers(lambda n, marker: _page(self.lock, self.sim.list_volumes, self._decode, n, marker),
                              limit)

    def get_volume(self, uuid: str) -> ev.Volume | None:
        with self.lock:
            v = self.sim.get_volume(uuid)
            return None if v is None else self._decode(v)


class SimBaremetalReader:
    """The baremetal sync's reads of ``sim`` (a SimCloud with bare-metal nodes)."""

    def __init__(self, sim: Any, lock: threading.RLock | None = None) -> None:
        self.sim = sim
        self.lock = lock or threading.RLock()
        self._api = Baremetal(sim, self.lock)

    def _decode(self, n: ev.BaremetalNode) -> ev.BaremetalNode:
        return baremetal_node_from_api(self._api.record(self.sim.ironic, n, BAREMETAL_MAX, BASE))

    def baremetal_pages(self, limit: int) -> Iterator[list[ev.BaremetalNode]]:
        return follow_markers(
            lambda n, marker: _page(self.lock, self.sim.list_baremetal_nodes, self._decode, n, marker), limit)

    def get_baremetal_node(self, uuid: str) -> ev.BaremetalNode | None:
        with self.lock:
            n = self.sim.get_baremetal_node(uuid)
            return None if n is None else self._decode(n)
