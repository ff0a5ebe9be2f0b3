"""The model a ``serve`` process holds: restored and followed in the background, its lag
(the engine's health) sampled, its past read back from the log on demand.

:class:`ModelService` embeds one :class:`~projections.engine.ModelEngine` (newest valid
checkpoint + the tail, then a follower writing checkpoints) over the log. The HTTP
layer only reads from it. Restoring runs on a thread so that the process answers
``/healthz`` at once; until it is done, :meth:`ModelService.model` raises
:class:`NotReady`.
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from eventmodel.errors import ServeError
from eventmodel.clock import now_us
from eventmodel.log.base import DeadLetter, EventLog, LogError, Position, PositionNotCovered, Record
from eventmodel.log.key_page import KeyPage
from eventmodel.retry import RetryEvent, RetryPolicy, RetryStopped
from eventmodel.serve.access import redact_dead_letter, redact_text
from projections.checkpoint import Checkpointer
from projections.engine import Health, ModelEngine
from projections.model import ClusterModel
from projections.projection import Projection
from projections.replay import history, model_at
from projections.state import SnapshotResult

_log = logging.getLogger(__name__)


class NotReady(ServeError, RuntimeError):
    """The model is still being restored (or restoring failed)."""


class BadRequest(ServeError, ValueError):
    """A position, time or parameter the log cannot answer for; the message says why."""


@attrs.frozen(slots=True)
class PartitionLag:
    """How far the model is behind one partition of the log."""

    partition: int
    position: int  # the model's next offset
    end: int  # the log's end
    records: int
    seconds: float  # age of the oldest record not folded yet (0 when caught up)


@attrs.frozen(slots=True)
class Sample:
    """One look at the log's end beside the model's position."""

    at: int  # µs
    partitions: tuple[PartitionLag, ...] = ()
    error: str | None = None  # why the log's end could not be read

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    @property
    def seconds(self) -> float:
        return max((p.seconds for p in self.partitions), default=0.0)


@attrs.frozen(slots=True)
class DeadLetters:
    """What the log's dead letters say, read every so often (redacted)."""

    total: int = 0
    by_reason: dict[str, int] = attrs.field(factory=dict)
    newest: tuple[DeadLetter, ...] = ()  # newest last
    read_at: int = 0
    error: str | None = None


def reason_class(reason: str) -> str:
    """A bounded label for a dead letter's reason: its text up to the first colon."""
    head = reason.split(":", 1)[0].strip() or "unknown"
    return head[:60]


