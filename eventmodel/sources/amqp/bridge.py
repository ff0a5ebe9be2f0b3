"""The AMQP bridge: Nova's versioned notifications on RabbitMQ → typed events on the log.

How it sits on the broker (the flags Nova's oslo.messaging uses, so declaring does not
conflict with it):

- For each target ``<exchange>.<topic>`` (default ``nova.versioned_notifications``, like
  Watcher's ``notification_topics``) the bridge makes sure the topic exchange
  ``<exchange>`` exists. If it already exists it is used as it is (a passive declare, so
  its flags never matter); if not, it is declared as oslo.messaging's rabbit driver
  declares it in ``notify_send``: ``type=topic, durable=amqp_durable_queues (False),
  auto_delete=amqp_auto_delete (False)`` — as every oslo.messaging listener (Watcher's,
  Ceilometer's) does with its own configuration. ``exchange_durable`` must therefore
  match the cloud's ``[oslo_messaging_rabbit] amqp_durable_queues``: with a mismatch,
  Nova's notifier (oslo.messaging 18.3.1) retries forever on PRECONDITION_FAILED, since
  its non-durable fallback does not cover the notification path (it declares its
  default queue, and with it the exchange, before ``_publish``). With
  ``declare_exchange=False`` the bridge never creates the exchange and waits (retrying)
  until Nova has; the price is that notifications Nova publishes before the bridge
  binds (e.g. right after a RabbitMQ restart) reach only oslo's default queue.
- The bridge consumes from ITS OWN queue (default ``eventmodel-bridge``, durable), bound
  with routing keys ``<topic>.info`` and ``<topic>.error``. It never reads oslo's default
  ``versioned_notifications.info`` queue (that one belongs to whoever else listens).
  Nova publishes persistent messages (``delivery_mode=2``), so what the durable queue
  holds survives a broker restart. Nova's exchange is transient by default: a restart
  removes it with the bridge's bindings, and the bridge declares both again when it
  reconnects (until then Nova's notifications reach only oslo's default queue).
- Manual acknowledgements, ``basic.qos`` prefetch. Messages are collected into batches
  (up to ``batch_size`` messages or ``batch_ms`` after the first one arrived), each is
  normalized (it ends as events, irrelevant or a dead letter), the batch's events are
  appended with one ``log.append`` and its dead letters with one
  ``log.append_dead_letters`` and only then is the batch acknowledged, with one
  ``basic.ack(multiple=True)``. At-least-once: a crash between append and ack
  redelivers messages whose events are already on the log; their event ids are
  deterministic, so the duplicates are recognisable and folding them is a no-op.
- The queue is declared single-active-consumer (``x-single-active-consumer``): with two
  bridges on it, one consumes and the other is a hot standby that RabbitMQ switches to
  (redelivering what was unacknowledged) when the active one's connection ends; two
  consumers taking turns would interleave their appends and break per-key order. A queue
  declared earlier without the argument is refused by RabbitMQ (PRECONDITION_FAILED); the
  bridge stops with the migration step (:func:`queue_migration`).
- Appends run on one writer thread (:class:`Appender`), one at a time: while one runs,
  the connection's thread keeps reading the socket (heartbeats, and new deliveries,
  which fill the next batch) and sending heartbeats, so an append that stalls for
  minutes does not cost the connection. A second append is never started while one is
  in flight, also not after a reconnect: the bridge reconnects only once an abandoned
  append has ended, so no batch is ever stored twice by queued copies.
- A transient failure (``LogError``) is retried with capped exponential backoff while
  the messages stay unacknowledged. Records the log refuses for good
  (``RecordsRejected``: too large, invalid) are dead-lettered and acknowledged, the rest
  of the batch is not appended again. Dead letters keep at most 64 KiB of a message's
  bytes with its full size and SHA-256, so no message is too large to dead-letter.
- On stop (SIGTERM) the current batch is stored and acknowledged if the log answers
  within ``stop_grace`` (5 s); otherwise it is left unacknowledged (RabbitMQ redelivers
  it) and the bridge stops anyway, without waiting for the stalled append.
- A dropped connection (RabbitMQ restart) is reconnected with capped exponential
  backoff; the unacknowledged messages of the lost channel are redelivered by RabbitMQ.

Use :class:`Bridge` in-process (``start()`` runs it in a thread, ``stop()`` ends it
cleanly) or :func:`run_forever` in a process (SIGTERM/SIGINT stop it cleanly).
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs

from eventmodel.clock import now_us
from eventmodel.codec import EventTypes
from eventmodel.events import Envelope
from eventmodel.urls import redact
from eventmodel.log.base import DEAD_LETTER_MAX_BYTES, DeadLetter, EventLog, LogError, RecordsRejected

_log = logging.getLogger(__name__)

DEFAULT_TARGETS: tuple[str, ...] = ("nova.versioned_notifications",)
DEFAULT_QUEUE = "eventmodel-bridge"
#: Nova sends versioned notifications at INFO and ERROR priority only
DEFAULT_PRIORITIES: tuple[str, ...] = ("info", "error")
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


class BridgeConfigError(RuntimeError):
    """The broker refused the bridge's configuration (e.g. the queue exists with other flags).

    Retrying cannot help, so the bridge stops and says why.
    """


class ExchangeMissing(RuntimeError):
    """The exchange does not exist and the bridge was told not to create it (retried)."""


class _Stopping(Exception):
    """Internal: stop was requested while a batch could not be stored."""

    def __init__(self, in_flight: bool) -> None:
        super().__init__("stopping" + (" with an append in flight" if in_flight else ""))
        #: an append of the abandoned batch is still running on the writer thread
        self.in_flight = in_flight


# ---------------------------------------------------------------------------
# Configuration and counters
# ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Target:
    """One ``exchange.topic`` pair, as in Watcher's ``notification_topics``."""

    exchange: str
    topic: str

    @classmethod
    def parse(cls, text: str) -> Target:
        exchange, sep, topic = text.strip().partition(".")
        if not sep or not exchange or not topic:
            raise ValueError(
                f"not a notification target: {text!r} (use <exchange>.<topic>, "
                "e.g. nova.versioned_notifications)"
            )
        return cls(exchange, topic)

    def routing_keys(self, priorities: Iterable[str]) -> list[str]:
        return [f"{self.topic}.{p}" for p in priorities]

    def __str__(self) -> str:
        return f"{self.exchange}.{self.topic}"


