"""Storing a batch, then acknowledging it: the one writer thread (:class:`Appender`) and
:class:`BatchWriter`, which retries a failed append while it keeps the AMQP connection served."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from eventmodel.clock import now_us
from eventmodel.events import Envelope
from eventmodel.log.base import EventLog, LogError, RecordsRejected
from eventmodel.retry import RetryEvent, RetryPolicy
from eventmodel.sources.amqp.batching import Batch, _size, _stripped
from eventmodel.sources.amqp.stats import BridgeStats

_log = logging.getLogger(__name__)


class _Stopping(Exception):
    """Internal: stop was requested while a batch could not be stored."""

    def __init__(self, in_flight: bool) -> None:
        super().__init__("stopping" + (" with an append in flight" if in_flight else ""))
        #: an append of the abandoned batch is still running on the writer thread
        self.in_flight = in_flight


class Appender:
    """The bridge's one writer thread: runs one append at a time and never two.

    Refusing a second append while one is in flight is what keeps an abandoned append
    from being stored again later: nothing is ever queued behind a blocked append. The
    thread is a daemon, so a process told to stop while an append is blocked (a Kafka
    outage) can exit without waiting for it.
    """

    def __init__(self, name: str = "bridge-append") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[Any], Any], Any] | None] = (
            queue.SimpleQueue()
        )
        self._current: concurrent.futures.Future[Any] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> concurrent.futures.Future[Any]:
        """Start ``fn(arg)`` on the writer thread; refuses while an append is in flight."""
        if self.busy:
            raise RuntimeError("an append is still in flight; the bridge never starts a second one")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._current = future
        self._jobs.put((future, fn, arg))
        return future

    @property
    def busy(self) -> bool:
        """True while an append runs (it may be one whose batch was abandoned)."""
        current = self._current
        return current is not None and not current.done()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the append in flight to end; True if none is."""
        current = self._current
        if current is None:
            return True
        concurrent.futures.wait([current], timeout)
        return current.done()

    def close(self) -> None:
        """Let the thread end after the append in flight (never waits for it)."""
        if self._thread is not None:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, arg = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(arg))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(exc)


