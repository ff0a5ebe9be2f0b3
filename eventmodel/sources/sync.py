"""The full-sync snapshotter: a snapshot inside the stream.

``snapshot.started`` goes to every partition before the first API call; then one
``*.observed`` record per entity the APIs list; then ``snapshot.completed`` with the
counts. The fold deletes what the snapshot did not see and nothing touched since it
started (see projections.fold). A failed sync appends ``snapshot.aborted`` instead of
``completed``, so nothing is deleted for it; the error says why.

Log order is not time order: a notification held in a backlog can reach the log while
the sync reads, describing a change from before it, and its version cannot tell (one
second resolution, skewed compute clocks, aggregates without any). So after the listing
the syncer reads back its window and re-reads, by key, each entity a live record
touched there — ``GET /servers/{id}`` for an instance, the services or aggregates
listing for those — in a **follow-up round**: a sync of its own with an empty scope
(``follows`` names the sync), whose reads are authoritative for keys untouched in *its*
window, and whose "not found" is an ``entity.absent`` record. Rounds repeat, each over
the records that arrived since the previous scan, until a scan finds nothing
(``max_rounds`` at most). With no operation running, the model then equals the cloud
whatever the bus delivered meanwhile (ADR 0004).

A storage sync (``Snapshotter(service="storage")``, a
:class:`~eventmodel.sources.storage_sync.CinderReader`) reads Cinder's model the same
way — scope :data:`~eventmodel.events.STORAGE_KINDS`, volume pages beside the storage
nodes and pools, follow-up rounds re-reading touched volumes (``GET /volumes/{id}``)
and pools; a baremetal sync (``service="baremetal"``, a
:class:`~eventmodel.sources.baremetal_sync.IronicReader`) reads Ironic's nodes, scope
:data:`~eventmodel.events.BAREMETAL_KINDS`, re-reading touched nodes by uuid;
:class:`ServiceSyncs` runs one Snapshotter per service as one sync.

Records are appended in batches as the listings arrive (memory does not grow with
the number of servers); each :class:`SyncResult` reports wall time, records by kind
and the requests the reader counted by service. :class:`PeriodicSync` runs syncs on
their own thread: at start, every period with jitter, on demand, never two at once
(ADR 0010).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import attrs

from eventmodel.errors import SourceError
from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.log.base import EventLog, Position
from eventmodel.sources.nova import values as nova_values

_log = logging.getLogger(__name__)


class CloudReader(Protocol):
    """What a full sync reads: the Nova and Placement APIs, or the simulated cloud.

    Optional, used when present: ``list_aggregates()`` (then aggregates are in the
    sync's scope), ``server_pages(limit)`` (an iterator of pages, instead of calling
    ``list_servers`` with markers), ``requests`` (a counter with ``counts()``, for the
    report), ``concurrent_listings = True`` (``list_nodes`` may run on another thread
    while the servers are listed), ``start_sync()`` (called as each sync begins),
    ``get_server(uuid)`` (one server by id, None when it does not exist: follow-up
    rounds re-read instances with it; without it touched instances are left to the
    next sync)."""

    def list_services(self) -> Iterable[ev.ComputeService]: ...

    def list_nodes(self) -> Iterable[ev.ComputeNode]: ...

    def list_servers(self, *, limit: int = 1000, marker: str | None = None
                     ) -> list[ev.Instance | ev.PartialInstance]:
        """One page of servers after ``marker``; a server listed without what the model
        needs (a down cell's minimal record) is a PartialInstance."""
        ...


#: the services a Snapshotter can sync: Nova's model, Cinder's
SERVICES = ("compute", "storage", "baremetal")

#: the reason a sync stopped by :class:`PeriodicSync.stop` (or SIGTERM) is aborted with
STOPPED = "the syncer was stopped"


class SyncStopped(SourceError):
    """Raised inside a sync between pages when it was asked to stop."""


@attrs.frozen
class SyncResult:
    """What one full sync did: ``counts`` are the records it observed by kind (and
    ``partial``: minimal records), ``requests`` the API requests it sent by service,
    ``wall_s`` its duration, ``error`` why it failed (None when it completed)."""

    snapshot_id: str
    counts: dict[str, int]
    started_at: int
    completed_at: int
    error: str | None = None
    requests: dict[str, int] = attrs.field(factory=dict)
    wall_s: float = 0.0
    pages: int = 0
    #: follow-up rounds run, keys they re-read, and keys still contested when they stopped
    rounds: int = 0
    rechecked: int = 0
    unsettled: int = 0
    #: why a follow-up round failed (the sync itself completed)
    follow_up_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def report(self) -> dict[str, object]:
        """The per-sync report as plain data (for logs and JSON)."""
        return {"snapshot_id": self.snapshot_id, "ok": self.ok, "error": self.error,
                "wall_s": round(self.wall_s, 3), "records": dict(self.counts),
                "requests": dict(self.requests), "requests_total": sum(self.requests.values()),
                "server_pages": self.pages, "follow_up_rounds": self.rounds, "rechecked": self.rechecked,
                "unsettled": self.unsettled, "follow_up_error": self.follow_up_error}

    def summary(self) -> str:
        """One line: outcome, wall time, records by kind, requests by service."""
        records = ", ".join(f"{k} {v:,}" for k, v in self.counts.items())
        reqs = ", ".join(f"{k} {v:,}" for k, v in sorted(self.requests.items()))
        total = sum(self.requests.values())
        head = "completed" if self.ok else f"FAILED ({self.error})"
        rounds = ""
        if self.rounds:
            rounds = f"; {self.rounds} follow-up round(s) re-read {self.rechecked:,} touched"
            if self.unsettled:
                rounds += f", {self.unsettled:,} still contested"
        if self.follow_up_error:
            rounds += f"; follow-up failed ({self.follow_up_error})"
        return (f"sync {self.snapshot_id} {head} in {self.wall_s:.2f}s: records {records or '-'}; "
                f"requests {total:,}" + (f" ({reqs})" if reqs else "") + rounds)


def _pages(reader: CloudReader, limit: int) -> Iterator[list[ev.Instance | ev.PartialInstance]]:
    pages = getattr(reader, "server_pages", None)
    if pages is not None:
        yield from pages(limit)
        return
    marker: str | None = None
    while True:
        page = reader.list_servers(limit=limit, marker=marker)
        if not page:
            return
        yield page
        if len(page) < limit:
            return
        marker = page[-1].uuid


def _canonical(inst: ev.Instance) -> ev.Instance:
    """One representation for what Nova means as one value, whichever reader read it
    (:func:`eventmodel.sources.nova.values.zone`: no zone is None)."""
    zone = nova_values.zone(inst.availability_zone)
    return inst if zone is inst.availability_zone else attrs.evolve(inst, availability_zone=zone)


def _request_counts(reader: object) -> dict[str, int]:
    counter = getattr(reader, "requests", None)
    counts = getattr(counter, "counts", None)
    return dict(counts()) if callable(counts) else {}


class _Background:
    """Consumes an iterator on a thread of its own; :meth:`ready` takes what has arrived,
    :meth:`rest` waits for the end. An error of the iterator is raised by either."""

    _END = object()

    def __init__(self, make: Callable[[], Iterable[object]], name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterable[object]]) -> None:
        try:
            for item in make():
                self._queue.put(item)
                if self._stop.is_set():
                    break  # leaving the loop closes the iterator (its pool stops)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._error = exc
        finally:
            self._queue.put(self._END)

    def _take(self, block: bool) -> Iterator[object]:
        while True:
            try:
                item = self._queue.get(block=block)
            except queue.Empty:
                return
            if item is self._END:
                self._queue.put(self._END)  # stays the end for later calls
                if self._error is not None:
                    raise self._error
                return
            yield item

    def ready(self) -> Iterator[object]:
        """What has arrived so far."""
        return self._take(block=False)

    def rest(self) -> Iterator[object]:
        """Everything still to come, until the end."""
        return self._take(block=True)

    def stop(self) -> None:
        """Stop early (after the item in progress) and wait for the thread."""
        self._stop.set()
        while self._thread.is_alive():
            for _ in self._take(block=False):
                pass
            self._thread.join(0.1)


