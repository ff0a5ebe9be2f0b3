"""A StorageModelRoot-compatible view of one model snapshot, for Watcher's strategies (ADR 0019).

:class:`StorageView` answers the calls Watcher's storage strategies (``zone_migration``,
``storage_capacity_balance``), its storage audit scope and its planners make on the
storage model (``get_all_volumes``, ``get_node_by_name``, ``get_pool_volumes``,
``remove_volume``, ``to_string``, ``stale``, ...) with Watcher's own ``StorageNode``,
``Pool`` and ``Volume`` element classes, built only when asked for (cheaply:
:mod:`projections.watcher.storage_elements`). Creating a view is
O(1); the pool → volumes and node → pools index is built once per model version
(:func:`storage_index`, shareable between the views of one snapshot) and every call
after that costs what it returns. Changes (the audit scope's exclusions, what-ifs)
go to the view's copy-on-write layer; the snapshot and every other view never see them.

What is in the view, and in what order (Watcher's Cinder collector decides both for
its own model; ``zone_migration`` plans volumes in ``get_all_volumes()`` order):

- storage nodes: every cinder-volume service of the model, by host (Watcher: in the
  order Cinder lists its services);
- pools: every pool, by name (Watcher: the scheduler's listing order), mapped to the
  node named before its ``#`` when that node is in the model (else unmapped, as Watcher);
- volumes: every volume, in the order Cinder lists them, which is the order Watcher's
  collector inserts them in: newest ``created_at`` first, ties by uuid descending
  (Cinder breaks ties by id, the volume's uuid), volumes without a creation time last;
  mapped to the pool their ``host`` names when that pool is in the model (else unmapped);
- ``order="given"`` (the default for a model read from a Watcher storage XML file or a
  ``StorageModelRoot``, :mod:`projections.watcher.storage_convert`): the source's own
  order and mapping;
- later ``add_*`` calls append, as networkx does.

Field values (as Watcher's collector sets them, differences noted):

- ``StorageNode``: ``host``, ``zone``, ``status`` (``enabled``/``disabled``), ``state``
  (``up``/``down``), ``volume_type`` = names (sorted) of the volume types whose
  ``volume_backend_name`` is the node's backend (the part after ``@``). Watcher's
  collector lists public types only; the model knows private ones too and lists them.
- ``Pool``: capacities truncated to whole GB as Watcher's ``int()`` does; a capacity the
  backend reports as ``infinite``/``unknown`` (None in the model) or a negative one is 0
  and logged once per model version — Watcher's collector fails the whole storage model
  on such a pool. ``total_volumes`` 0 when the driver does not report it (as Watcher);
  ``virtual_free`` from the last ``capacity.pool`` report (Watcher: 0 after a sync).
- ``Volume``: ``volume_type`` = the type's name (resolved from its id through the type
  table when only the id is known, the id itself when the table does not have it);
  ``bootable`` is the volume's real flag — Watcher's collector passes the string
  ``"false"``/``"true"``, which the boolean field turns into True for every volume;
  ``created_at`` as Cinder's API prints it (``2026-01-02T03:04:05.000000``); ``host``
  ``""``, ``volume_type`` ``""`` and ``project_id`` ``""`` when unknown (Watcher's
  collector fails on None), ``created_at`` unset when unknown.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

from eventmodel.events import StorageNode as ModelStorageNode
from eventmodel.events import StoragePool
from eventmodel.events import Volume as ModelVolume
from projections.model import ClusterModel
from projections.watcher.view import INSTALL_HINT, WatcherMissing

_log = logging.getLogger(__name__)

StorageOrder = Literal["collector", "given"]
STORAGE_ORDERS: tuple[str, ...] = ("collector", "given")
NODE, POOL, VOLUME = "node", "pool", "volume"
CAPACITIES = ("total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb", "allocated_capacity_gb")


def watcher_modules() -> tuple[Any, Any, Any]:
    """Watcher's ``element`` and ``exception`` modules and networkx, or a clear error."""
    try:
        with warnings.catch_warnings():  # eventlet, oslo deprecations on import
            warnings.simplefilter("ignore")
            element = importlib.import_module("watcher.decision_engine.model.element")
            exception = importlib.import_module("watcher.common.exception")
            networkx = importlib.import_module("networkx")
    except ImportError as exc:
        raise WatcherMissing(f"the Watcher integration needs python-watcher 17 ({exc}): {INSTALL_HINT}") from exc
    return element, exception, networkx


