"""The live projection: folds what the log brings and hands out immutable models.

:meth:`Projection.latest` is O(1): it returns the model built by the last fold. The
follower (:class:`Follower`) tails the log in a thread; the decision engine only
ever reads. Each read can be journalled with the position it saw (``read_journal``)
so that an audit can later be replayed against exactly that model.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import attrs

from eventmodel.clock import now_us
from eventmodel.log.base import EventLog, Position, PositionNotCovered, Record
from eventmodel.retry import RetryEvent, RetryPolicy, RetryStopped
from projections.fold import fold
from projections.model import ClusterModel
from projections.state import ClusterState

_log = logging.getLogger(__name__)


@attrs.frozen(slots=True)
class Read:
    """One journalled read: who read which position, and when."""

    reader: str
    position: Position
    recorded_at: int
    at: int


class Projection:
    """Holds the current model; folding and reading may happen on different threads."""

    def __init__(self, state: ClusterState | None = None, *, partitions: int = 1, journal: int = 1000) -> None:
        self._model = ClusterModel(state or ClusterState.empty(partitions))
        self._cond = threading.Condition()
        self._apply_lock = threading.Lock()
        self._until_sync = False  # the log problem holds until a full sync completes
        self._sync_at_mark: object | None = None  # last_snapshot when it was set
        self.read_journal: deque[Read] = deque(maxlen=journal)

    def latest(self, reader: str | None = None) -> ClusterModel:
        """The current model, O(1). With ``reader``, the read is journalled."""
        model = self._model
        if reader is not None:
            self.read_journal.append(Read(reader, model.position, model.recorded_at, now_us()))
        return model

    @property
    def state(self) -> ClusterState:
        return self._model.state

    def apply(self, records: Iterable[Record]) -> ClusterModel:
        """Fold records and publish the new model. Writers are serialised (readers never
        wait: they take whatever model was published last)."""
        with self._apply_lock:
            old = self._model
            state = fold(old.state, records)
            problem = old.log_problem
            if problem is not None and self._until_sync and state.last_snapshot is not self._sync_at_mark:
                problem = None  # a full sync completed since: complete again
                self._until_sync = False
            model = ClusterModel(state, log_problem=problem)
            with self._cond:
                self._model = model
                self._cond.notify_all()
        return model

    def mark_stale(self, reason: str | None, *, until_sync: bool = False) -> None:
        """Publish the model again with ``reason`` as its log problem (None clears it).
        With ``until_sync`` the reason holds until the next full sync completes."""
        with self._apply_lock:
            model = attrs.evolve(self._model, log_problem=reason)
            self._until_sync = bool(until_sync and reason)
            self._sync_at_mark = model.state.last_snapshot
            with self._cond:
                self._model = model
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[ClusterModel], bool], timeout: float) -> ClusterModel:
        """Block until ``predicate(latest())`` holds; raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._model):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s at {self._model.describe()}")
                self._cond.wait(left)
            return self._model


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk fold.

    The fold creates only acyclic objects (frozen entities, HAMT nodes), so the
    collector has nothing to find, but its full passes over a heap of millions of
    young objects would otherwise cost more than the fold itself.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


#: records per fold call when catching up (a replay): within one call the fold's map
#: mutations change the nodes they created in place, so large batches copy less (at
#: 50,000 instances, 5,000 per call → 50,000 per call: 10.6 → 8.1 µs per record); a
#: batch's records are held at once (≈ 100 MB at this size)
REPLAY_BATCH = 50_000


def catch_up(projection: Projection, log: EventLog, end: Position | None = None, batch: int = REPLAY_BATCH,
             progress: Callable[[int], None] | None = None) -> ClusterModel:
    """Fold everything from the projection's position to ``end`` (default: the log's end now)."""
    model = projection.latest()
    with bulk():
        for records in log.read(model.position, end, batch):
            model = projection.apply(records)
            if progress is not None:
                progress(len(records))
    return model