#: a follow-up round that re-read more keys than this and found as many touched again
#: is not draining a backlog but watching a busy cloud: rounds stop there
BUSY_KEYS = 32


@attrs.define
class _FollowUps:
    rounds: int = 0
    rechecked: int = 0
    unsettled: int = 0
    error: str | None = None


def touched_keys(log: EventLog, start: Position, end: Position, kinds: Iterable[str]) -> set[tuple[str, str]]:
    """``(kind, key)`` of every live record (an upsert or a delete) of ``kinds`` in the
    log from ``start`` to ``end``. Reads undecoded records where the log offers them and
    parses only the live ones' envelopes (a sync's window is mostly its own reads)."""
    kinds = frozenset(kinds)
    codec = getattr(log, "codec", None)
    out: set[tuple[str, str]] = set()
    if codec is not None and hasattr(log, "read_raw"):
        live: dict[str, str] = {}
        for name in codec.types.names():
            cls = codec.types.get(name)
            if getattr(cls, "EFFECT", None) in ("upsert", "delete") and getattr(cls, "KIND", None) in kinds:
                live[name] = cls.KIND
        type_of, key_of = codec.type_of, codec.key_of
        for batch in log.read_raw(start, end):
            for raw in batch:
                kind = live.get(type_of(raw.value))
                if kind is not None:
                    try:
                        out.add((kind, key_of(raw.value)))
                    except Exception:  # noqa: BLE001 - an undecodable record touches nothing we can name
                        continue
        return out
    for batch in log.read(start, end):
        for rec in batch:
            p = rec.envelope.payload
            if getattr(p, "EFFECT", None) in ("upsert", "delete") and getattr(p, "KIND", None) in kinds:
                out.add((p.KIND, rec.envelope.key))
    return out


