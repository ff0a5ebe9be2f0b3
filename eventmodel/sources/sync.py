"""The full-sync snapshotter: a snapshot inside the stream.

``snapshot.started`` goes to every partition before the first API call; then one
``*.observed`` record per entity the APIs list; then ``snapshot.completed`` with the
counts. The fold deletes what the snapshot did not see and nothing touched since it
started (see projections.fold). A failed sync appends no ``completed`` marker, so the
model is left as it was; the error says why.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import attrs

from eventmodel import events as ev
from eventmodel.clock import now_us
from eventmodel.log.base import EventLog

_log = logging.getLogger(__name__)


class CloudReader(Protocol):
    """What a full sync reads: the Nova and Placement APIs, or the simulated cloud."""

    def list_services(self) -> list[ev.ComputeService]: ...

    def list_nodes(self) -> list[ev.ComputeNode]: ...

    def list_servers(self, *, limit: int = 1000, marker: str | None = None
                     ) -> list[ev.Instance | ev.PartialInstance]:
        """One page of servers after ``marker``; a server listed without what the model
        needs (a down cell's minimal record) is a PartialInstance."""
        ...


@attrs.frozen
class SyncResult:
    snapshot_id: str
    counts: dict[str, int]
    started_at: int
    completed_at: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _pages(reader: CloudReader, limit: int) -> Iterator[list[ev.Instance | ev.PartialInstance]]:
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
    """One representation for what Nova means as one value: no zone is None, whether
    the API said ``''`` or a notification said null."""
    if inst.availability_zone == "":
        return attrs.evolve(inst, availability_zone=None)
    return inst


class Snapshotter:
    """Runs full syncs from a CloudReader into a log."""

    def __init__(self, reader: CloudReader, log: EventLog, *, source: str = "sync",
                 page_size: int = 1000, batch: int = 5000,
                 clock: Callable[[], int] = now_us) -> None:
        self.reader = reader
        self.log = log
        self.source = source
        self.page_size = page_size
        self.batch = batch
        self.clock = clock
        #: the kinds a sync reconciles: aggregates only when the reader lists them
        self.scope: tuple[str, ...] = ev.KINDS if hasattr(reader, "list_aggregates") else (
            ev.INSTANCE, ev.NODE, ev.SERVICE)

    def run_once(self, progress: Callable[[int], None] | None = None) -> SyncResult:
        """One full sync. Never raises for API or log errors: the result says what failed."""
        sid = str(uuid.uuid4())
        source = f"{self.source}:{sid}"
        started = self.clock()
        counts = {ev.SERVICE: 0, ev.NODE: 0, ev.INSTANCE: 0}
        seq = 0

        def env(payload: object, at: int) -> ev.Envelope:
            nonlocal seq
            seq += 1
            return ev.envelope(payload, source=source, message_id=str(seq), occurred_at=at, recorded_at=now_us())

        try:
            self.log.append([env(ev.SnapshotStarted(sid, self.scope, self.log.partitions()), started)])
        except Exception as exc:  # noqa: BLE001 - the log is down: the marker may be partial
            reason = f"cannot append to {self.log.url}: {type(exc).__name__}: {exc}"
            _log.error("full sync %s not started: %s", sid, reason)
            self._abort(env, sid, started, f"not started: {reason}")
            return SyncResult(sid, counts, started, self.clock(), error=reason)
        try:
            pending: list[ev.Envelope] = []

            def emit(items: Iterable[object]) -> None:
                for payload in items:
                    pending.append(env(payload, self.clock()))
                    if len(pending) >= self.batch:
                        self.log.append(pending)
                        if progress:
                            progress(len(pending))
                        pending.clear()

            services = self.reader.list_services()
            counts[ev.SERVICE] = len(services)
            emit(ev.ComputeServiceObserved(sid, s) for s in services)
            nodes = self.reader.list_nodes()
            counts[ev.NODE] = len(nodes)
            emit(ev.ComputeNodeObserved(sid, n) for n in nodes)
            for page in _pages(self.reader, self.page_size):
                counts[ev.INSTANCE] += len(page)
                partial = sum(1 for i in page if isinstance(i, ev.PartialInstance))
                if partial:
                    counts["partial"] = counts.get("partial", 0) + partial
                emit(ev.InstanceSeen(sid, i.uuid, i.status) if isinstance(i, ev.PartialInstance)
                     else ev.InstanceObserved(sid, _canonical(i)) for i in page)
            if pending:
                self.log.append(pending)
                if progress:
                    progress(len(pending))
        except Exception as exc:  # noqa: BLE001 - an unreachable API must not crash the syncer
            reason = f"{type(exc).__name__}: {exc}"
            _log.error("full sync %s failed, the model is left as it was: %s", sid, reason)
            self._abort(env, sid, started, reason)
            return SyncResult(sid, counts, started, self.clock(), error=reason)
        completed = self.clock()
        try:
            self.log.append([env(ev.SnapshotCompleted(sid, dict(counts), started), completed)])
        except Exception as exc:  # noqa: BLE001 - the marker may be partial: close the rest
            reason = f"cannot append to {self.log.url}: {type(exc).__name__}: {exc}"
            _log.error("full sync %s not completed: %s", sid, reason)
            # Partitions the completed marker reached are reconciled; the others are
            # closed by this abort, and the fold reports the sync as partial.
            self._abort(env, sid, started, f"completed marker not stored everywhere: {reason}")
            return SyncResult(sid, counts, started, self.clock(), error=reason)
        return SyncResult(sid, counts, started, completed)

    def _abort(self, env: Callable[[object, int], ev.Envelope], sid: str, started: int, reason: str) -> None:
        """Append ``snapshot.aborted`` (to every partition); tried a few times, because a
        marker that reached only some partitions leaves the others' windows open until
        the next completed sync supersedes them."""
        marker = env(ev.SnapshotAborted(sid, reason[:1000], started), self.clock())
        for attempt in range(3):
            try:
                self.log.append([marker])
                return
            except Exception as exc:  # noqa: BLE001 - the next completed sync supersedes it
                _log.error("could not record the abort of sync %s (try %d): %s", sid, attempt + 1, exc)


class PeriodicSync:
    """Runs a Snapshotter every ``period`` seconds (and on demand) on its own thread,
    so that a slow API never blocks the bridge."""

    def __init__(self, snapshotter: Snapshotter, period: float = 3600.0) -> None:
        self.snapshotter = snapshotter
        self.period = period
        self.last: SyncResult | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PeriodicSync:
        self._thread = threading.Thread(target=self._run, name="eventmodel-sync", daemon=True)
        self._thread.start()
        return self

    def trigger(self) -> None:
        """Run a sync now (on the sync thread)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self.snapshotter.run_once()
            except Exception:  # noqa: BLE001 - a bug must not end the periodic sync silently
                _log.exception("full sync crashed; trying again in %gs", self.period)
            self._wake.wait(self.period)
            self._wake.clear()