class Follower:
    """Tails a log into a projection on a background thread until stopped.

    With a ``checkpointer`` it writes a checkpoint every ``checkpoint_every`` records,
    or, with ``checkpoint_interval``, once that many seconds passed with records
    folded since the last one (and on stop). Errors reading the log are logged and retried with backoff; the
    model stays as it was and ``stale`` says why.
    """

    def __init__(self, log: EventLog, projection: Projection, *, poll: float = 0.05,
                 batch: int = 5000, checkpointer: object | None = None,
                 checkpoint_every: int = 500_000, checkpoint_interval: float | None = None,
                 on_retry: Callable[[RetryEvent], None] | None = None) -> None:
        self.log = log
        self.projection = projection
        self.poll = poll
        self.batch = batch
        self.checkpointer = checkpointer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._checkpoint_at = time.monotonic()
        self.stale: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since_checkpoint = 0
        #: position of the last checkpoint this follower knows of (None: none yet)
        self.checkpointed: Position | None = None
        #: called for every retry after a failed read (e.g. the metrics' retry counter)
        self.on_retry = on_retry

    def start(self) -> Follower:
        self._thread = threading.Thread(target=self.run, name="eventmodel-follower", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """True while the follower's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.checkpointer is not None and self.projection.state.position != self.checkpointed:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self.checkpointer is None:
            return
        state = self.projection.state
        self.checkpointer.write(state)
        self.checkpointed = state.position
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()

    def _checkpoint_due(self) -> bool:
        if self._since_checkpoint >= self.checkpoint_every:
            return True
        return bool(self.checkpoint_interval and self._since_checkpoint
                    and time.monotonic() - self._checkpoint_at >= self.checkpoint_interval)

    def run(self) -> None:
        policy = self.retry_policy()
        while not self._stop.is_set():
            try:
                moved = policy.call(self._step, what=f"follower on {self.log.url}")
            except RetryStopped:
                break
            except PositionNotCovered as exc:
                # Reading on would lose records: the model says so until the operator
                # acts (newer checkpoint, replay from the log start + full sync).
                self.stale = str(exc)
                if self.projection.latest().log_problem != self.stale:
                    _log.error("follower on %s cannot go on: %s", self.log.url, self.stale)
                    self.projection.mark_stale(self.stale)
                self._stop.wait(10.0)
                continue
            if not moved:
                self._stop.wait(self.poll)

    def retry_policy(self) -> RetryPolicy:
        """How a failed read is retried (component ``follower``): from ``poll`` up to 10 s,
        ended at once by stop(); a position the log no longer covers is not retried."""
        return RetryPolicy(
            "follower", initial=self.poll, cap=max(10.0, self.poll), stop=self._stop,
            give_up_on=(PositionNotCovered,), logger=_log, on_retry=self._read_failed,
        ).also_on_retry(self.on_retry)

    def _read_failed(self, event: RetryEvent) -> None:
        # A follower never dies of a read error: the model stays as it was and says why it
        # is stale, so that every reader (an audit, /readyz) sees it, until a read works.
        self.stale = f"cannot read the log: {type(event.error).__name__}: {event.error}"
        if self.projection.latest().log_problem != self.stale:
            self.projection.mark_stale(self.stale)

    def _step(self) -> int:
        """Fold what the log has now; returns how many records."""
        moved = 0
        # The collector is paused only to catch up on a backlog: a follower that
        # keeps up must not keep it off for everything else in the process.
        start, end = self.projection.latest().position, self.log.end()
        with bulk() if end.total - start.total > self.batch else contextlib.nullcontext():
            for records in self.log.read(start, end, self.batch):
                self.projection.apply(records)
                moved += len(records)
                self._since_checkpoint += len(records)
                if self._stop.is_set():
                    break
        if self.stale is not None and self.projection.latest().log_problem == self.stale:
            self.projection.mark_stale(None)
        self.stale = None
        if self.checkpointer is not None and self._checkpoint_due():
            self._checkpoint()
        return moved
