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
- A transient failure (``LogError``) is retried with capped exponential backoff
  (:class:`eventmodel.retry.RetryPolicy`, component ``bridge.append``) while the
  messages stay unacknowledged. Records the log refuses for good
  (``RecordsRejected``: too large, invalid) are dead-lettered and acknowledged, the rest
  of the batch is not appended again. Dead letters keep at most 64 KiB of a message's
  bytes with its full size and SHA-256, so no message is too large to dead-letter.
- On stop (SIGTERM) the current batch is stored and acknowledged if the log answers
  within ``stop_grace`` (5 s); otherwise it is left unacknowledged (RabbitMQ redelivers
  it) and the bridge stops anyway, without waiting for the stalled append.
- A dropped connection (RabbitMQ restart) is reconnected with capped exponential
  backoff (component ``bridge.connect``; a SIGTERM ends the wait at once); the
  unacknowledged messages of the lost channel are redelivered by RabbitMQ.
- With ``metrics`` (:class:`eventmodel.sources.amqp.metrics.BridgeMetrics`) the
  bridge's counters, append latency and retries are on a Prometheus registry.

Use :class:`Bridge` in-process (``start()`` runs it in a thread, ``stop()`` ends it
cleanly) or :func:`run_forever` in a process (SIGTERM/SIGINT stop it cleanly).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import attrs

from eventmodel.clock import now_us
from eventmodel.codec import EventTypes
from eventmodel.log.base import DeadLetter, EventLog, bounded_dead_letter
from eventmodel.retry import RetryEvent, RetryPolicy, RetryStopped, both_hooks
from eventmodel.sources.amqp.batching import (
    NORMALIZER_ERROR,
    OTHER,
    REFUSED_BY_NORMALIZER,
    UNREADABLE,
    Batch,
)
from eventmodel.sources.amqp.config import (
    BridgeConfig,
    BridgeConfigError,
    ExchangeMissing,
    amqp_url,
    queue_migration,
)
from eventmodel.sources.amqp.stats import BridgeStats
from eventmodel.sources.amqp.writer import Appender, BatchWriter, _Stopping
from eventmodel.urls import redact

if TYPE_CHECKING:
    from eventmodel.sources.amqp.metrics import BridgeMetrics

_log = logging.getLogger(__name__)


class Normalizer(Protocol):
    def normalize(self, raw: bytes | str | dict, *, recorded_at: int | None = None) -> Any: ...


def default_normalizer(
    types: EventTypes | None = None, *, service_down_time: float = 60  # Nova's default
) -> Normalizer:
    """The composite normalizer (Nova, Cinder, Ironic and the installed plugins), else Nova's.

    Plugin event types are registered into ``types``; give the log a codec over the
    same ``types`` so it can encode them. ``service_down_time`` is Nova's, in seconds
    (see :class:`~eventmodel.sources.nova.NovaNormalizer`); ValueError unless > 0.
    """
    try:
        from eventmodel.sources.plugins import CompositeNormalizer
    except ImportError:
        from eventmodel.sources.nova import NovaNormalizer

        return NovaNormalizer(types, service_down_time=service_down_time)
    return CompositeNormalizer.from_entry_points(types, service_down_time=service_down_time)


