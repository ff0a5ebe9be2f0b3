"""The embedding object: what a decision engine starts in-process to have the model.

::

    with ModelEngine("kafka://broker:9092/nova-events", checkpoint_dir="/var/lib/dec/ckpt") as engine:
        model = engine.latest()                  # O(1), immutable
        engine.record_audit("audit-42", model)   # durable: replayable from the log later

:class:`ModelEngine` opens the log by URL, restores the newest valid checkpoint,
catches up, then follows the log on a background thread (:class:`Follower`) and
writes checkpoints every ``checkpoint_every`` records or ``checkpoint_interval``
seconds, keeping positional ones (:class:`Checkpointer` ``ladder``) for replays to
past points. It adds nothing to the projection's rules; it wires the pieces.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

import attrs

from eventmodel.clock import now_us
from eventmodel.codec import Codec
from eventmodel.events import AuditRead
from eventmodel.log import EventLog, LogError, Position, open_log
from projections import audits
from projections.checkpoint import Checkpointer
from projections.model import ClusterModel
from projections.projection import Follower, Projection
from projections.replay import start


@attrs.frozen(slots=True)
class Health:
    """How current the engine's model is.

    ``lag`` is the records on the log not yet folded (None when the log could not be
    asked: then ``stale`` says why); ``staleness_s`` the seconds since the newest
    folded record was recorded; ``last_sync_at``/``last_sync_drift`` when the last
    full sync completed (source clock) and how many entities it corrected."""

    position: Position
    log_end: Position | None
    lag: int | None
    staleness_s: float | None
    last_sync_at: int | None
    last_sync_drift: int | None
    following: bool
    stale: str | None
    checkpointed: Position | None

    @property
    def ok(self) -> bool:
        """Following, nothing stale, nothing unread."""
        return self.following and self.stale is None and self.lag == 0


class ModelEngine:
    """One in-process model of the cluster, kept current from the log.

    ``log``: a URL (``sqlite:///…``, ``kafka://…``) or an open :class:`EventLog`.
    ``checkpoint_dir``: where checkpoints go (None: start from the log, write none).
    ``start`` (default True in the constructor) restores and catches up before
    returning; construct with ``start=False`` and call :meth:`start` to choose when.
    """

    def __init__(self, log: str | EventLog, checkpoint_dir: str | Path | None = None, *,
                 checkpoint_every: int = 100_000, checkpoint_interval: float | None = 600.0,
                 keep: int = 3, ladder: int = 0, ladder_keep: int = 64, poll: float = 0.05,
                 batch: int = 5000, reader: str = "", codec: Codec | None = None,
                 start: bool = True, max_age: float | None = None, max_lag: int | None = None) -> None:
        self._owns_log = isinstance(log, str)
        self.log: EventLog = open_log(log, codec, create=False) if isinstance(log, str) else log
        self.checkpointer = (Checkpointer.for_log(checkpoint_dir, self.log, keep, ladder=ladder,
                                                  ladder_keep=ladder_keep)
                             if checkpoint_dir is not None else None)
        self.reader = reader or audits.default_reader()
        #: the model is stale when no cluster record (a notification's or a sync's) was
        #: recorded for longer than this many seconds (None: no limit)
        self.max_age = max_age
        #: ... or when more than this many records are not folded yet (None: no limit)
        self.max_lag = max_lag
        self._every, self._interval, self._poll, self._batch = checkpoint_every, checkpoint_interval, poll, batch
        self._projection: Projection | None = None
        self._follower: Follower | None = None
        self._stopped = False
        #: why checkpoints were skipped when the engine started
        self.skipped_checkpoints: list[str] = []
        if start:
            self.start()

    # -- life cycle ----------------------------------------------------------
    def start(self) -> ModelEngine:
        """Restore the newest valid checkpoint, catch up to the log's end, then follow."""
        if self._projection is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped engine cannot start again: make a new one")
        projection = start(self.log, self.checkpointer, checkpoint_every=self._every)
        if self.checkpointer is not None:
            self.skipped_checkpoints = list(self.checkpointer.skipped)
        follower = Follower(self.log, projection, poll=self._poll, batch=self._batch,
                            checkpointer=self.checkpointer, checkpoint_every=self._every,
                            checkpoint_interval=self._interval)
        follower.checkpointed = self.checkpointer.loaded_position if self.checkpointer is not None else None
        self._projection, self._follower = projection, follower
        follower.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following, write a last checkpoint (if any dir), close the log we opened.
        Idempotent; the last model stays readable."""
        if self._stopped:
            return
        self._stopped = True
        if self._follower is not None:
            self._follower.stop(timeout)
        if self._owns_log:
            self.log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- reading -------------------------------------------------------------
    @property
    def projection(self) -> Projection:
        if self._projection is None:
            raise RuntimeError("the engine is not started (call start())")
        return self._projection

    def latest(self) -> ClusterModel:
        """The current model, O(1); it never changes under the caller."""
        return self.projection.latest()

    def wait_for(self, position: Position | str, timeout: float) -> ClusterModel:
        """Block until the model covers ``position`` (e.g. the log's end after a write
        of ours); return that model. TimeoutError after ``timeout`` s."""
        pos = Position.parse(position) if isinstance(position, str) else position
        n = len(self.latest().position.offsets)
        if len(pos.offsets) != n:
            raise ValueError(f"position {pos} names {len(pos.offsets)} partitions, the log has {n}")
        return self.projection.wait_for(lambda m: m.position.covers(pos), timeout)

    def health(self, log_end: Position | None = None) -> Health:
        """Lag, staleness, the last full sync, and why the model may be stale.
        ``log_end``: the log's end as the caller has just read it (not read again)."""
        model = self.latest()
        follower = self._follower
        stale = model.stale or (follower.stale if follower is not None else None)
        end: Position | None = None
        if self._stopped:
            stale = stale or "the engine is stopped: the model no longer follows the log"
        elif log_end is not None:
            end = log_end
        else:
            try:
                end = self.log.end()
            except (LogError, OSError) as exc:
                stale = stale or f"cannot read the log's end: {exc}"
        lag = None
        if end is not None and len(end.offsets) == len(model.position.offsets):
            lag = sum(max(0, e - p) for e, p in zip(end.offsets, model.position.offsets))
        age = (now_us() - model.recorded_at) / 1e6 if model.recorded_at else None
        if stale is None and self.max_age is not None and (age is None or age > self.max_age):
            stale = (f"no cluster record for {age:,.0f}s (max_age {self.max_age:g}s): is the bridge or the "
                     "syncer down?" if age is not None else "the log holds no cluster record yet")
        if stale is None and self.max_lag is not None and lag is not None and lag > self.max_lag:
            stale = f"{lag:,} records behind the log's end (max_lag {self.max_lag:,})"
        snap = model.last_snapshot
        following = follower is not None and follower.running
        return Health(
            position=model.position, log_end=end, lag=lag,
            staleness_s=age,
            last_sync_at=snap.completed_at if snap else None,
            last_sync_drift=snap.corrected if snap else None,
            following=following and not self._stopped, stale=stale,
            checkpointed=follower.checkpointed if follower is not None else None,
        )

    # -- audits --------------------------------------------------------------
    def record_audit(self, audit_id: str, model: ClusterModel | None = None, *,
                     digest: bool = False) -> AuditRead:
        """Record on the log that audit ``audit_id`` read ``model`` (default: the latest);
        durable when it returns. ``eventmodel replay --audit ID`` rebuilds it later."""
        if self._stopped and self._owns_log:
            raise RuntimeError("the engine is stopped (its log is closed): record audits before stop()")
        if model is None:
            model = self.latest()
        if model.hypothetical:
            raise ValueError("a what-if model was never on the log: record the model it was derived from")
        return audits.record_audit(self.log, audit_id, model, reader=self.reader, digest=digest)
