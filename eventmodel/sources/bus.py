"""Publish wire notifications onto RabbitMQ exactly as Nova's oslo.messaging does.

The simulator makes oslo 2.0 envelopes (``{"oslo.version": "2.0", "oslo.message": ...}``)
as bytes; :class:`AmqpBus` puts them on the broker the way oslo.messaging's
``messagingv2`` notification driver over the rabbit driver would:

- exchange ``nova`` (oslo's ``control_exchange`` as Nova sets it), declared as
  ``notify_send`` declares it: type ``topic``, ``durable=amqp_durable_queues`` (False),
  ``auto_delete=amqp_auto_delete`` (False);
- routing key ``versioned_notifications.<priority>`` (``info``, or ``error`` for an
  ERROR notification: the priority is read from the envelope);
- message properties ``content_type=application/json``, ``content_encoding=utf-8``,
  ``delivery_mode=2`` (persistent), ``priority=0``, empty ``application_headers``;
- like oslo's ``_publish_and_creates_default_queue``, the first publish on a routing key
  also declares a queue named after the routing key, bound to it (``declare_default_queue``;
  nobody reads it here — operators should know it exists, it grows without a reader).

Unlike oslo (one blocking publish per notification) it publishes in batches with
publisher confirms: a batch is written, then the broker's acks for it are awaited; a
nack or a lost connection republishes the unconfirmed messages (at-least-once; the
bridge recognises duplicates by event id). Reconnects are retried by an
:class:`eventmodel.retry.RetryPolicy` (component ``bus.publish``) for ``retry_for`` seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from eventmodel.errors import SourceError
from eventmodel.retry import RetryEvent, RetryPolicy
from eventmodel.sources.amqp import DEFAULT_AMQP_URL, amqp_url
from eventmodel.urls import redact

_log = logging.getLogger(__name__)

#: the message properties oslo.messaging (kombu's json serializer) puts on a notification
OSLO_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "application_headers": {},
    "delivery_mode": 2,
    "priority": 0,
}


class _Outer(msgspec.Struct):
    message: str = msgspec.field(name="oslo.message", default="")


class _Inner(msgspec.Struct):
    priority: str = "INFO"


_outer = msgspec.json.Decoder(_Outer)
_inner = msgspec.json.Decoder(_Inner)


def priority_of(body: bytes) -> str:
    """The lower-case oslo priority of a wire notification (``info`` if unreadable)."""
    try:
        inner = _outer.decode(body).message
        if inner:
            return (_inner.decode(inner).priority or "INFO").lower()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError):
        pass
    return "info"


class PublishError(SourceError, RuntimeError):
    """Messages could not be confirmed by the broker within the allowed time."""


class AmqpBus:
    """Publishes oslo wire notifications to RabbitMQ, batched, with publisher confirms.

    ``publish(bodies)`` returns when the broker confirmed every body (or raises
    :class:`PublishError` after ``retry_for`` seconds of failures).
    """

    def __init__(
        self,
        url: str = DEFAULT_AMQP_URL,
        *,
        exchange: str = "nova",
        topic: str = "versioned_notifications",
        durable: bool = False,
        auto_delete: bool = False,
        declare_default_queue: bool = True,
        route_by_priority: bool = True,
        confirm: bool = True,
        batch: int = 1000,
        confirm_timeout: float = 30.0,
        retry_for: float = 120.0,
        connect_timeout: float = 5.0,
        on_retry: Callable[[RetryEvent], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.url = amqp_url(url)
        self.exchange = exchange
        self.topic = topic
        self.durable = durable
        self.auto_delete = auto_delete
        self.declare_default_queue = declare_default_queue
        self.route_by_priority = route_by_priority
        self.confirm = confirm
        self.batch = max(1, batch)
        self.confirm_timeout = confirm_timeout
        self.retry_for = retry_for
        self.connect_timeout = connect_timeout
        self.published = 0  # confirmed messages
        self.republished = 0  # messages sent again after a nack or a lost connection
        self._conn: Any = None
        self._ch: Any = None
        self._declared: set[str] = set()
        self._seq = 0  # last publish sequence number on the channel (confirm mode)
        self._unconfirmed: set[int] = set()
        self._nacked: set[int] = set()
        self._todo: list[tuple[bytes, str]] = []
        #: how a failed publish is retried: reconnect, send again what is unconfirmed
        self.retry = RetryPolicy(
            "bus.publish", initial=0.2, cap=5.0, stop_after=retry_for, stop=stop,
            give_up_on=(PublishError,), logger=_log, on_retry=self._retrying,
        ).also_on_retry(on_retry)

    # -- connection ------------------------------------------------------
    def _connect(self) -> None:
        import kombu

        self._close_quietly()
        conn = kombu.Connection(self.url, connect_timeout=self.connect_timeout)
        conn.connect()
        ch = conn.channel()
        self._conn, self._ch = conn, ch
        self._declared.clear()
        self._seq = 0
        self._unconfirmed = set()
        self._nacked = set()
        self._declare_exchange()  # may replace the channel (oslo's non-durable fallback)
        ch = self._ch
        if self.confirm:
            ch.confirm_select()
            ch.events["basic_ack"].add(self._on_ack)
            ch.events["basic_nack"].add(self._on_nack)

    def _declare_exchange(self) -> None:
        """As oslo's ``_publish``: declare; on a durability mismatch fall back to non-durable."""
        from amqp.exceptions import PreconditionFailed

        try:
            self._ch.exchange_declare(
                self.exchange, "topic", durable=self.durable, auto_delete=self.auto_delete
            )
        except PreconditionFailed as exc:
            if "inequivalent arg 'durable'" not in str(exc):
                raise
            _log.warning("exchange %s exists with other durability; using it non-durable", self.exchange)
            self._ch = self._conn.channel()
            self.durable = False
            self._ch.exchange_declare(self.exchange, "topic", durable=False, auto_delete=self.auto_delete)

    def _ensure_default_queue(self, routing_key: str) -> None:
        if not self.declare_default_queue or routing_key in self._declared:
            return
        self._ch.queue_declare(
            queue=routing_key, durable=self.durable, auto_delete=self.auto_delete, exclusive=False
        )
        self._ch.queue_bind(queue=routing_key, exchange=self.exchange, routing_key=routing_key)
        self._declared.add(routing_key)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        if multiple:
            gone = {t for t in self._unconfirmed if t <= tag}
        else:
            gone = {tag} & self._unconfirmed
        self._unconfirmed -= gone
        self._nacked |= gone

    def _close_quietly(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001
                pass

    # -- publishing ------------------------------------------------------
    def routing_key(self, body: bytes) -> str:
        prio = priority_of(body) if self.route_by_priority else "info"
        return f"{self.topic}.{prio}"

    def publish(self, bodies: Iterable[bytes]) -> int:
        """Publish every body; returns how many were confirmed."""
        total = 0
        chunk: list[bytes] = []
        for body in bodies:
            chunk.append(body)
            if len(chunk) >= self.batch:
                total += self._publish_batch(chunk)
                chunk = []
        if chunk:
            total += self._publish_batch(chunk)
        return total

    def send(self, body: bytes) -> None:
        """Publish one body and wait for its confirm."""
        self._publish_batch([body])

    def _publish_batch(self, bodies: list[bytes]) -> int:
        self._todo = [(b, self.routing_key(b)) for b in bodies]
        try:
            self.retry.call(self._publish_todo, what=f"publish to {redact(self.url)}")
        except PublishError:
            raise
        except Exception as exc:  # noqa: BLE001 - given up after retry_for seconds (or stopped)
            raise PublishError(
                f"could not publish to {redact(self.url)} for {self.retry_for:.0f}s: {exc}"
            ) from exc
        self.published += len(bodies)
        return len(bodies)

    def _publish_todo(self) -> None:
        """Send what is not confirmed yet until the broker confirmed all of it; on a
        connection problem drop the connection and raise (the policy retries)."""
        while self._todo:
            try:
                if self._ch is None:
                    self._connect()
                nacked = self._send_and_confirm(self._todo)
            except Exception:
                self._close_quietly()
                raise
            if nacked:  # nacked by the broker: send them again at once
                self.republished += len(nacked)
            self._todo = nacked

    def _retrying(self, event: RetryEvent) -> None:
        self.republished += len(self._todo)

    def _send_and_confirm(self, items: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """Send, await confirms; returns the items the broker nacked."""
        import amqp

        ch = self._ch
        by_tag: dict[int, tuple[bytes, str]] = {}
        for body, key in items:
            self._ensure_default_queue(key)
            msg = amqp.Message(body, **OSLO_PROPERTIES)
            ch.basic_publish(msg, exchange=self.exchange, routing_key=key)
            if self.confirm:
                self._seq += 1
                self._unconfirmed.add(self._seq)
                by_tag[self._seq] = (body, key)
        if not self.confirm:
            return []
        end = time.monotonic() + self.confirm_timeout
        conn = self._conn.connection
        while self._unconfirmed:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} publishes not confirmed in {self.confirm_timeout}s")
            try:
                conn.drain_events(timeout=min(left, 1.0))
            except socket.timeout:
                pass
        nacked = [by_tag[t] for t in sorted(self._nacked) if t in by_tag]
        self._nacked.clear()
        return nacked

    def close(self) -> None:
        self._close_quietly()

    def __enter__(self) -> AmqpBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_bus(url: str, **options: Any) -> AmqpBus:
    """A bus for a ``--bus`` URL (``amqp://`` or oslo's ``rabbit://``)."""
    scheme = url.partition("://")[0]
    if scheme not in ("amqp", "amqps", "pyamqp", "rabbit"):
        raise ValueError(f"not an AMQP URL: {url!r} (try amqp://guest:guest@127.0.0.1:5672//)")
    return AmqpBus(url, **options)