class _Session(NamedTuple):
    """One connection the bridge consumes on."""

    conn: Any
    channel: Any
    consumer_tag: str


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
        metrics: BridgeMetrics | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
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
        self.metrics = metrics
        if metrics is not None:
            metrics.watch(self.stats)
            on_retry = both_hooks(metrics.retries.hook, on_retry)
        #: called for every retry (reconnects and appends), e.g. the metrics' counter
        self.on_retry = on_retry
        self._next_depth = 0.0

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
        policy = self.reconnect_policy()
        self._next_stats = time.monotonic() + cfg.stats_interval if cfg.stats_interval else float("inf")
        self._appender = Appender()
        _log.info(
            "bridge: %s -> queue %s -> %s",
            ", ".join(str(t) for t in cfg.targets), cfg.queue, getattr(self.log, "url", self.log),
        )
        what = f"AMQP connection to {redact(cfg.amqp_url)}"
        lost: BaseException | None = None
        try:
            while not self._stop.is_set():
                try:
                    # a lost connection counts as the first failure: back off before reconnecting
                    session = policy.call(self._connect, what=what, first_error=lost)
                    lost = None
                    self._consume(session)
                except (BridgeConfigError, RetryStopped) as exc:
                    if isinstance(exc, RetryStopped):
                        break
                    raise
                except _Stopping as stopping:
                    self.stats.in_flight = stopping.in_flight
                    break
                except Exception as exc:  # noqa: BLE001 - nothing crashes the bridge
                    self._disconnected()
                    self._abandon_batch()
                    if self._stop.is_set():
                        break
                    lost = exc
        finally:
            self._disconnected()
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

    def reconnect_policy(self) -> RetryPolicy:
        """How (re)connecting is retried (component ``bridge.connect``): the configured
        backoff, ended at once by stop(); a configuration RabbitMQ refuses is not retried."""
        cfg = self.config
        return RetryPolicy(
            "bridge.connect", initial=cfg.reconnect_initial,
            cap=max(cfg.reconnect_max, cfg.reconnect_initial), stop=self._stop,
            give_up_on=(BridgeConfigError, _Stopping), log_interval=cfg.error_log_interval,
            logger=_log, on_retry=self._reconnecting,
        ).also_on_retry(self.on_retry)

    def _reconnecting(self, event: RetryEvent) -> None:
        self.stats.reconnects += 1
        self.stats.last_error = f"{type(event.error).__name__}: {event.error}"
        self.stats.last_error_at = now_us()

    def _disconnected(self) -> None:
        self._ready.clear()
        self.stats.connected = self.stats.consuming = False

    def _connect(self) -> _Session:
        """Connect, declare, start consuming; on failure the connection is dropped."""
        if not self._await_appender():
            raise RetryStopped("bridge.connect", None)
        import kombu

        cfg = self.config
        conn = kombu.Connection(
            amqp_url(cfg.amqp_url),
            heartbeat=cfg.heartbeat,
            connect_timeout=cfg.connect_timeout,
            transport_options={"confirm_publish": False},
        )
        self._conn = conn
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
        except BaseException:
            self._channel = None
            self._conn = None
            self._disconnected()
            try:
                conn.collect()  # drop it without network I/O
            except Exception:  # noqa: BLE001
                pass
            raise
        self.stats.consuming = True
        self._ready.set()
        _log.info("consuming from queue %s on %s", cfg.queue, redact(cfg.amqp_url))
        return _Session(conn, channel, consumer_tag)

    def _consume(self, session: _Session) -> None:
        """Consume until stop() (then store and acknowledge the current batch) or until
        the connection fails (raises)."""
        conn, channel = session.conn, session.channel
        clean = False
        try:
            writer = self._writer(conn, channel)
            amqp_conn = conn.connection
            self._next_depth = time.monotonic() + self.config.depth_interval
            while not self._stop.is_set():
                self._drain(amqp_conn, self._poll_timeout())
                conn.heartbeat_check()
                batch = self._batch
                if batch is not None and self._due(batch):
                    self._batch = None
                    self._commit(writer, batch)
                self._maybe_report()
                self._maybe_poll_depth(channel)
            # stop requested: no new deliveries, store and acknowledge what arrived
            self._ready.clear()
            self.stats.consuming = False
            try:
                channel.basic_cancel(session.consumer_tag)
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

    def _maybe_poll_depth(self, channel: Any) -> None:
        """Every ``depth_interval`` seconds, ask RabbitMQ how many messages wait in the queue."""
        interval = self.config.depth_interval
        now = time.monotonic()
        if not interval or now < self._next_depth:
            return
        self._next_depth = now + interval
        ok = channel.queue_declare(queue=self.config.queue, passive=True)
        self.stats.queue_depth = int(ok.message_count)

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
            on_retry=self.on_retry,
            on_append=self.metrics.on_append if self.metrics is not None else None,
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
            batch.add_letter(DeadLetter.of(
                raw=repr(msg.body).encode("utf-8", "replace"),
                reason=f"unreadable AMQP body: {type(exc).__name__}: {exc}",
                source=self._dl_source(exchange, routing_key), at=now_us(),
            ), UNREADABLE)
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
            batch.add_letter(
                DeadLetter.of(
                    raw=body, reason=f"normalizer error: {type(exc).__name__}: {exc}",
                    source=self._dl_source(exchange, routing_key), at=now_us(),
                ),
                NORMALIZER_ERROR,
            )
            return
        if status == "events" and outcome.events:
            batch.add_events(body, self._dl_source(exchange, routing_key), outcome.events)
        elif status in ("irrelevant", "events"):
            batch.irrelevant += 1
        else:
            kind = REFUSED_BY_NORMALIZER if getattr(outcome, "status", None) == "dead" else OTHER
            batch.add_letter(self._make_dead_letter(body, outcome, exchange, routing_key), kind)

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
                return bounded_dead_letter(self._dead_letter(body, outcome, source=source))
            except Exception:  # noqa: BLE001
                _log.debug("normalizer.dead_letter failed; building the dead letter here", exc_info=True)
        return DeadLetter.of(body, reason, source, now_us())


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
    metrics: BridgeMetrics | None = None,
) -> BridgeStats:
    """Run the bridge in this thread until SIGTERM/SIGINT; returns the final stats.

    On a signal the bridge stops consuming, stores and acknowledges its current batch,
    and disconnects. Raises :class:`BridgeConfigError` for a configuration RabbitMQ
    refuses.
    """
    bridge = Bridge(log, config, normalizer=normalizer, on_stats=on_stats, metrics=metrics)
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