def amqp_url(url: str) -> str:
    """Accept oslo.messaging's ``rabbit://`` transport URLs as well as kombu's ``amqp://``."""
    parts = urlsplit(url)
    if parts.scheme in ("rabbit", "kombu"):
        path = parts.path
        if path in ("", "/"):
            path = "//"  # oslo's "rabbit://h:5672/" means the default vhost "/"
        return urlunsplit(("amqp", parts.netloc, path, parts.query, parts.fragment))
    return url


def oslo_url(url: str) -> str:
    """The oslo.messaging transport URL (``rabbit://``) for an ``amqp://`` URL."""
    parts = urlsplit(url)
    if parts.scheme in ("amqp", "pyamqp"):
        path = parts.path
        if path == "//":
            path = "/"
        return urlunsplit(("rabbit", parts.netloc, path, parts.query, parts.fragment))
    return url


@attrs.define
class BridgeConfig:
    amqp_url: str = DEFAULT_AMQP_URL
    targets: tuple[Target, ...] = attrs.field(
        default=tuple(Target.parse(t) for t in DEFAULT_TARGETS),
        converter=lambda ts: tuple(t if isinstance(t, Target) else Target.parse(t) for t in ts),
    )
    queue: str = DEFAULT_QUEUE
    priorities: tuple[str, ...] = attrs.field(default=DEFAULT_PRIORITIES, converter=tuple)
    #: a batch is appended when it has this many messages ...
    batch_size: int = 500
    #: ... or this long after its first message arrived
    batch_ms: float = 20.0
    #: unacknowledged messages RabbitMQ may send ahead (must exceed batch_size to keep the
    #: pipe full while a batch is being stored)
    prefetch: int = 1000
    #: flags of the exchange, used only when the bridge is the first to declare it; must
    #: match the cloud's [oslo_messaging_rabbit] amqp_durable_queues / amqp_auto_delete
    exchange_durable: bool = False
    exchange_auto_delete: bool = False
    #: False: never create the exchange, wait (retrying) until Nova has declared it
    declare_exchange: bool = True
    #: the bridge's own queue: durable so a broker restart keeps what it holds
    queue_durable: bool = True
    #: "classic" or "quorum" (quorum queues are always durable)
    queue_type: str = "classic"
    #: declare the queue single-active-consumer: one bridge consumes, any other is a hot
    #: standby (two consumers taking turns would break per-key order). False only for a
    #: queue declared without it that cannot be migrated yet (see ``queue_migration``)
    single_active_consumer: bool = True
    heartbeat: float = 30.0
    #: after a stop request, how long an append in flight is waited for before its batch
    #: is left unacknowledged (RabbitMQ redelivers it to the next bridge)
    stop_grace: float = 5.0
    connect_timeout: float = 5.0
    #: reconnect backoff: first wait, cap
    reconnect_initial: float = 0.5
    reconnect_max: float = 5.0
    #: append retry backoff: first wait, cap
    retry_initial: float = 0.1
    retry_max: float = 10.0
    #: at most one "still failing" line per this many seconds
    error_log_interval: float = 60.0
    #: log a stats line (and call on_stats) this often; 0 = never
    stats_interval: float = 30.0
    #: the ``source`` recorded on dead letters
    dead_letter_source: str = "amqp"

    def __attrs_post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.batch_ms < 0:
            raise ValueError("batch_ms must not be negative")
        if self.prefetch < 0 or self.prefetch > 65535:
            raise ValueError("prefetch must be 0..65535 (0 = unlimited)")
        if self.queue_type not in ("classic", "quorum"):
            raise ValueError(f"queue_type must be classic or quorum, not {self.queue_type!r}")
        if not self.targets:
            raise ValueError("at least one target (exchange.topic) is needed")
        if not self.priorities:
            raise ValueError("at least one priority is needed")
        if self.stop_grace < 0:
            raise ValueError("stop_grace must not be negative")