def debug_enabled(logger: Any) -> bool:
    """Whether ``logger`` (oslo.log adapter or logging.Logger) would emit DEBUG; True when unsure."""
    check = getattr(logger, "isEnabledFor", None)
    try:
        return bool(check(logging.DEBUG)) if check is not None else True
    except Exception:  # noqa: BLE001 - an odd logger: build the text
        return True


# ---------------------------------------------------------------------------
# Field mapping (pure: no Watcher import)
# ---------------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1)


def created_text(us: int) -> str:
    """``created_at`` (µs, UTC) as Cinder's API prints it and Watcher's collector stores it."""
    return (_EPOCH + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%f")


def types_by_backend(model: ClusterModel) -> dict[str, tuple[str, ...]]:
    """Backend name (``volume_backend_name``) → the names of the volume types selecting it, sorted."""
    out: dict[str, list[str]] = {}
    for t in model.volume_types().values():
        if t.backend_name:
            out.setdefault(t.backend_name, []).append(t.name)
    return {k: tuple(sorted(set(v))) for k, v in out.items()}


def type_names(model: ClusterModel) -> dict[str, str]:
    """Volume type id → name."""
    return {t.id: t.name for t in model.volume_types().values()}


def storage_node_values(node: ModelStorageNode, by_backend: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Watcher ``StorageNode`` field values for ``node``."""
    return {
        "host": node.host,
        "zone": node.zone or "",
        "status": "disabled" if node.disabled else "enabled",
        "state": "up" if node.up else "down",
        "volume_type": list(by_backend.get(node.backend, ())),
        "uuid": "",
        "human_id": "",
    }


def pool_values(pool: StoragePool) -> tuple[dict[str, Any], list[str]]:
    """Watcher ``Pool`` field values for ``pool``, and what had to be replaced by 0 (why)."""
    problems: list[str] = []

    def gb(field: str, value: float | None) -> int:
        if value is None:
            problems.append(f"{field} {pool.unbounded or 'unknown'}")
            return 0
        if value < 0:
            problems.append(f"{field} {value}")
            return 0
        return int(value)

    values: dict[str, Any] = {"name": pool.name, "total_volumes": max(0, pool.total_volumes or 0)}
    for f in CAPACITIES:
        values[f] = gb(f, getattr(pool, f))
    vf = pool.virtual_free_gb
    values["virtual_free"] = 0 if vf is None else gb("virtual_free", vf)
    values["uuid"] = ""
    values["human_id"] = ""
    return values, problems


def volume_type_name(vol: ModelVolume, names: Mapping[str, str]) -> str:
    """The volume's type name: its own, else the type table's for its id, else the id, else ``""``."""
    if vol.volume_type:
        return vol.volume_type
    if vol.volume_type_id:
        return names.get(vol.volume_type_id, vol.volume_type_id)
    return ""


def volume_values(vol: ModelVolume, names: Mapping[str, str]) -> dict[str, Any]:
    """Watcher ``Volume`` field values for ``vol`` (see module doc)."""
    v: dict[str, Any] = {
        "size": max(0, int(vol.size_gb)),
        "status": vol.status,
        "attachments": [{"server_id": a.server_id, "attachment_id": a.attachment_id} for a in vol.attachments],
        "name": vol.name or "",
        "multiattach": bool(vol.multiattach),
        "snapshot_id": vol.snapshot_id or None,
        "metadata": dict(vol.metadata),
        "bootable": bool(vol.bootable),
        "volume_type": volume_type_name(vol, names),
        "host": vol.host or "",
        "uuid": vol.uuid,
        "human_id": "",
    }
    if vol.project_id:
        v["project_id"] = vol.project_id
    if vol.created_at is not None:
        v["created_at"] = created_text(vol.created_at)
    return v


def volume_element(element: Any, values: dict[str, Any]) -> Any:
    """Watcher's ``Volume`` holding ``values``; an unknown project is ``""``
    (:mod:`projections.watcher.storage_elements`: Watcher's UUID field refuses ``""``, and
    its storage audit scope reads every volume's ``project_id``)."""
    if "project_id" in values:
        return element.Volume(**values)
    from projections.watcher.storage_elements import Volume

    el = Volume(**values)
    el._obj_project_id = ""
    return el


def _listing_key(vol: ModelVolume) -> tuple[int, str]:
    return (vol.created_at if vol.created_at is not None else -1, vol.uuid)


# ---------------------------------------------------------------------------
# The index: order and mapping, once per model version
# ---------------------------------------------------------------------------

@attrs.frozen
class StorageIndex:
    """Order and mapping of one snapshot's storage entities (see module doc)."""

    nodes: tuple[str, ...]
    pools: tuple[str, ...]
    volumes: tuple[str, ...]
    #: volume uuid → its pool, pool name → its node (mapped ones only)
    up: dict[str, str]
    #: pool name → its volumes, node host → its pools, in order
    down: dict[str, tuple[str, ...]]
    by_backend: dict[str, tuple[str, ...]]
    type_names: dict[str, str]
    #: pool name → the capacities shown as 0 (infinite/unknown/negative)
    problems: dict[str, list[str]]
    members: dict[str, frozenset[str]]  # kind → keys


def _ordered(given: tuple[str, ...], table: Mapping[str, Any], rest: list[str]) -> tuple[str, ...]:
    """``given`` keys that are in ``table``, then the others in ``rest`` order."""
    seen = dict.fromkeys(k for k in given if k in table)
    return tuple(seen) + tuple(k for k in rest if k not in seen)


def storage_index(model: ClusterModel, order: StorageOrder = "collector") -> StorageIndex:
    """The order and mapping of ``model``'s storage entities; logs pools shown with a 0 capacity."""
    nodes_t, pools_t, vols_t = model.storage_nodes(), model.pools(), model.volumes()
    nodes = sorted(nodes_t)
    pools = sorted(pools_t)
    vols = [v.uuid for v in sorted(vols_t.values(), key=_listing_key, reverse=True)]
    no_pool: frozenset[str] = frozenset()
    no_node: frozenset[str] = frozenset()
    given = model.given_storage_order
    if order == "given" and given is not None:
        nodes = list(_ordered(given[0], nodes_t, nodes))
        pools = list(_ordered(given[1], pools_t, pools))
        vols = list(_ordered(given[2], vols_t, vols))
        no_node, no_pool = frozenset(given[3]), frozenset(given[4])
    up: dict[str, str] = {}
    down: dict[str, list[str]] = {}
    for p in pools:
        n = pools_t[p].node
        if n in nodes_t and p not in no_node:
            up[p] = n
            down.setdefault(n, []).append(p)
    for u in vols:
        h = vols_t[u].host
        if h is not None and h in pools_t and u not in no_pool:
            up[u] = h
            down.setdefault(h, []).append(u)
    problems = {}
    for p in pools:
        bad = pool_values(pools_t[p])[1]
        if bad:
            problems[p] = bad
    if problems:
        _log.warning("%d storage pool(s) report no usable number for a capacity; the view shows 0 "
                     "(Watcher's own collector fails the whole storage model on them): %s", len(problems),
                     "; ".join(f"{p}: {', '.join(b)}" for p, b in sorted(problems.items())[:10]))
    return StorageIndex(
        nodes=tuple(nodes), pools=tuple(pools), volumes=tuple(vols), up=up,
        down={k: tuple(v) for k, v in down.items()}, by_backend=types_by_backend(model),
        type_names=type_names(model), problems=problems,
        members={NODE: frozenset(nodes), POOL: frozenset(pools), VOLUME: frozenset(vols)},
    )


# ---------------------------------------------------------------------------
# The view
# ---------------------------------------------------------------------------

class StorageView:
    """A ``StorageModelRoot``-compatible storage model over one immutable snapshot (module doc).

    ``index`` may be passed when several views of one snapshot are made (the collector
    does): it must be :func:`storage_index` of the same model and order."""

    def __init__(self, model: ClusterModel, *, order: StorageOrder | None = None,
                 index: StorageIndex | None = None) -> None:
        if order is None:
            order = "given" if model.given_storage_order is not None else "collector"
        if order not in STORAGE_ORDERS:
            raise ValueError(f"order must be one of {STORAGE_ORDERS}, not {order!r}")
        self._E, self._X, self._nx = watcher_modules()
        self.model = model
        self.order: StorageOrder = order
        self._index = index
        #: as StorageModelRoot.stale: True when the snapshot may be out of date (see stale_reason)
        self.stale: bool = bool(model.stale)
        self.stale_reason: str | None = model.stale
        self.changes = 0
        # copy-on-write layer
        self._els: dict[str, Any] = {}  # built (or added) elements
        self._gone: set[str] = set()  # snapshot keys removed
        self._tail: dict[str, dict[str, None]] = {NODE: {}, POOL: {}, VOLUME: {}}  # added, in order
        self._up: dict[str, list[str]] = {}  # overrides: volume → pools, pool → nodes
        self._down: dict[str, list[str]] = {}  # overrides: pool → volumes, node → pools

    def __bool__(self) -> bool:
        return not self.stale

    @property
    def index(self) -> StorageIndex:
        if self._index is None:
            self._index = storage_index(self.model, self.order)
        return self._index

    # -- type checks (Watcher's) ------------------------------------------------------
    def _check(self, obj: Any, cls: Any) -> None:
        if not isinstance(obj, cls):
            raise self._X.IllegalArgumentException(message=f"'obj' argument type is not valid: {type(obj)}")

    def assert_node(self, obj: Any) -> None:
        self._check(obj, self._E.StorageNode)

    def assert_pool(self, obj: Any) -> None:
        self._check(obj, self._E.Pool)

    def assert_volume(self, obj: Any) -> None:
        self._check(obj, self._E.Volume)

    # -- membership and edges ---------------------------------------------------------
    def _has(self, kind: str, key: str) -> bool:
        if key in self._tail[kind]:
            return True
        return key not in self._gone and key in self.index.members[kind]

    def _order(self, kind: str) -> Iterator[str]:
        base = {NODE: self.index.nodes, POOL: self.index.pools, VOLUME: self.index.volumes}[kind]
        gone, tail = self._gone, self._tail[kind]
        for k in base:
            if k not in gone and k not in tail:
                yield k
        yield from tail

    def _ups(self, key: str) -> list[str] | tuple[str, ...]:
        got = self._up.get(key)
        if got is not None:
            return got
        parent = self.index.up.get(key)
        return (parent,) if parent is not None else ()

    def _downs(self, key: str) -> list[str] | tuple[str, ...]:
        got = self._down.get(key)
        return got if got is not None else self.index.down.get(key, ())

    def _own(self, layer: dict[str, list[str]], key: str, base: list[str] | tuple[str, ...]) -> list[str]:
        got = layer.get(key)
        if got is None:
            got = layer[key] = list(base)
        return got

    def _add_edge(self, child: str, parent: str) -> None:
        if parent in self._ups(child):
            return
        self._own(self._up, child, self._ups(child)).append(parent)
        self._own(self._down, parent, self._downs(parent)).append(child)

    def _remove_edge(self, child: str, parent: str) -> None:
        if parent not in self._ups(child):
            raise self._nx.NetworkXError(f"The edge {child}-{parent} not in graph.")
        self._own(self._up, child, self._ups(child)).remove(parent)
        self._own(self._down, parent, self._downs(parent)).remove(child)

    def _add(self, kind: str, key: str, el: Any) -> None:
        self.changes += 1
        if not self._has(kind, key):
            self._tail[kind][key] = None
            self._up[key] = []
            self._down[key] = []
        self._els[key] = el

    def _drop(self, kind: str, key: str) -> None:
        self.changes += 1
        for p in list(self._ups(key)):
            self._own(self._down, p, self._downs(p)).remove(key)
        for c in list(self._downs(key)):
            self._own(self._up, c, self._ups(c)).remove(key)
        self._up[key] = []
        self._down[key] = []
        if key in self._tail[kind]:
            del self._tail[kind][key]
        else:
            self._gone.add(key)
        self._els.pop(key, None)

    # -- elements ---------------------------------------------------------------------
    def _element(self, kind: str, key: str) -> Any:
        el = self._els.get(key)
        if el is None:
            ix = self.index
            from projections.watcher import storage_elements as se

            if kind == NODE:
                el = se.build(self._E.StorageNode, storage_node_values(self.model.storage_nodes()[key], ix.by_backend))
            elif kind == POOL:
                el = se.build(self._E.Pool, pool_values(self.model.pools()[key])[0])
            else:
                values = volume_values(self.model.volumes()[key], ix.type_names)
                el = se.build(self._E.Volume, values) if "project_id" in values else se.Volume.of(values)
            self._els[key] = el
        return el

    # -- reads (StorageModelRoot's API) -------------------------------------------------
    def get_all_storage_nodes(self) -> dict[str, Any]:
        return {k: self._element(NODE, k) for k in self._order(NODE)}

    def get_all_pools(self) -> dict[str, Any]:
        """Every pool (Watcher has no such method; for tools and tests)."""
        return {k: self._element(POOL, k) for k in self._order(POOL)}

    def get_all_volumes(self) -> dict[str, Any]:
        return {k: self._element(VOLUME, k) for k in self._order(VOLUME)}

    def get_node_by_name(self, name: str) -> Any:
        """The storage node ``host@backend``; a pool name finds its node (``#…`` is dropped)."""
        key = name.split("#")[0]
        if not self._has(NODE, key):
            raise self._X.StorageNodeNotFound(name=name)
        return self._element(NODE, key)

    def get_pool_by_pool_name(self, name: str) -> Any:
        if not self._has(POOL, name):
            raise self._X.PoolNotFound(name=name)
        return self._element(POOL, name)

    def get_volume_by_uuid(self, uuid: str) -> Any:
        if not self._has(VOLUME, uuid):
            raise self._X.VolumeNotFound(name=uuid)
        return self._element(VOLUME, uuid)

    def get_node_by_pool_name(self, pool_name: str) -> Any:
        if not self._has(POOL, pool_name):
            raise self._X.StorageResourceNotFound(name=pool_name)
        for n in self._ups(pool_name):
            return self._element(NODE, n)
        raise self._X.StorageNodeNotFound(name=pool_name)

    def get_node_pools(self, node: Any) -> list[Any]:
        self.assert_node(node)
        if not self._has(NODE, node.host):
            raise self._nx.NetworkXError(f"The node {node.host} is not in the digraph.")
        return [self._element(POOL, p) for p in self._downs(node.host)]

    def get_pool_by_volume(self, volume: Any) -> Any:
        self.assert_volume(volume)
        if not self._has(VOLUME, volume.uuid):
            raise self._X.StorageResourceNotFound(name=volume.uuid)
        for p in self._ups(volume.uuid):
            return self._element(POOL, p)
        raise self._X.PoolNotFound(name=f"for volume {volume.uuid}")

    def get_pool_volumes(self, pool: Any) -> list[Any]:
        self.assert_pool(pool)
        if not self._has(POOL, pool.name):
            raise self._nx.NetworkXError(f"The node {pool.name} is not in the digraph.")
        return [self._element(VOLUME, v) for v in self._downs(pool.name)]

    # -- changes (copy-on-write) ------------------------------------------------------------
    def add_node(self, node: Any) -> None:
        self.assert_node(node)
        self._add(NODE, node.host, node)

    def add_pool(self, pool: Any) -> None:
        self.assert_pool(pool)
        self._add(POOL, pool.name, pool)

    def add_volume(self, volume: Any) -> None:
        self.assert_volume(volume)
        self._add(VOLUME, volume.uuid, volume)

    def remove_node(self, node: Any) -> None:
        self.assert_node(node)
        if not self._has(NODE, node.host):
            raise self._X.StorageNodeNotFound(name=node.host)
        self._drop(NODE, node.host)

    def remove_pool(self, pool: Any) -> None:
        self.assert_pool(pool)
        if not self._has(POOL, pool.name):
            raise self._X.PoolNotFound(name=pool.name)
        self._drop(POOL, pool.name)

    def remove_volume(self, volume: Any) -> None:
        self.assert_volume(volume)
        if not self._has(VOLUME, volume.uuid):
            raise self._X.VolumeNotFound(name=volume.uuid)
        self._drop(VOLUME, volume.uuid)

    def delete_volume(self, volume: Any) -> None:
        self.assert_volume(volume)
        self.remove_volume(volume)

    def _pool_node(self, pool: Any, node: Any) -> tuple[Any, Any]:
        if isinstance(pool, str):
            pool = self.get_pool_by_pool_name(pool)
        if isinstance(node, str):
            node = self.get_node_by_name(node)
        return pool, node

    def map_pool(self, pool: Any, node: Any) -> None:
        """Map a pool (element or name) to a node (element or host)."""
        pool, node = self._pool_node(pool, node)
        self.assert_node(node)
        self.assert_pool(pool)
        if not self._has(POOL, pool.name):
            raise self._X.PoolNotFound(name=pool.name)
        if not self._has(NODE, node.host):
            raise self._X.StorageNodeNotFound(name=node.host)
        self.changes += 1
        self._add_edge(pool.name, node.host)

    def unmap_pool(self, pool: Any, node: Any) -> None:
        pool, node = self._pool_node(pool, node)
        self.changes += 1
        self._remove_edge(pool.name, node.host)

    def _volume_pool(self, volume: Any, pool: Any) -> tuple[Any, Any]:
        if isinstance(volume, str):
            volume = self.get_volume_by_uuid(volume)
        if isinstance(pool, str):
            pool = self.get_pool_by_pool_name(pool)
        return volume, pool

    def map_volume(self, volume: Any, pool: Any) -> None:
        """Map a volume (element or uuid) to a pool (element or name)."""
        volume, pool = self._volume_pool(volume, pool)
        self.assert_pool(pool)
        self.assert_volume(volume)
        if not self._has(VOLUME, volume.uuid):
            raise self._X.VolumeNotFound(name=volume.uuid)
        if not self._has(POOL, pool.name):
            raise self._X.PoolNotFound(name=pool.name)
        self.changes += 1
        self._add_edge(volume.uuid, pool.name)

    def unmap_volume(self, volume: Any, pool: Any) -> None:
        volume, pool = self._volume_pool(volume, pool)
        self.changes += 1
        self._remove_edge(volume.uuid, pool.name)

    # -- whole model ------------------------------------------------------------------------
    def layout(self) -> tuple[list[str], list[str], list[str], dict[str, list[str]]]:
        """(node hosts, pool names, volume uuids) in the view's order, and every key's parents."""
        nodes, pools, vols = list(self._order(NODE)), list(self._order(POOL)), list(self._order(VOLUME))
        return nodes, pools, vols, {k: list(self._ups(k)) for k in (*pools, *vols)}

    def to_xml(self) -> str:
        """The model as ``StorageModelRoot.to_xml`` writes it, byte for byte."""
        from projections.watcher.storage_xml import storage_xml

        return storage_xml(self)

    def to_string(self) -> str:
        """As ``to_xml``; not built when the caller is a strategy's ``pre_execute`` logging
        it at DEBUG with DEBUG off (``zone_migration`` does so on every audit)."""
        caller = sys._getframe(1)
        if caller.f_code.co_name in ("pre_execute", "_pre_execute") \
                and not debug_enabled(caller.f_globals.get("LOG")):
            return f"<{len(self.index.volumes)} volumes: not rendered, Watcher's log level is above DEBUG>"
        return self.to_xml()

    def copy(self) -> StorageView:
        """An independent view of the same snapshot with this view's changes (elements copied)."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> StorageView:
        new = object.__new__(StorageView)
        memo[id(self)] = new
        shared = {"model", "_index", "_E", "_X", "_nx"}
        for k, v in self.__dict__.items():
            setattr(new, k, v if k in shared else copy.deepcopy(v, memo))
        return new

    def __repr__(self) -> str:
        return f"<StorageView of {self.model.describe()}, {self.changes} changes>"