class Snapshotter:
    """Runs full syncs from a CloudReader into a log.

    Everything is streamed: records are appended in batches of ``batch`` as the
    listings arrive, so memory does not grow with the number of servers."""

    def __init__(self, reader: CloudReader, log: EventLog, *, source: str = "sync",
                 page_size: int = 1000, batch: int = 5000,
                 clock: Callable[[], int] = now_us, max_rounds: int = 5,
                 reread_workers: int = 8, max_rereads: int = 20_000, service: str = "compute") -> None:
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        if service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, got {service!r}")
        #: which service's model the syncs read: ``compute`` (Nova, Placement) or
        #: ``storage`` (Cinder: a :class:`~eventmodel.sources.storage_sync.CinderReader`)
        self.service = service
        self.reader = reader
        self.log = log
        self.source = source
        self.page_size = page_size
        self.batch = batch
        self.clock = clock
        #: follow-up rounds at most (0: none, the listing's window rule alone)
        self.max_rounds = max_rounds
        self.reread_workers = reread_workers
        #: more keys touched than this while a sync read: a busy cloud, not a backlog;
        #: no follow-up (each key is one API request), the next sync settles them
        self.max_rereads = max_rereads
        #: the kinds a sync reconciles: aggregates only when the reader lists them
        self.scope: tuple[str, ...] = ev.COMPUTE_KINDS if hasattr(reader, "list_aggregates") else (
            ev.INSTANCE, ev.NODE, ev.SERVICE)
        if service == "storage":
            self.scope = ev.STORAGE_KINDS
        elif service == "baremetal":
            self.scope = ev.BAREMETAL_KINDS

    def run_once(self, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None) -> SyncResult:
        """One full sync. Never raises for API or log errors: the result says what failed.

        ``progress`` is called with the number of records of each batch appended;
        ``cancel``, once set, aborts the sync at the next page or batch."""
        return _SyncRun(self, progress, cancel).run()

    def reread(self, fsid: str, keys: list[tuple[str, str]]) -> Iterator[object]:
        """The current state of each ``(kind, key)``, or ``entity.absent``, as records of
        the follow-up round ``fsid``."""
        by_kind: dict[str, list[str]] = {}
        for kind, key in keys:
            by_kind.setdefault(kind, []).append(key)
        if ev.SERVICE in by_kind:
            services = {s.key: s for s in self.reader.list_services()}
            for key in by_kind[ev.SERVICE]:
                s = services.get(key)
                yield ev.ComputeServiceObserved(fsid, s) if s is not None else ev.EntityAbsent(fsid, ev.SERVICE, key)
        if ev.AGGREGATE in by_kind:
            aggregates = {a.key: a for a in self.reader.list_aggregates()}  # type: ignore[attr-defined]
            for key in by_kind[ev.AGGREGATE]:
                a = aggregates.get(key)
                yield ev.AggregateObserved(fsid, a) if a is not None else ev.EntityAbsent(fsid, ev.AGGREGATE, key)
        if ev.POOL in by_kind or (ev.VOLUME in by_kind and hasattr(self.reader, "list_pools")):
            # A volume's change changes its pool's figures, which Cinder reports late (a
            # minute) or never (infinite pools): re-reading volumes re-reads the pools too.
            pools = {p.key: p for p in self.reader.list_pools()}  # type: ignore[attr-defined]
            for key in sorted(set(by_kind.get(ev.POOL, ())) | (set(pools) if ev.VOLUME in by_kind else set())):
                p = pools.get(key)
                yield ev.PoolObserved(fsid, p) if p is not None else ev.EntityAbsent(fsid, ev.POOL, key)
        yield from self._reread_servers(fsid, by_kind.get(ev.INSTANCE, []))
        yield from self._reread_volumes(fsid, by_kind.get(ev.VOLUME, []))
        yield from self._reread_baremetal(fsid, by_kind.get(ev.BAREMETAL_NODE, []))

    def _reread(self, fsid: str, kind: str, keys: list[str], get: Callable[[str], Any],
                observed: Callable[[Any], object]) -> Iterator[object]:
        """Each key of ``kind`` read again by ``get`` (None: gone), a few requests in flight
        at once: ``entity.absent`` for a gone one, ``observed(entity)`` for the others."""
        if not keys:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.reread_workers, len(keys))),
                                thread_name_prefix="eventmodel-reread") as pool:
            for k, found in zip(keys, pool.map(get, keys), strict=True):
                yield ev.EntityAbsent(fsid, kind, k) if found is None else observed(found)

    def _reread_baremetal(self, fsid: str, uuids: list[str]) -> Iterator[object]:
        """Each bare-metal node by uuid (``GET /v1/nodes/{uuid}``)."""
        if uuids:
            yield from self._reread(fsid, ev.BAREMETAL_NODE, uuids, self.reader.get_baremetal_node,  # type: ignore[attr-defined]
                                    lambda node: ev.BaremetalNodeObserved(fsid, node))

    def _reread_volumes(self, fsid: str, uuids: list[str]) -> Iterator[object]:
        """Each volume by id (``GET /volumes/{id}``)."""
        if uuids:
            yield from self._reread(fsid, ev.VOLUME, uuids, self.reader.get_volume,  # type: ignore[attr-defined]
                                    lambda vol: ev.VolumeObserved(fsid, vol))

    def _reread_servers(self, fsid: str, uuids: list[str]) -> Iterator[object]:
        """Each server by id (a cell that does not answer gives a partial record: seen)."""
        if uuids:
            yield from self._reread(
                fsid, ev.INSTANCE, uuids, self.reader.get_server,  # type: ignore[attr-defined]
                lambda inst: ev.InstanceSeen(fsid, inst.uuid, inst.status) if isinstance(inst, ev.PartialInstance)
                else ev.InstanceObserved(fsid, _canonical(inst)))