@attrs.define
class BridgeStats:
    """What the bridge has done. Outcome counters count messages acknowledged."""

    received: int = 0  # messages delivered by RabbitMQ (redeliveries included)
    acked: int = 0  # messages acknowledged after their batch was stored
    event_messages: int = 0  # acknowledged messages that produced events
    events: int = 0  # events appended
    irrelevant: int = 0  # acknowledged messages that produced no event, by design
    dead: int = 0  # acknowledged messages stored as dead letters
    batches: int = 0  # batches stored and acknowledged
    append_failures: int = 0  # failed append attempts (each retried)
    reconnects: int = 0  # connections lost and re-established (attempted)
    abandoned: int = 0  # received messages left unacknowledged (redelivered later)
    rejected: int = 0  # records the log refused for good (their messages dead-lettered)
    unstorable: int = 0  # dead letters refused even without their bytes (logged, acknowledged)
    in_flight: bool = False  # stopped while an append was still running (its batch unacknowledged)
    last_error: str | None = None
    last_error_at: int | None = None  # µs
    connected: bool = False
    consuming: bool = False
    started_at: int = attrs.field(factory=now_us)

    def snapshot(self) -> BridgeStats:
        return attrs.evolve(self)

    def line(self) -> str:
        secs = max((now_us() - self.started_at) / 1e6, 1e-6)
        text = (
            f"received={self.received} acked={self.acked} events={self.events} "
            f"event_messages={self.event_messages} irrelevant={self.irrelevant} "
            f"dead={self.dead} batches={self.batches} reconnects={self.reconnects} "
            f"append_failures={self.append_failures} rate={self.acked / secs:.0f}/s"
        )
        if self.last_error:
            text += f" last_error={self.last_error!r}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# ---------------------------------------------------------------------------
# Normalizers
# ---------------------------------------------------------------------------


class Normalizer(Protocol):
    def normalize(self, raw: bytes | str | dict, *, recorded_at: int | None = None) -> Any: ...


def default_normalizer(types: EventTypes | None = None) -> Normalizer:
    """The plugin-aware composite normalizer (Nova + installed plugins), else Nova's.

    Plugin event types are registered into ``types``; give the log a codec over the
    same ``types`` so it can encode them.
    """
    try:
        from eventmodel.sources.plugins import CompositeNormalizer
    except ImportError:
        from eventmodel.sources.nova import NovaNormalizer

        return NovaNormalizer(types)
    return CompositeNormalizer.from_entry_points(types)


# ---------------------------------------------------------------------------
# Batches: the part that decides what is acknowledged when
# ---------------------------------------------------------------------------


