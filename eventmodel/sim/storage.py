"""The simulated Cinder's ground truth: storage nodes, pools, volume types, volumes.

:class:`StorageTruth` is the one mutable storage state the simulated Cinder's parts
share (its operations change it, its notifications describe the changes, its API
reads it). Every volume change goes through :meth:`StorageTruth.put_volume` /
:meth:`StorageTruth.drop_volume`, which keep each pool's figures equal to what its
volumes add up to: ``allocated`` = ``provisioned`` = the sum of their sizes (thick
provisioning), ``free`` = ``total - allocated``, ``total_volumes`` their count — or,
for a backend that reports ``infinite`` capacity, no total and no free, no
``total_volumes`` (such drivers do not report it). :func:`diff_storage` compares a
model with the truth as :func:`~eventmodel.sim.truth.diff_truth` does for compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from eventmodel.events import StorageNode, StoragePool, Volume, VolumeType
from eventmodel.sim.truth import compared_fields as _compared
from eventmodel.sim.truth import diff_table


@attrs.frozen(slots=True, eq=False)
class StorageState:
    """A copy of the storage truth at ``time_us``; never changed afterwards."""

    nodes: dict[str, StorageNode]
    pools: dict[str, StoragePool]
    volume_types: dict[str, VolumeType]
    volumes: dict[str, Volume]
    time_us: int


class StorageTruth:
    """What the simulated Cinder really holds right now (mutable).

    ``pool_total`` is each bounded pool's size in GB; a pool whose name is in
    ``infinite`` reports ``infinite`` capacity. ``updated_at`` keeps each volume's
    last save (None: never saved since created; its version is then its created_at)."""

    def __init__(self) -> None:
        self.nodes: dict[str, StorageNode] = {}
        self.pools: dict[str, StoragePool] = {}
        self.volume_types: dict[str, VolumeType] = {}
        self.volumes: dict[str, Volume] = {}
        self.pool_total: dict[str, float] = {}
        self.infinite: set[str] = set()
        #: per pool: [volume count, GB allocated]
        self.usage: dict[str, list[int]] = {}
        #: volume uuid → updated_at (µs, whole seconds) or None
        self.updated_at: dict[str, int | None] = {}
        #: the volumes sorted as Cinder lists them (created_at desc, id desc), rebuilt on demand
        self._order: list[str] | None = None

    # -- building ----------------------------------------------------------------
    def add_node(self, node: StorageNode) -> None:
        self.nodes[node.host] = node

    def add_pool(self, name: str, total_gb: float | None, reported_us: int) -> None:
        """A pool of ``total_gb`` (None: the backend reports ``infinite``), empty."""
        if total_gb is None:
            self.infinite.add(name)
        else:
            self.pool_total[name] = float(total_gb)
        self.usage[name] = [0, 0]
        self.pools[name] = self._figures(name, reported_us)

    def add_type(self, vt: VolumeType) -> None:
        self.volume_types[vt.id] = vt

    # -- reading -------------------------------------------------------------------
    def snapshot(self, time_us: int) -> StorageState:
        return StorageState(dict(self.nodes), dict(self.pools), dict(self.volume_types), dict(self.volumes), time_us)

    def pool_free(self, name: str) -> float | None:
        """GB free in a pool (None: unbounded)."""
        if name in self.infinite:
            return None
        return self.pool_total[name] - self.usage[name][1]

    def fits(self, name: str, size_gb: int) -> bool:
        free = self.pool_free(name)
        return free is None or free >= size_gb

    def ordered(self) -> list[str]:
        """Volume uuids in Cinder's listing order: created_at desc, id desc."""
        if self._order is None:
            vols = self.volumes
            self._order = sorted(vols, key=lambda u: (vols[u].created_at or 0, u), reverse=True)
        return self._order

    def place(self, uuid: str) -> int:
        """Where volume ``uuid`` stands in :meth:`ordered` (a binary search: the order is
        descending by (created_at, id))."""
        order, vols = self.ordered(), self.volumes
        key = (vols[uuid].created_at or 0, uuid)
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            v = vols[order[mid]]
            if (v.created_at or 0, v.uuid) > key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # -- changing -------------------------------------------------------------------
    def put_volume(self, new: Volume, updated_at: int | None, reported_us: int) -> set[str]:
        """Create or replace a volume; the pools it left or joined are recomputed
        (reported at ``reported_us``). Returns the names of the pools whose figures changed."""
        old = self.volumes.get(new.uuid)
        if old is None:
            self._order = None
        self.volumes[new.uuid] = new
        self.updated_at[new.uuid] = updated_at
        return self._move(old, new, reported_us)

    def drop_volume(self, uuid: str, reported_us: int) -> set[str]:
        old = self.volumes.pop(uuid)
        self.updated_at.pop(uuid, None)
        if self._order is not None:
            self._order.remove(uuid)
        return self._move(old, None, reported_us)

    def _move(self, old: Volume | None, new: Volume | None, reported_us: int) -> set[str]:
        changed: set[str] = set()
        if old is not None and old.host in self.usage:
            u = self.usage[old.host]
            u[0] -= 1
            u[1] -= old.size_gb
            changed.add(old.host)  # type: ignore[arg-type]
        if new is not None and new.host in self.usage:
            u = self.usage[new.host]
            u[0] += 1
            u[1] += new.size_gb
            changed.add(new.host)  # type: ignore[arg-type]
        out = set()
        for name in changed:
            before = self.pools[name]
            after = self._figures(name, reported_us)
            if attrs.evolve(after, version=before.version) != before:
                self.pools[name] = after
                out.add(name)
        return out

    def _figures(self, name: str, reported_us: int) -> StoragePool:
        count, allocated = self.usage[name]
        if name in self.infinite:
            return StoragePool(name, reported_us, None, None, float(allocated), float(allocated), None, None,
                               "infinite")
        total = self.pool_total[name]
        free = total - allocated
        return StoragePool(name, reported_us, total, free, float(allocated), float(allocated), free, count)


# ---------------------------------------------------------------------------
# Comparing a model with the truth
# ---------------------------------------------------------------------------


#: compared fields per kind. A pool's ``virtual_free_gb`` is the scheduler's estimate
#: (its over-subscription settings): the API does not show it, only ``capacity.pool``
#: does, so it is not compared.
STORAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "storage node": _compared(StorageNode),
    "pool": _compared(StoragePool, "virtual_free_gb"),
    "volume type": _compared(VolumeType),
    "volume": _compared(Volume),
}


def diff_storage(
    truth: StorageState,
    nodes: Mapping[str, StorageNode],
    pools: Mapping[str, StoragePool],
    volumes: Mapping[str, Volume],
    volume_types: Mapping[str, VolumeType] | None = None,
) -> list[str]:
    """Human-readable differences between the storage truth and a model (``version``
    and a pool's ``virtual_free_gb`` ignored); empty when they are equal. Volume types
    are compared when ``volume_types`` (id → VolumeType) is given."""
    kinds: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [
        ("storage node", truth.nodes, nodes),
        ("pool", truth.pools, pools),
        ("volume", truth.volumes, volumes),
    ]
    if volume_types is not None:
        kinds.append(("volume type", truth.volume_types, volume_types))
    return [line for kind, want, got in kinds for line in diff_table(kind, STORAGE_FIELDS[kind], want, got)]