class BatchWriter:
    """Stores a batch and only then acknowledges it.

    - events are appended with one ``log.append``, dead letters with one
      ``log.append_dead_letters``; each part is stored once (a retry does not repeat a
      part that succeeded);
    - the append runs on the :class:`Appender`'s thread while this thread (the AMQP
      connection's) calls ``pump(seconds)``, which serves the connection: it reads
      frames (heartbeats, new deliveries) and sends heartbeats, so an append that
      blocks for minutes does not cost the connection. ``pump`` raises when the
      connection is lost: the batch is abandoned (RabbitMQ redelivers it) and the
      append in flight is left to finish, never repeated meanwhile;
    - a transient failure (``LogError``, or anything unexpected) is retried by a
      :class:`~eventmodel.retry.RetryPolicy` (component ``bridge.append``: capped
      exponential backoff with jitter, each retry logged, counted in ``append_failures``
      and reported to ``on_retry``), nothing is acknowledged meanwhile; the backoff
      serves the connection too;
    - ``RecordsRejected`` (refused for good, the rest stored): the refused records'
      messages become dead letters, nothing stored is appended again;
    - once ``stopping()`` is true: no new attempt starts, and an append in flight is
      waited for at most ``stop_grace`` seconds; then the batch is abandoned
      (:class:`_Stopping`), unacknowledged;
    - ``ack(last_tag)`` acknowledges the whole batch (``basic.ack`` with ``multiple``).
    """

    #: longest wait on the append before serving the connection again (seconds)
    wait_slice = 0.2
    #: how long each turn of serving the connection may take while an append runs
    pump_slice = 0.05

    def __init__(
        self,
        log: EventLog,
        ack: Callable[[int], None],
        stats: BridgeStats,
        *,
        retry_initial: float = 0.1,
        retry_max: float = 10.0,
        error_log_interval: float = 60.0,
        pump: Callable[[float], None] = time.sleep,
        stopping: Callable[[], bool] = lambda: False,
        stop_grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        appender: Appender | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        on_append: Callable[[float], None] | None = None,
    ) -> None:
        self.log = log
        self.ack = ack
        self.stats = stats
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.error_log_interval = error_log_interval
        self.pump = pump
        self.stopping = stopping
        self.stop_grace = stop_grace
        self.clock = clock
        #: the bridge's one writer thread, shared by every writer of a bridge
        self.appender = appender if appender is not None else Appender()
        #: called with each failed append attempt about to be retried (the metrics)
        self.on_retry = on_retry
        #: called with the seconds each successful append took (the metrics)
        self.on_append = on_append
        self._stop_seen: float | None = None
        self._policy: RetryPolicy | None = None
        self._policy_key: tuple[Any, ...] = ()

    def commit(self, batch: Batch) -> None:
        """Store then acknowledge; raises only when the batch must be abandoned."""
        if not batch.tags:
            return
        self._store(batch)
        self.ack(batch.last_tag)
        s = self.stats
        s.acked += len(batch.tags)
        s.event_messages += batch.event_messages
        s.events += len(batch.events)
        s.irrelevant += batch.irrelevant
        s.dead += len(batch.letters)
        for kind, n in batch.letters_by_kind().items():
            s.dead_by_kind[kind] = s.dead_by_kind.get(kind, 0) + n
        s.batches += 1

    def retry_policy(self) -> RetryPolicy:
        """How storing a batch is retried: backoff served by ``pump``, bounded logging
        (made again only when the settings it is made of change)."""
        key = (self.retry_initial, self.retry_max, self.error_log_interval, self.clock, self.on_retry)
        if self._policy is None or self._policy_key != key:
            self._policy_key = key
            self._policy = RetryPolicy(
                "bridge.append", initial=self.retry_initial, cap=max(self.retry_max, self.retry_initial),
                give_up_on=(_Stopping,), log_interval=self.error_log_interval, logger=_log,
                log_level=logging.ERROR, clock=self.clock, on_retry=self._failed,
            ).also_on_retry(self.on_retry)
        return self._policy

    def _store(self, batch: Batch) -> None:
        failures_before = self.stats.append_failures
        started = self.clock()
        what = (f"storing a batch of {len(batch)} messages on {getattr(self.log, 'url', 'the log')} "
                "(nothing is acknowledged until it is stored)")
        self.retry_policy().call(lambda: self._attempt(batch), what=what, sleep=self._wait)
        failed = self.stats.append_failures - failures_before
        if failed:
            _log.warning("stored the batch after %d failed attempts (%.1fs)", failed, self.clock() - started)

    def _failed(self, event: RetryEvent) -> None:
        self.stats.append_failures += 1
        self.stats.last_error = f"append failed: {type(event.error).__name__}: {event.error}"
        self.stats.last_error_at = now_us()

    def _attempt(self, batch: Batch) -> None:
        """One attempt at storing what of ``batch`` is not stored yet; raises to be retried."""
        while True:
            try:
                if not batch.events_stored:
                    if batch.events:
                        try:
                            self._call(self.log.append, batch.events)
                        except RecordsRejected as exc:
                            self._rejected_events(batch, exc)
                    batch.events_stored = True
                if not batch.letters_stored:
                    if batch.letters:
                        try:
                            self._call(self.log.append_dead_letters, batch.letters)
                        except RecordsRejected as exc:
                            if self._rejected_letters(batch, exc):
                                continue  # store the refused ones again, without their bytes
                    batch.letters_stored = True
                return
            except _Stopping:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure to store is retried
                if not batch.events_stored and not isinstance(exc, LogError) and self._set_aside(batch, exc):
                    continue  # an event the log cannot encode: its message is now a dead letter
                raise

    def _rejected_events(self, batch: Batch, exc: RecordsRejected) -> None:
        moved = batch.reject(exc.rejected)
        self.stats.rejected += len(exc.rejected)
        _log.error(
            "the log refused %d record(s) for good (%s); their %d message(s) are stored as "
            "dead letters, the rest of the batch was stored", len(exc.rejected), exc, moved,
        )

    def _rejected_letters(self, batch: Batch, exc: RecordsRejected) -> bool:
        """Dead letters refused for good (the others were stored). Once more without their
        bytes (size and hash kept); refused again, they are counted and logged. Returns
        True when some are to be stored again."""
        refused = [batch.letters[i] for i in sorted(exc.rejected) if 0 <= i < len(batch.letters)]
        self.stats.rejected += len(refused)
        if batch.letters_stripped:
            self.stats.unstorable += len(refused)
            _log.error(
                "the log refused %d dead letter(s) even without their bytes (%s); they are "
                "acknowledged without a record: %s", len(refused), exc,
                "; ".join(f"{d.source} {d.reason} ({_size(d)} bytes, sha256 {d.sha256 or '?'})" for d in refused),
            )
            return False
        batch.letters = [_stripped(d, exc.rejected.get(i, "")) for i, d in
                         ((i, batch.letters[i]) for i in sorted(exc.rejected) if 0 <= i < len(batch.letters))]
        batch.letters_stripped = True
        _log.error("the log refused %d dead letter(s) (%s); storing them again without their bytes",
                   len(refused), exc)
        return bool(batch.letters)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run one append on the writer thread while this thread serves the AMQP
        connection; return its result or raise its error."""
        began = time.monotonic()
        future = self.appender.submit(fn, arg)
        while True:
            concurrent.futures.wait([future], self.wait_slice)
            if future.done():
                future.result()
                if self.on_append is not None:
                    self.on_append(time.monotonic() - began)
                return
            if self.stopping():
                now = self.clock()
                if self._stop_seen is None:
                    self._stop_seen = now
                    _log.warning("stop requested while an append is in flight; waiting up to %.0fs for it",
                                 self.stop_grace)
                elif now - self._stop_seen >= self.stop_grace:
                    raise _Stopping(in_flight=True)
            self.pump(self.pump_slice)  # may raise: connection lost, the batch is abandoned

    def _set_aside(self, batch: Batch, exc: Exception) -> int:
        """After an append failed with something other than LogError (a bug, not an
        outage): dead-letter the messages whose events the log's codec cannot encode, so
        one bad message does not block the bridge forever. Returns how many."""
        codec = getattr(self.log, "codec", None)
        if codec is None:
            return 0

        def is_bad(env: Envelope) -> str | None:
            try:
                codec.encode(env)
            except Exception as err:  # noqa: BLE001
                return f"event {env.type} cannot be encoded for the log: {type(err).__name__}: {err}"
            return None

        moved = batch.set_aside(is_bad)
        if moved:
            _log.error("append failed (%s); %d messages whose events cannot be encoded are "
                       "stored as dead letters instead", exc, moved)
        return moved

    def _wait(self, delay: float) -> None:
        """Back off ``delay`` seconds, serving the connection; a stop ends it at once."""
        deadline = self.clock() + delay
        while True:
            if self.stopping():
                raise _Stopping(in_flight=False)
            left = deadline - self.clock()
            if left <= 0:
                return
            self.pump(min(left, 0.25))