@attrs.define
class Batch:
    """Messages received since the last acknowledgement, already normalized."""

    opened: float  # monotonic time the first message arrived
    tags: list[int] = attrs.field(factory=list)
    events: list[Envelope] = attrs.field(factory=list)
    letters: list[DeadLetter] = attrs.field(factory=list)
    event_messages: int = 0
    irrelevant: int = 0
    events_stored: bool = False
    letters_stored: bool = False
    #: the log refused some dead letters; ``letters`` now holds them without their bytes
    letters_stripped: bool = False
    #: per message with events: (raw bytes, dead-letter source, its events), to set
    #: aside a message whose events the log cannot encode (see BatchWriter)
    origins: list[tuple[bytes, str, tuple[Envelope, ...]]] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.tags)

    def add_events(self, raw: bytes, source: str, events: Sequence[Envelope]) -> None:
        self.events.extend(events)
        self.event_messages += 1
        self.origins.append((raw, source, tuple(events)))

    def set_aside(self, is_bad: Callable[[Envelope], str | None]) -> int:
        """Turn messages with an event ``is_bad`` objects to into dead letters; returns
        how many. ``is_bad`` returns the reason, or None for a good event."""
        reasons = [next((r for r in map(is_bad, events) if r), None) for _, _, events in self.origins]
        return self._move({i: r for i, r in enumerate(reasons) if r is not None})

    def reject(self, rejected: dict[int, str]) -> int:
        """The log refused the events at these indexes of ``events`` for good: their
        messages become dead letters (the other events were stored). Returns how many."""
        owner: list[int] = []
        for i, (_, _, events) in enumerate(self.origins):
            owner.extend([i] * len(events))
        reasons: dict[int, str] = {}
        for index, reason in sorted(rejected.items()):
            if 0 <= index < len(owner):
                reasons.setdefault(owner[index], f"refused by the log: {reason}")
        return self._move(reasons)

    def _move(self, reasons: dict[int, str]) -> int:
        """Dead-letter the messages of ``origins`` at these indexes, with these reasons."""
        if not reasons:
            return 0
        keep: list[tuple[bytes, str, tuple[Envelope, ...]]] = []
        for i, (raw, source, events) in enumerate(self.origins):
            if i in reasons:
                self.letters.append(DeadLetter.of(raw, reasons[i], source, now_us()))
            else:
                keep.append((raw, source, events))
        self.origins = keep
        self.events = [e for _, _, evs in keep for e in evs]
        self.event_messages -= len(reasons)
        return len(reasons)

    @property
    def last_tag(self) -> int:
        return self.tags[-1]


class _Backoff:
    """Capped exponential backoff with jitter."""

    def __init__(self, initial: float, cap: float) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.attempt = 0


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
    - a transient failure (``LogError``, or anything unexpected) is retried with capped
      exponential backoff, nothing is acknowledged meanwhile;
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
        self._stop_seen: float | None = None

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
        s.batches += 1

    def _store(self, batch: Batch) -> None:
        backoff = _Backoff(self.retry_initial, self.retry_max)
        first_failure: float | None = None
        last_logged = 0.0
        attempts = 0
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
            except _Stopping:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure to store is retried
                if not batch.events_stored and not isinstance(exc, LogError) and self._set_aside(batch, exc):
                    continue  # an event the log cannot encode: its message is now a dead letter
                attempts += 1
                self.stats.append_failures += 1
                self.stats.last_error = f"append failed: {type(exc).__name__}: {exc}"
                self.stats.last_error_at = now_us()
                now = self.clock()
                if first_failure is None:
                    first_failure = last_logged = now
                    _log.error(
                        "cannot store a batch of %d messages on %s (%s); retrying, "
                        "nothing is acknowledged until it is stored",
                        len(batch), getattr(self.log, "url", "the log"), exc,
                    )
                elif now - last_logged >= self.error_log_interval:
                    last_logged = now
                    _log.error(
                        "still cannot store a batch of %d messages after %d attempts in "
                        "%.0fs: %s", len(batch), attempts, now - first_failure, exc,
                    )
                self._wait(backoff.next())
                continue
            if first_failure is not None:
                _log.warning(
                    "stored the batch after %d failed attempts (%.1fs)",
                    attempts, self.clock() - first_failure,
                )
            return

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
        future = self.appender.submit(fn, arg)
        while True:
            concurrent.futures.wait([future], self.wait_slice)
            if future.done():
                future.result()
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