class HeldLog:
    """A log that, while held, reads nothing: the follower then folds nothing new while the
    log's end (and so the engine's lag) grows (SIGUSR2 on ``serve``). Everything else is the log's."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.held = False

    def read(self, start: Position, end: Position | None = None, batch: int = 5000) -> Iterator[list[Record]]:
        if self.held:
            return iter(())
        return self._log.read(start, end, batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class ModelService:
    """Restores and follows the model; samples the lag; answers questions about the past."""

    def __init__(self, log: EventLog, *, checkpoint_dir: Path | None = None, checkpoint_every: int = 500_000,
                 checkpoint_interval: float | None = 600.0, ladder: int = 0, sample_every: float = 1.0, dead_letters_every: float = 30.0, ready_lag: float = 30.0,
                 syncs_kept: int = 50, dead_letters_kept: int = 1000, models_cached: int = 4,
                 retry_initial: float = 1.0, freeze_gc: bool = False, refreeze_every: float = 600.0) -> None:
        self.log = log
        self.checkpoint_dir = checkpoint_dir
        self.ladder = ladder
        self.sample_every = sample_every
        self.dead_letters_every = dead_letters_every
        self.ready_lag = ready_lag
        #: /readyz fails when the last lag sample is older than this (a sampler stuck on the log)
        self.sample_overdue = max(30.0, 10 * sample_every)
        self.dead_letters_kept = dead_letters_kept
        self.retry_initial = retry_initial
        #: move the model out of the cyclic garbage collector's sight after restoring, and
        #: again every ``refreeze_every`` s (see :meth:`_freeze`); for a process of its own
        self.freeze_gc = freeze_gc
        self.refreeze_every = refreeze_every
        #: called for each retry of the restore (the app counts them in its metrics)
        self.on_retry: Callable[[RetryEvent], None] | None = None
        self.started_at = now_us()
        self.restore_error: str | None = None
        self.skipped_checkpoints: list[str] = []
        self.projection: Projection | None = None
        self.health: Health | None = None  # the engine's, as of the last sample
        self.sample = Sample(at=0)
        self.dead = DeadLetters()
        self.syncs: collections.deque[SnapshotResult] = collections.deque(maxlen=syncs_kept)
        self._held = HeldLog(log)
        self.engine = ModelEngine(self._held, checkpoint_dir, checkpoint_every=checkpoint_every,  # type: ignore[arg-type]
                                  checkpoint_interval=checkpoint_interval, ladder=ladder, start=False)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._models: collections.OrderedDict[Position, ClusterModel] = collections.OrderedDict()
        self._models_cached = models_cached
        self._replay_lock = threading.Lock()
        self._first_unread: dict[tuple[int, int], int] = {}

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> ModelService:
        for target, name in ((self._restore, "eventmodel-restore"), (self._sampler, "eventmodel-sampler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop following (writing a last checkpoint when there is a checkpoint directory)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        if self.projection is not None:
            self.engine.stop(timeout)

    def _restore(self) -> None:
        """Restore and start following; a log that cannot be read yet (a broker still
        starting) is retried with backoff until it can, or until :meth:`stop`."""

        def failed(event: RetryEvent) -> None:
            self.restore_error = f"{type(event.error).__name__}: {event.error} (retrying in {event.delay:.0f}s)"

        policy = RetryPolicy("serve.restore", initial=self.retry_initial, cap=max(30.0, self.retry_initial), stop=self._stop,
                              on_retry=failed).also_on_retry(self.on_retry)
        try:
            policy.call(self.engine.start)
        except RetryStopped:
            return
        self.restore_error = None
        self._freeze()
        self.skipped_checkpoints = list(self.engine.skipped_checkpoints)
        projection = self.engine.projection
        last = projection.latest().last_snapshot
        if last is not None:
            self.syncs.append(last)
        self.projection = projection

    def _freeze(self) -> None:
        """With ``freeze_gc``: collect once, then freeze what is left (``gc.freeze``).

        A model of 50,000 instances is a few hundred thousand tracked objects; a full
        collection walks them all (1–2 s on a busy 2-core machine), stalling every answer.
        The model's objects are acyclic (refcounting frees them when a newer model drops
        them), so the collector has nothing to find there: frozen, they are never walked
        again. Objects made since are frozen at the next call, after a collection has
        taken whatever cyclic garbage there was."""
        if self.freeze_gc:
            gc.collect()
            gc.freeze()

    # -- reading the live model ------------------------------------------------
    def model(self) -> ClusterModel:
        """The current model, O(1); :class:`NotReady` while restoring."""
        if self.projection is None:
            if self.restore_error:
                raise NotReady(f"restoring the model: the log cannot be read yet: {self.restore_error}")
            raise NotReady("restoring the model: newest valid checkpoint, then the log's tail")
        return self.projection.latest()

    @property
    def held(self) -> bool:
        return self._held.held

    def hold(self, held: bool | None = None) -> bool:
        """Hold (True), release (False) or toggle (None) the follower; returns the new state."""
        self._held.held = (not self._held.held) if held is None else held
        return self._held.held

    def stale(self) -> str | None:
        """Why the model may be out of date, or None."""
        if self.projection is None:
            return self.restore_error
        reason = self.projection.latest().stale
        if reason:
            return reason
        health = self.health
        if health is not None and health.stale:
            return health.stale
        if health is not None and not health.following and not self._stop.is_set():
            return "the follower is not running"
        if self.sample.error:
            return f"the log's end cannot be read: {self.sample.error}"
        return None

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): restored, not stale, and no record older than ``ready_lag`` unread."""
        if self.projection is None:
            try:
                self.model()
            except NotReady as exc:
                return False, str(exc)
        stale = self.stale()
        if stale:
            return False, f"stale: {stale}"
        if not self.sample.at:
            return False, "the log's end was not read yet"
        age = (now_us() - self.sample.at) / 1e6
        if age > self.sample_overdue:
            return False, (f"the lag was last sampled {age:.0f}s ago (every {self.sample_every:g}s expected): "
                           "the sampler is stuck on the log")
        lag = self.sample.seconds
        if lag > self.ready_lag:
            return False, f"behind the log: oldest unread record is {lag:.1f}s old (bound {self.ready_lag:g}s)"
        return True, "caught up"

    # -- sampling ----------------------------------------------------------------
    def _sampler(self) -> None:
        next_dead = 0.0
        next_freeze = time.monotonic() + self.refreeze_every
        while not self._stop.is_set():
            try:
                if self.projection is not None and time.monotonic() >= next_freeze:
                    self._freeze()
                    next_freeze = time.monotonic() + self.refreeze_every
                if self.projection is not None:
                    self.health = self.engine.health()
                    self.sample = self.take_sample(self.health)
                    last = self.projection.latest().last_snapshot
                    if last is not None and (not self.syncs or self.syncs[-1] is not last):
                        self.syncs.append(last)
                if time.monotonic() >= next_dead:
                    self.dead = self.read_dead_letters()
                    next_dead = time.monotonic() + self.dead_letters_every
            except Exception as exc:  # noqa: BLE001 - the sampler never dies: /readyz says why
                _log.exception("serve: sampling failed")
                self.sample = Sample(at=now_us(), partitions=self.sample.partitions,
                                     error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.sample_every)

    def take_sample(self, health: Health) -> Sample:
        """The lag in ``health`` (the engine's: the log's end beside the model's position),
        per partition, with the age of the oldest record not folded yet."""
        now = now_us()
        pos, end = health.position, health.log_end
        try:
            if end is None:
                raise LogError(health.stale or "the log's end was not read")
            if len(end.offsets) != len(pos.offsets):
                raise LogError(f"the log has {len(end.offsets)} partitions, the model {len(pos.offsets)}")
            out = []
            for p, (mine, last) in enumerate(zip(pos.offsets, end.offsets, strict=True)):
                behind = max(0, last - mine)
                seconds = 0.0
                if behind:
                    recorded = self._recorded_at(p, pos)
                    seconds = max(0.0, (now - recorded) / 1e6) if recorded else 0.0
                out.append(PartitionLag(p, mine, last, behind, seconds))
        except Exception as exc:  # noqa: BLE001 - the sample says why
            return Sample(at=now, partitions=self.sample.partitions, error=f"{type(exc).__name__}: {exc}")
        return Sample(at=now, partitions=tuple(out))

    def _recorded_at(self, partition: int, pos: Position) -> int:
        """recorded_at of the first record at or after ``pos`` in ``partition`` (memoised)."""
        key = (partition, pos.offsets[partition])
        if key not in self._first_unread:
            upto = list(pos.offsets)
            upto[partition] += 1
            recorded = 0
            for batch in self.log.read(pos, Position(tuple(upto)), 1):
                if batch:
                    recorded = batch[0].envelope.recorded_at
                    break
            if len(self._first_unread) > 64:
                self._first_unread.clear()
            self._first_unread[key] = recorded
        return self._first_unread[key]

    def read_dead_letters(self) -> DeadLetters:
        """Count the log's dead letters by reason and keep the newest (redacted)."""
        try:
            total = 0
            by_reason: collections.Counter[str] = collections.Counter()
            newest: collections.deque[DeadLetter] = collections.deque(maxlen=self.dead_letters_kept)
            for letter in self.log.dead_letters():
                total += 1
                by_reason[reason_class(letter.reason)] += 1
                newest.append(letter)
            # few labels: the 30 commonest reasons, the rest as "other"
            common = dict(by_reason.most_common(30))
            other = total - sum(common.values())
            if other:
                common["other"] = common.get("other", 0) + other
            return DeadLetters(total, common, tuple(redact_dead_letter(d) for d in newest), now_us())
        except Exception as exc:  # noqa: BLE001 - keep the last good count, say why
            return attrs.evolve(self.dead, error=f"{type(exc).__name__}: {exc}", read_at=now_us())

    # -- the past -----------------------------------------------------------------
    def check_position(self, pos: Position) -> Position:
        """``pos`` if the log can rebuild the model there, else :class:`BadRequest`."""
        n = len(self.model().position.offsets)
        if len(pos.offsets) != n:
            raise BadRequest(f"position {pos} names {len(pos.offsets)} partition(s), the log has {n}")
        end = self.log.end()
        if not end.covers(pos):
            raise BadRequest(f"position {pos} is past the end of the log ({end})")
        first = self.log.start()
        if first.total and not pos.covers(first):
            raise BadRequest(f"position {pos} is before the log's start ({first}): those records were deleted")
        return pos

    def position_at(self, time_us: int) -> Position:
        return self.log.position_at(time_us)

    def model_at(self, pos: Position | None) -> ClusterModel:
        """The model at ``pos`` (None: now), replayed from the log (the last few kept)."""
        live = self.model()
        if pos is None or pos == live.position:
            return live
        self.check_position(pos)
        return self.cached_model(pos) or self.build_model(pos)

    def cached_model(self, pos: Position) -> ClusterModel | None:
        """The model at ``pos`` if one of the last few built, else None."""
        with self._replay_lock:
            cached = self._models.get(pos)
            if cached is not None:
                self._models.move_to_end(pos)
            return cached

    def build_model(self, pos: Position, cancel: threading.Event | None = None) -> ClusterModel:
        """Replay the model at ``pos`` from the nearest checkpoint (then keep it among the
        last few); :class:`Cancelled` between two batches once ``cancel`` is set."""
        ck = (Checkpointer.for_log(self.checkpoint_dir, self.log, ladder=self.ladder)
              if self.checkpoint_dir else None)
        model = replay_model(self.log, pos, ck, cancel.is_set if cancel is not None else lambda: False)
        with self._replay_lock:
            self._models[pos] = model
            while len(self._models) > self._models_cached:
                self._models.popitem(last=False)
        return model

    def history(self, key: str) -> list[Record]:
        """Every record of one entity key, in log order."""
        return list(history(self.log, key))

    def history_page(self, key: str, before: int | None, limit: int) -> KeyPage:
        """Up to ``limit`` records of ``key`` before offset ``before``, newest first: the
        log's own backward read (O(limit) on SQLite; bounded scan on Kafka), else a scan
        that keeps only the last ``limit + 1`` (logs without one, e.g. in tests)."""
        back = getattr(self.log, "read_key_back", None)
        if back is not None:
            return back(key, before, limit)
        last: collections.deque[Record] = collections.deque(maxlen=limit + 1)
        for rec in history(self.log, key):
            if before is None or rec.offset < before:
                last.append(rec)
        newest = list(reversed(last))
        more = len(newest) > limit
        return KeyPage(newest[:limit], newest[limit - 1].offset if more else None)

    def public(self, text: str) -> str:
        """``text`` fit for an answer: the log's file path and the checkpoint directory
        replaced by a name, credentials redacted."""
        for secret, name in self._private_names():
            if secret:
                text = text.replace(secret, name)
        return redact_text(text)

    def _private_names(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = [(str(self.log.url), describe_log(str(self.log.url)))]
        path = getattr(self.log, "path", None)
        for p, name in ((path, "<log file>"), (self.checkpoint_dir, "<checkpoint dir>")):
            if p:
                for form in {os.path.realpath(p), os.path.abspath(p), str(p)}:
                    out.append((form, name))
        out.sort(key=lambda pair: -len(pair[0]))  # longest first: a path before its prefix
        return out


def replay_model(log: EventLog, pos: Position, checkpointer: Checkpointer | None,
                 cancelled: Callable[[], bool]) -> ClusterModel:
    """The model at ``pos`` replayed from the nearest checkpoint; :class:`BadRequest` for a
    position the log cannot rebuild, :class:`~eventmodel.serve.limits.Cancelled` between
    two batches once ``cancelled()`` (in this process or a replay worker's)."""
    from eventmodel.serve.limits import Cancelled

    def check(_n: int) -> None:
        if cancelled():
            raise Cancelled(f"replay to {pos} abandoned: every client that asked for it left")

    check(0)
    try:
        return model_at(log, to=pos, checkpointer=checkpointer, progress=check)
    except (PositionNotCovered, ValueError) as exc:
        raise BadRequest(str(exc)) from None


def describe_log(url: str) -> str:
    """The log as answers name it: its kind, with no file path or host (``sqlite log``,
    ``kafka log (topic events)``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else "unknown"
    if scheme == "kafka":
        topic = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return f"kafka log (topic {topic})"
    return f"{scheme} log"