class _SyncRun:
    """One full sync of a :class:`Snapshotter`, step by step:

    :meth:`start` appends ``snapshot.started`` after noting the log's end (the sync's
    window); :meth:`list` appends one observed record per entity the APIs list, in
    batches; :meth:`complete` appends ``snapshot.completed``; :meth:`follow_up` then
    re-reads what live records touched in the window (:meth:`readback` finds them), one
    :meth:`round` at a time. A step that fails appends ``snapshot.aborted``
    (:meth:`abort`); :meth:`run` chains the steps and :meth:`result` reports."""

    def __init__(self, snap: Snapshotter, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.snap, self.log, self.reader = snap, snap.log, snap.reader
        self.progress, self.cancel = progress, cancel
        self.sid = str(uuid.uuid4())
        self.source = f"{snap.source}:{self.sid}"
        self.t0 = time.monotonic()
        self.requests0 = _request_counts(snap.reader)
        self.started = snap.clock()
        self.counts = {kind: 0 for kind in (ev.SERVICE, ev.NODE, ev.AGGREGATE, ev.INSTANCE, *ev.STORAGE_KINDS,
                                                  *ev.BAREMETAL_KINDS) if kind in snap.scope}
        self.seq = 0
        self.pages = 0
        self.pending: list[ev.Envelope] = []
        self.follow = _FollowUps()
        #: the log's end before the started marker (None until :meth:`start` read it)
        self.window: Position | None = None
        #: when the listing ended (set by :meth:`complete`)
        self.completed = 0

    @property
    def after(self) -> tuple[int, ...] | None:
        return None if self.window is None else self.window.offsets

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def run(self) -> SyncResult:
        """Every step in order; the result of the first that failed, or of all."""
        reason = self.start() or self.list() or self.complete()
        if reason is not None:
            return self.result(self.snap.clock(), reason)
        if self.snap.max_rounds:
            self.follow_up()
        done = self.result(self.completed)
        _log.info("%s", done.summary())
        return done

    # -- the steps -------------------------------------------------------------
    def start(self) -> str | None:
        """Append ``snapshot.started`` to every partition; why not, or None."""
        try:
            # the log's end before the marker: orders this sync's window among others'
            self.window = self.log.end()
            self.log.append([self.envelope(ev.SnapshotStarted(self.sid, self.snap.scope, self.log.partitions(),
                                                              after=self.after), self.started)])
        except Exception as exc:  # noqa: BLE001 - the log is down: the marker may be partial
            reason = f"cannot append to {self.log.url}: {type(exc).__name__}: {exc}"
            _log.error("full sync %s not started: %s", self.sid, reason)
            self.window = None
            self.abort(self.sid, self.started, f"not started: {reason}")
            return reason
        return None

    def list(self) -> str | None:
        """Append what the APIs list (services, nodes, aggregates, servers); why the
        listing failed (then the sync is aborted), or None."""
        nodes: _Background | None = None
        try:
            start_sync = getattr(self.reader, "start_sync", None)
            if start_sync is not None:
                start_sync()
            if self.snap.service == "storage":
                self.list_storage()
                return None
            if self.snap.service == "baremetal":
                self.list_baremetal()
                return None
            self.emit(ev.SERVICE, (ev.ComputeServiceObserved(self.sid, s) for s in self.reader.list_services()))
            self.flush()
            nodes = self.list_nodes()
            if ev.AGGREGATE in self.snap.scope:
                self.emit(ev.AGGREGATE, (ev.AggregateObserved(self.sid, a)
                                         for a in self.reader.list_aggregates()))  # type: ignore[attr-defined]
                self.flush()
            self.list_servers(nodes)
        except Exception as exc:  # noqa: BLE001 - an unreachable API must not crash the syncer
            if nodes is not None:
                nodes.stop()
            reason = STOPPED if isinstance(exc, SyncStopped) else f"{type(exc).__name__}: {exc}"
            _log.error("full sync %s failed, the model is left as it was: %s", self.sid, reason)
            self.abort(self.sid, self.started, reason)
            return reason
        return None

    def list_storage(self) -> None:
        """Cinder's model: the volume types first (volumes name them), then the volume
        pages while the storage nodes and the pools are read on a thread of their own."""
        r = self.reader
        self.emit(ev.VOLUME_TYPE, (ev.VolumeTypeObserved(self.sid, t)
                                   for t in r.list_volume_types()))  # type: ignore[attr-defined]
        self.flush()

        def side() -> Iterator[object]:
            yield from r.list_storage_nodes()  # type: ignore[attr-defined]
            yield from r.list_pools()  # type: ignore[attr-defined]

        others = _Background(side, "eventmodel-sync-storage")
        try:
            for page in r.volume_pages(self.snap.page_size):  # type: ignore[attr-defined]
                self.pages += 1
                self.emit(ev.VOLUME, (ev.VolumeObserved(self.sid, v) for v in page))
                self._storage_side(others.ready())
                if self.cancelled:
                    self.flush()
            self._storage_side(others.rest())
        except BaseException:
            others.stop()
            raise
        self.flush()

    def list_baremetal(self) -> None:
        """Ironic's nodes, a page at a time."""
        for page in self.reader.baremetal_pages(self.snap.page_size):  # type: ignore[attr-defined]
            self.pages += 1
            self.emit(ev.BAREMETAL_NODE, (ev.BaremetalNodeObserved(self.sid, n) for n in page))
            if self.cancelled:
                self.flush()
        self.flush()

    def _storage_side(self, items: Iterable[object]) -> None:
        for item in items:
            if isinstance(item, ev.StoragePool):
                self.emit(ev.POOL, (ev.PoolObserved(self.sid, item),))
            else:
                self.emit(ev.STORAGE_NODE, (ev.StorageNodeObserved(self.sid, item),))  # type: ignore[arg-type]

    def list_nodes(self) -> _Background | None:
        """The nodes now, or (a reader that allows it) on a thread while the servers are listed."""
        if getattr(self.reader, "concurrent_listings", False):
            # the nodes (one inventory request each) are read while the servers are
            return _Background(self.reader.list_nodes, "eventmodel-sync-nodes")
        self.emit(ev.NODE, (ev.ComputeNodeObserved(self.sid, n) for n in self.reader.list_nodes()))
        self.flush()
        return None

    def list_servers(self, nodes: _Background | None) -> None:
        """Every page of servers (and the nodes read meanwhile), then the rest of the nodes."""
        for page in _pages(self.reader, self.snap.page_size):
            self.pages += 1
            partial = sum(1 for i in page if isinstance(i, ev.PartialInstance))
            if partial:
                self.counts["partial"] = self.counts.get("partial", 0) + partial
            self.emit(ev.INSTANCE, (ev.InstanceSeen(self.sid, i.uuid, i.status)
                                    if isinstance(i, ev.PartialInstance)
                                    else ev.InstanceObserved(self.sid, _canonical(i)) for i in page))
            if nodes is not None:
                self.emit(ev.NODE, (ev.ComputeNodeObserved(self.sid, n) for n in nodes.ready()))
            if self.cancelled:
                self.flush()
        if nodes is not None:
            self.emit(ev.NODE, (ev.ComputeNodeObserved(self.sid, n) for n in nodes.rest()))
        self.flush()

    def complete(self) -> str | None:
        """Append ``snapshot.completed`` with the counts; why not (then the partitions
        it missed are closed by an abort), or None."""
        self.completed = self.snap.clock()
        try:
            self.log.append([self.envelope(ev.SnapshotCompleted(self.sid, dict(self.counts), self.started,
                                                                after=self.after), self.completed)])
        except Exception as exc:  # noqa: BLE001 - the marker may be partial: close the rest
            reason = f"cannot append to {self.log.url}: {type(exc).__name__}: {exc}"
            _log.error("full sync %s not completed: %s", self.sid, reason)
            # Partitions the completed marker reached are reconciled; the others are
            # closed by this abort, and the fold reports the sync as partial.
            self.abort(self.sid, self.started, f"completed marker not stored everywhere: {reason}")
            return reason
        return None

    def readback(self, start: Position, end: Position) -> set[tuple[str, str]]:
        """``(kind, key)`` a live record touched from ``start`` to ``end``, of the kinds
        a follow-up round can re-read."""
        kinds = tuple(k for k in (ev.INSTANCE, ev.SERVICE, ev.AGGREGATE, ev.POOL, ev.VOLUME, ev.BAREMETAL_NODE)
                      if k in self.snap.scope)
        if ev.INSTANCE in kinds and getattr(self.reader, "get_server", None) is None:
            kinds = tuple(k for k in kinds if k != ev.INSTANCE)
        if ev.VOLUME in kinds and getattr(self.reader, "get_volume", None) is None:
            kinds = tuple(k for k in kinds if k != ev.VOLUME)
        if ev.BAREMETAL_NODE in kinds and getattr(self.reader, "get_baremetal_node", None) is None:
            kinds = tuple(k for k in kinds if k != ev.BAREMETAL_NODE)
        return touched_keys(self.log, start, end, kinds)

    def follow_up(self) -> None:
        """Re-read, by key, what live records touched since the window, round after
        round, until a scan finds none. Rounds stop early when a scan finds no fewer keys
        than the one before, more than :data:`BUSY_KEYS` (operations are running: their
        records are news, not a backlog), after ``max_rounds``, or above ``max_rereads``
        keys. Never raises: a failure is reported in the result."""
        assert self.window is not None, "follow_up after start"
        window, before = self.window, None
        contested: set[tuple[str, str]] = set()
        try:
            while True:
                end = self.log.end()
                contested = self.readback(window, end)
                if not contested or self.cancelled or self._settle_later(before, len(contested)):
                    break
                before, window = len(contested), end
                self.round(sorted(contested))
                contested = set()
        except Exception as exc:  # noqa: BLE001 - the sync itself completed
            self.follow.error = f"{type(exc).__name__}: {exc}"
            _log.error("follow-up of full sync %s failed: %s", self.sid, self.follow.error)
        self.follow.unsettled = len(contested)
        if contested:
            _log.info("full sync %s: %d key(s) touched by live records while it read are left to the next "
                      "sync (%d follow-up round(s); operations were running)", self.sid, len(contested),
                      self.follow.rounds)

    def _settle_later(self, before: int | None, now: int) -> bool:
        """Whether ``now`` contested keys (``before`` in the last scan) are left to the next sync."""
        if self.follow.rounds >= self.snap.max_rounds or now > self.snap.max_rereads:
            return True
        # Operations are running: each round finds as many as the last; their live
        # records are the news, and the next sync settles what is left.
        return before is not None and before > BUSY_KEYS and now >= before

    def round(self, keys: list[tuple[str, str]]) -> None:
        """One follow-up round: a window of its own, the keys re-read, closed."""
        fsid = f"{self.sid}.{self.follow.rounds + 1}"
        t = self.snap.clock()
        after = self.log.end().offsets
        self.log.append([self.envelope(ev.SnapshotStarted(fsid, (), self.log.partitions(), after=after,
                                                          follows=self.sid), t)])
        self.follow.rounds += 1
        try:
            records = list(self.snap.reread(fsid, keys))
            for k in range(0, len(records), self.snap.batch):
                self.log.append([self.envelope(p, self.snap.clock()) for p in records[k: k + self.snap.batch]])
            self.follow.rechecked += len(keys)
        except Exception as exc:
            self.abort(fsid, t, f"follow-up read failed: {type(exc).__name__}: {exc}", after)
            raise
        self.log.append([self.envelope(ev.SnapshotCompleted(fsid, {"rechecked": len(keys)}, t, after=after),
                                       self.snap.clock())])

    # -- records ---------------------------------------------------------------
    def envelope(self, payload: object, at: int) -> ev.Envelope:
        """``payload`` as this sync's next record (its message id counts up from 1)."""
        self.seq += 1
        return ev.envelope(payload, source=self.source, message_id=str(self.seq), occurred_at=at,
                           recorded_at=now_us())

    def emit(self, kind: str, items: Iterable[object]) -> None:
        """Queue a record per item, counted under ``kind``; append every full batch."""
        for payload in items:
            self.pending.append(self.envelope(payload, self.snap.clock()))
            self.counts[kind] += 1
            if len(self.pending) >= self.snap.batch:
                self.flush()

    def flush(self) -> None:
        """Append what is queued; raise :class:`SyncStopped` once cancelled."""
        if self.pending:
            self.log.append(self.pending)
            if self.progress:
                self.progress(len(self.pending))
            self.pending.clear()
        if self.cancelled:
            raise SyncStopped(STOPPED)

    def abort(self, sid: str, started: int, reason: str, after: tuple[int, ...] | None = None) -> None:
        """Append ``snapshot.aborted`` for ``sid`` (to every partition; its window the
        sync's unless ``after`` is given); tried a few times, because a marker that
        reached only some partitions leaves the others' windows open until the next
        completed sync supersedes them."""
        marker = self.envelope(ev.SnapshotAborted(sid, reason[:1000], started,
                                                    after=self.after if after is None else after),
                               self.snap.clock())
        for attempt in range(3):
            try:
                self.log.append([marker])
                return
            except Exception as exc:  # noqa: BLE001 - the next completed sync supersedes it
                _log.error("could not record the abort of sync %s (try %d): %s", sid, attempt + 1, exc)

    def result(self, completed: int, error: str | None = None) -> SyncResult:
        """The report: counts, the requests sent since the start, rounds."""
        after = _request_counts(self.reader)
        used = {k: v - self.requests0.get(k, 0) for k, v in after.items() if v - self.requests0.get(k, 0)}
        return SyncResult(self.sid, self.counts, self.started, completed, error=error, requests=used,
                          wall_s=time.monotonic() - self.t0, pages=self.pages, rounds=self.follow.rounds,
                          rechecked=self.follow.rechecked, unsettled=self.follow.unsettled,
                          follow_up_error=self.follow.error)


class ServiceSyncs:
    """One Snapshotter per service (compute, then storage), run one after the other as
    one sync: each appends its own snapshot (its scope, its markers), so a failed storage
    sync aborts only its own and leaves the compute model alone. :meth:`run_once`
    returns the results merged (:func:`merge_results`); ``last`` keeps each."""

    def __init__(self, snapshotters: list[Snapshotter]) -> None:
        if not snapshotters:
            raise ValueError("at least one Snapshotter is needed")
        self.snapshotters = snapshotters
        self.last: list[SyncResult] = []

    @property
    def reader(self) -> CloudReader:
        return self.snapshotters[0].reader

    @property
    def log(self) -> EventLog:
        return self.snapshotters[0].log

    def run_once(self, progress: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None) -> SyncResult:
        self.last = [s.run_once(progress, cancel) for s in self.snapshotters]
        return merge_results(self.last, [s.service for s in self.snapshotters])


def merge_results(results: list[SyncResult], services: list[str]) -> SyncResult:
    """Syncs of several services as one result: records and requests added up (requests
    counted once when the readers share a counter is the caller's concern: each result
    holds only its own sync's), the errors named by service."""
    if len(results) == 1:
        return results[0]
    counts: dict[str, int] = {}
    for r in results:
        for k, v in r.counts.items():
            counts[k] = counts.get(k, 0) + v
    requests: dict[str, int] = {}
    for r in results:
        for k, v in r.requests.items():
            requests[k] = requests.get(k, 0) + v
    errors = [f"{svc}: {r.error}" for svc, r in zip(services, results, strict=True) if r.error]
    follow = [f"{svc}: {r.follow_up_error}" for svc, r in zip(services, results, strict=True) if r.follow_up_error]
    return SyncResult(
        "+".join(r.snapshot_id for r in results), counts, min(r.started_at for r in results),
        max(r.completed_at for r in results), error="; ".join(errors) or None, requests=requests,
        wall_s=sum(r.wall_s for r in results), pages=sum(r.pages for r in results),
        rounds=sum(r.rounds for r in results), rechecked=sum(r.rechecked for r in results),
        unsettled=sum(r.unsettled for r in results), follow_up_error="; ".join(follow) or None)


class PeriodicSync:
    """Runs a Snapshotter on its own thread: at start, then every ``period`` seconds
    give or take ``jitter`` (a fraction: 0.1 is ±10 %), and on :meth:`trigger`.

    Never two syncs at once: a trigger during a sync queues one more run, and any
    further triggers before it starts are the same run. A sync that fails leaves the
    thread running; :meth:`stop` aborts the current sync at its next page.
    ``on_start`` and ``on_result`` (with every result) and ``progress`` (records
    appended, per batch) are called on the sync thread."""

    def __init__(self, snapshotter: Snapshotter | ServiceSyncs, period: float = 3600.0, *, jitter: float = 0.1,
                 on_result: Callable[[SyncResult], None] | None = None,
                 on_start: Callable[[], None] | None = None,
                 progress: Callable[[int], None] | None = None,
                 rng: random.Random | None = None) -> None:
        if period <= 0:
            raise ValueError("period must be > 0")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.snapshotter = snapshotter
        self.period = period
        self.jitter = jitter
        self.on_result = on_result
        self.on_start = on_start
        self.progress = progress
        self.last: SyncResult | None = None
        #: finished syncs: total, and by outcome ("ok", "failed", "crashed")
        self.runs: dict[str, int] = {"ok": 0, "failed": 0, "crashed": 0}
        self.running = False
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PeriodicSync:
        self._thread = threading.Thread(target=self._run, name="eventmodel-sync", daemon=True)
        self._thread.start()
        return self

    def trigger(self) -> None:
        """Run a sync now, or right after the one running (on the sync thread).
        Safe from a signal handler: it only sets an event."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop: the sync running is aborted at its next page; waits for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def next_delay(self) -> float:
        """Seconds until the next periodic sync: the period, jittered."""
        return self.period * (1 + self.jitter * (2 * self._rng.random() - 1))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.running = True
            try:
                if self.on_start is not None:
                    self.on_start()
                result = self.snapshotter.run_once(progress=self.progress, cancel=self._stop)
                self.last = result
                self.runs["ok" if result.ok else "failed"] += 1
                if self.on_result is not None:
                    self.on_result(result)
            except Exception:  # noqa: BLE001 - a bug must not end the periodic sync silently
                self.runs["crashed"] += 1
                _log.exception("full sync crashed; trying again in about %gs", self.period)
            finally:
                self.running = False
            if self._stop.is_set():
                return
            self._wake.wait(self.next_delay())