def _size(letter: DeadLetter) -> int:
    return letter.size if letter.size >= 0 else len(letter.raw)


def _stripped(letter: DeadLetter, why: str) -> DeadLetter:
    """``letter`` without its bytes (their size and hash kept), for a log that refused it."""
    import hashlib

    sha = letter.sha256 or (hashlib.sha256(letter.raw).hexdigest() if letter.size < 0 else "")
    return attrs.evolve(letter, raw=b"", size=_size(letter), sha256=sha,
                        reason=f"{letter.reason} (bytes not kept: the log refused them: {why})")


def bounded(letter: DeadLetter) -> DeadLetter:
    """``letter`` with its bytes cut to the dead-letter bound (full size and hash kept)."""
    if letter.size < 0:
        return DeadLetter.of(letter.raw, letter.reason, letter.source, letter.at)
    if len(letter.raw) > DEAD_LETTER_MAX_BYTES:
        return attrs.evolve(letter, raw=letter.raw[:DEAD_LETTER_MAX_BYTES])
    return letter



# ---------------------------------------------------------------------------
# The bridge
# ---------------------------------------------------------------------------


class Bridge:
    """Consumes notifications from RabbitMQ and appends their events to a log.

    ``run()`` blocks until ``stop()``; ``start()`` runs it in a daemon thread.
    """

    def __init__(
        self,
        log: EventLog,
        config: BridgeConfig | None = None,
        *,
        normalizer: Normalizer | None = None,
        on_stats: Callable[[BridgeStats], None] | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = BridgeConfig(**overrides)
        elif overrides:
            config = attrs.evolve(config, **overrides)
        self.config = config
        self.log = log
        self.normalizer = normalizer if normalizer is not None else default_normalizer()
        self._dead_letter = getattr(self.normalizer, "dead_letter", None)
        self.on_stats = on_stats
        self.stats = BridgeStats()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch: Batch | None = None
        self._conn: Any = None
        self._channel: Any = None
        self._next_stats = 0.0
        self._normalizer_errors = 0
        self.error: BaseException | None = None  # why run() ended, if not by stop()
        self._appender: Appender | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> threading.Thread:
        """Run in a daemon thread; returns it."""
        if self._thread is not None:
            raise RuntimeError("bridge already started")
        self._thread = threading.Thread(target=self._run_in_thread, name="amqp-bridge", daemon=True)
        self._thread.start()
        return self._thread

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - kept for the owner to inspect
            self.error = exc
            _log.error("bridge stopped: %s", exc)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop consuming, store and acknowledge the current batch, disconnect."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Ask the bridge to stop (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the bridge consumes (queue declared and bound)."""
        return self._ready.wait(timeout)

    def wait_done(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # -- main loop -------------------------------------------------------
    def run(self) -> BridgeStats:
        """Consume until stop(); reconnects on connection loss. Returns the final stats."""
        cfg = self.config
        backoff = _Backoff(cfg.reconnect_initial, cfg.reconnect_max)
        last_logged = 0.0
        self._next_stats = time.monotonic() + cfg.stats_interval if cfg.stats_interval else float("inf")
        self._appender = Appender()
        _log.info(
            "bridge: %s -> queue %s -> %s",
            ", ".join(str(t) for t in cfg.targets), cfg.queue, getattr(self.log, "url", self.log),
        )
        try:
            while not self._stop.is_set():
                if not self._await_appender():
                    break
                try:
                    self._session(backoff)
                except BridgeConfigError:
                    raise
                except _Stopping as stopping:
                    self.stats.in_flight = stopping.in_flight
                    break
                except Exception as exc:  # noqa: BLE001 - nothing crashes the bridge
                    self._ready.clear()
                    self.stats.connected = self.stats.consuming = False
                    self._abandon_batch()
                    if self._stop.is_set():
                        break
                    self.stats.reconnects += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    self.stats.last_error_at = now_us()
                    delay = backoff.next()
                    now = time.monotonic()
                    if backoff.attempt <= 3 or now - last_logged >= cfg.error_log_interval:
                        last_logged = now
                        _log.warning(
                            "AMQP connection to %s lost or refused (%s: %s); reconnecting in "
                            "%.1fs (attempt %d)", redact(cfg.amqp_url), type(exc).__name__,
                            exc, delay, backoff.attempt,
                        )
                    self._stop.wait(delay)
        finally:
            self.stats.connected = self.stats.consuming = False
            self._ready.clear()
            if self._appender.busy:
                self.stats.in_flight = True
                _log.warning(
                    "stopped with an append still in flight (the log is stalled); its batch is "
                    "unacknowledged and RabbitMQ delivers it again, so if it still lands, its "
                    "records are stored twice (the fold skips the copies)")
            self._appender.close()  # never waits for an append in flight
            self._done.set()
            _log.info("bridge stopped: %s", self.stats.line())
            if self.on_stats is not None:
                try:
                    self.on_stats(self.stats.snapshot())
                except Exception:  # noqa: BLE001
                    _log.exception("stats callback failed")
        return self.stats

    def _session(self, backoff: _Backoff) -> None:
        import kombu

        cfg = self.config
        conn = kombu.Connection(
            amqp_url(cfg.amqp_url),
            heartbeat=cfg.heartbeat,
            connect_timeout=cfg.connect_timeout,
            transport_options={"confirm_publish": False},
        )
        self._conn = conn
        clean = False
        try:
            conn.connect()
            self.stats.connected = True
            channel = conn.channel()
            # raw bytes always: py-amqp would otherwise decode bodies by their
            # content_encoding property (a publisher's claim, not a fact)
            channel.auto_decode = False
            self._channel = channel
            self._declare(conn, channel)
            if cfg.prefetch:
                channel.basic_qos(0, cfg.prefetch, False)
            consumer_tag = channel.basic_consume(cfg.queue, callback=self._on_message, no_ack=False)
            self.stats.consuming = True
            self._ready.set()
            backoff.reset()
            _log.info("consuming from queue %s on %s", cfg.queue, redact(cfg.amqp_url))
            writer = self._writer(conn, channel)
            amqp_conn = conn.connection
            while not self._stop.is_set():
                self._drain(amqp_conn, self._poll_timeout())
                conn.heartbeat_check()
                batch = self._batch
                if batch is not None and self._due(batch):
                    self._batch = None
                    self._commit(writer, batch)
                self._maybe_report()
            # stop requested: no new deliveries, store and acknowledge what arrived
            self._ready.clear()
            self.stats.consuming = False
            try:
                channel.basic_cancel(consumer_tag)
            except Exception as exc:  # noqa: BLE001 - the batch is still stored if possible
                _log.debug("basic.cancel failed: %s", exc)
            if self._batch is not None:
                batch, self._batch = self._batch, None
                self._commit(writer, batch)
            clean = True
        except _Stopping:
            clean = True  # the connection is healthy: close it politely, RabbitMQ requeues at once
            self._abandon_batch()
            raise
        finally:
            self._channel = None
            self._conn = None
            try:
                if clean:
                    conn.release()  # a polite close: unacknowledged messages go back at once
                else:
                    conn.collect()  # the connection is broken: drop it without network I/O
            except Exception:  # noqa: BLE001
                pass

    def _writer(self, conn: Any, channel: Any) -> BatchWriter:
        cfg = self.config
        return BatchWriter(
            self.log,
            lambda tag: channel.basic_ack(tag, multiple=True),
            self.stats,
            retry_initial=cfg.retry_initial,
            retry_max=cfg.retry_max,
            error_log_interval=cfg.error_log_interval,
            pump=lambda seconds: self._pump(conn, seconds),
            stopping=self._stop.is_set,
            stop_grace=cfg.stop_grace,
            appender=self._appender,
        )

    def _commit(self, writer: BatchWriter, batch: Batch) -> None:
        try:
            writer.commit(batch)
        except _Stopping:
            self.stats.abandoned += len(batch)
            _log.warning(
                "stopping with a batch of %d messages not stored; they stay unacknowledged "
                "and RabbitMQ will deliver them again", len(batch),
            )
            raise
        except BaseException:
            self.stats.abandoned += len(batch)
            raise

    def _abandon_batch(self) -> None:
        if self._batch is not None:
            self.stats.abandoned += len(self._batch)
            self._batch = None

    @staticmethod
    def _drain(amqp_conn: Any, timeout: float) -> None:
        try:
            amqp_conn.drain_events(timeout=timeout)
        except socket.timeout:
            pass

    def _pump(self, conn: Any, seconds: float) -> None:
        """Serve the connection for about ``seconds`` while an append runs: read every
        frame that arrives (heartbeats; deliveries go into the next batch) and send
        heartbeats. Raises when the connection is lost."""
        amqp_conn = conn.connection
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                amqp_conn.drain_events(timeout=max(left, 0.001))
            except socket.timeout:
                break
        conn.heartbeat_check()
        self._maybe_report()  # stats go on during a stall

    def _await_appender(self) -> bool:
        """Before (re)connecting: wait until no append of an abandoned batch is in
        flight, so that two appends of one batch never run at once. False on stop."""
        if self._appender is None or self._appender.wait_idle(0):
            return True
        _log.warning("an append of an abandoned batch is still in flight; reconnecting once it ends")
        while not self._appender.wait_idle(0.25):
            if self._stop.is_set():
                return False
        return True

    @property
    def append_in_flight(self) -> bool:
        """True while an append runs on the writer thread (after a stop: one left behind)."""
        return self._appender is not None and self._appender.busy

    def _poll_timeout(self) -> float:
        batch = self._batch
        if batch is None:
            return 0.25
        left = batch.opened + self.config.batch_ms / 1000.0 - time.monotonic()
        return min(max(left, 0.0005), 0.25)

    def _due(self, batch: Batch) -> bool:
        return (
            len(batch) >= self.config.batch_size
            or time.monotonic() - batch.opened >= self.config.batch_ms / 1000.0
        )

    def _maybe_report(self) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + self.config.stats_interval
        _log.info("bridge: %s", self.stats.line())
        if self.on_stats is not None:
            try:
                self.on_stats(self.stats.snapshot())
            except Exception:  # noqa: BLE001 - a reporting bug must not stop the bridge
                _log.exception("stats callback failed")

    # -- declarations ----------------------------------------------------
    def _declare(self, conn: Any, channel: Any) -> None:
        from amqp.exceptions import PreconditionFailed

        cfg = self.config
        args: dict[str, Any] = {}
        durable = cfg.queue_durable
        if cfg.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
            durable = True
        if cfg.single_active_consumer:
            args["x-single-active-consumer"] = True
        try:
            channel.queue_declare(
                queue=cfg.queue, durable=durable, exclusive=False, auto_delete=False,
                arguments=args or None,
            )
        except PreconditionFailed as exc:
            if "x-single-active-consumer" in str(exc):
                raise BridgeConfigError(
                    f"queue {cfg.queue!r} exists without single-active-consumer, and RabbitMQ "
                    f"cannot change a queue's arguments ({exc}). "
                    + queue_migration(cfg.queue)
                ) from exc
            raise BridgeConfigError(
                f"queue {cfg.queue!r} exists with other settings than asked "
                f"(durable={durable}, type={cfg.queue_type}, single_active_consumer="
                f"{cfg.single_active_consumer}): {exc}; delete it or use --queue"
            ) from exc
        for target in cfg.targets:
            self._ensure_exchange(conn, channel, target.exchange)
            for key in target.routing_keys(cfg.priorities):
                channel.queue_bind(queue=cfg.queue, exchange=target.exchange, routing_key=key)
                _log.debug("bound %s to %s/%s", cfg.queue, target.exchange, key)

    def _ensure_exchange(self, conn: Any, channel: Any, name: str) -> None:
        """Use the exchange as it exists; declare it like oslo.messaging if it does not."""
        from amqp.exceptions import NotFound

        probe = conn.channel()
        try:
            probe.exchange_declare(name, "topic", passive=True)
        except NotFound:
            cfg = self.config
            if not cfg.declare_exchange:
                raise ExchangeMissing(
                    f"exchange {name!r} does not exist yet; waiting for its publisher to declare it"
                ) from None
            _log.info(
                "exchange %s does not exist yet; declaring it as oslo.messaging does "
                "(topic, durable=%s, auto_delete=%s)", name, cfg.exchange_durable,
                cfg.exchange_auto_delete,
            )
            channel.exchange_declare(
                name, "topic", durable=cfg.exchange_durable, auto_delete=cfg.exchange_auto_delete
            )
            return
        finally:
            try:
                probe.close()
            except Exception:  # noqa: BLE001 - already closed by the broker after 404
                pass

    # -- messages --------------------------------------------------------
    def _on_message(self, msg: Any) -> None:
        info = msg.delivery_info
        tag = info["delivery_tag"]
        self.stats.received += 1
        batch = self._batch
        if batch is None:
            batch = self._batch = Batch(opened=time.monotonic())
        exchange, routing_key = info.get("exchange", ""), info.get("routing_key", "")
        try:
            body = _raw_body(msg.body)
        except Exception as exc:  # noqa: BLE001 - a poison message must not stop the bridge
            batch.tags.append(tag)
            batch.letters.append(DeadLetter.of(
                raw=repr(msg.body).encode("utf-8", "replace"),
                reason=f"unreadable AMQP body: {type(exc).__name__}: {exc}",
                source=self._dl_source(exchange, routing_key), at=now_us(),
            ))
            return
        self.add_to_batch(batch, tag, body, exchange, routing_key)

    def add_to_batch(self, batch: Batch, tag: int, body: bytes, exchange: str = "", routing_key: str = "") -> None:
        """Normalize one message into ``batch`` (every message ends as events,
        irrelevant or a dead letter)."""
        batch.tags.append(tag)
        try:
            outcome = self.normalizer.normalize(body, recorded_at=now_us())
            status = outcome.status
        except Exception as exc:  # noqa: BLE001 - a normalizer bug dead-letters the input
            self._normalizer_errors += 1
            if self._normalizer_errors <= 10:
                _log.exception("normalizer failed on a %d-byte message", len(body))
            batch.letters.append(
                DeadLetter.of(
                    raw=body, reason=f"normalizer error: {type(exc).__name__}: {exc}",
                    source=self._dl_source(exchange, routing_key), at=now_us(),
                )
            )
            return
        if status == "events" and outcome.events:
            batch.add_events(body, self._dl_source(exchange, routing_key), outcome.events)
        elif status in ("irrelevant", "events"):
            batch.irrelevant += 1
        else:
            batch.letters.append(self._make_dead_letter(body, outcome, exchange, routing_key))

    def _dl_source(self, exchange: str, routing_key: str) -> str:
        base = self.config.dead_letter_source
        if exchange or routing_key:
            return f"{base}:{exchange}/{routing_key}"
        return base

    def _make_dead_letter(self, body: bytes, outcome: Any, exchange: str, routing_key: str) -> DeadLetter:
        source = self._dl_source(exchange, routing_key)
        reason = getattr(outcome, "reason", "") or f"status {getattr(outcome, 'status', '?')!r}"
        if getattr(outcome, "status", None) not in ("dead",):
            reason = f"unexpected normalizer status {outcome.status!r}: {reason}"
        elif self._dead_letter is not None:
            try:
                return bounded(self._dead_letter(body, outcome, source=source))
            except Exception:  # noqa: BLE001
                _log.debug("normalizer.dead_letter failed; building the dead letter here", exc_info=True)
        return DeadLetter.of(body, reason, source, now_us())


def queue_migration(queue: str) -> str:
    """What an operator does to move the bridge onto a single-active-consumer queue."""
    return (
        f"Migrate without losing notifications: run one bridge with a new queue name "
        f"(--queue {queue}-sac), wait until it consumes, stop the bridges of the old queue "
        f"once `rabbitmqctl list_queues name messages` shows {queue!r} at 0, then delete it "
        f"(`rabbitmqctl delete_queue {queue}`). Or in place: stop every bridge, "
        f"`rabbitmqctl delete_queue {queue}`, start the bridge (notifications sent meanwhile "
        f"are lost; the next full sync repairs them). Until then --no-single-active-consumer "
        f"keeps the old queue, with ONE bridge only."
    )


def _raw_body(body: Any) -> bytes:
    """The message body as bytes. py-amqp hands an empty body over as ``''``."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return bytes(body)


def run_forever(
    log: EventLog,
    config: BridgeConfig,
    *,
    normalizer: Normalizer | None = None,
    on_stats: Callable[[BridgeStats], None] | None = None,
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
) -> BridgeStats:
    """Run the bridge in this thread until SIGTERM/SIGINT; returns the final stats.

    On a signal the bridge stops consuming, stores and acknowledges its current batch,
    and disconnects. Raises :class:`BridgeConfigError` for a configuration RabbitMQ
    refuses.
    """
    bridge = Bridge(log, config, normalizer=normalizer, on_stats=on_stats)
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        _log.info("signal %d: stopping after the current batch", signum)
        bridge.request_stop()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    try:
        return bridge.run()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
