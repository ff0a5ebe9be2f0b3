"""What one request, one client and one connection may cost ``eventmodel serve``.

- :class:`Limits`: the numbers (``serve`` options), in one place.
- :class:`ReplayGate`: past-point models (``/api/export?at=``, ``/api/diff``) are built
  from a thread (which runs the build, or hands it to a worker process of
  :mod:`eventmodel.serve.workers` and waits), at most ``replays`` at once with at most
  ``queue`` more waiting (past it: :class:`Busy`, answered 503 with ``Retry-After``);
  concurrent requests for the same key share one build; a build nobody waits for any
  more (every client left) is cancelled between two batches of records.
- :class:`PerClient`: ASGI middleware; at most ``per_client`` slow requests (everything
  under ``/api/`` and ``/metrics``) of one client address at once; past it, 429.
- :func:`header_timeout_protocol`: uvicorn's h11 protocol with a deadline for a
  request's head, so that a byte-a-second client cannot hold a connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from starlette.types import ASGIApp, Receive, Scope, Send

from eventmodel.errors import ServeError

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol

T = TypeVar("T")


@attrs.frozen(slots=True)
class Limits:
    """The bounds a ``serve`` process keeps (see the README's "Operating it")."""

    replays: int = 2  # past-point models built at once
    threads: int = 2  # threads answering slow requests (lists, history, dead letters, the live export)
    replay_queue: int = 4  # more allowed to wait
    per_client: int = 8  # slow requests of one client address at once
    session_seconds: float = 12 * 3600
    guesses_per_second: float = 0.2  # wrong tokens per client address, after a burst of 10


class Busy(ServeError, RuntimeError):
    """Too much of one kind of work at once; the message says which. 503, Retry-After."""

    retry_after = 5


class Cancelled(ServeError, RuntimeError):
    """A build was abandoned: every client that waited for it left."""


@attrs.define
class _Build:
    task: asyncio.Future[Any]
    cancel: threading.Event
    waiters: int = 0


@attrs.define
class ReplayGate:
    """Bounded, shared, cancellable builds of past-point models (see the module doc)."""

    replays: int = 2
    queue: int = 4
    _running: dict[Hashable, _Build] = attrs.field(factory=dict)
    _slots: asyncio.Semaphore | None = None
    _admitted: int = 0

    @property
    def pending(self) -> int:
        """Builds running or waiting for a slot."""
        return self._admitted

    async def run(self, key: Hashable, build: Callable[[threading.Event], T],
                  disconnected: Callable[[], Any] | None = None) -> T:
        """``build(cancel)`` on a thread (``cancel`` is set when nobody waits any more), or
        the result of the build for ``key`` already under way. ``disconnected`` is an
        awaitable factory that returns when the client left (then this raises
        :class:`Cancelled`)."""
        b = self._running.get(key)
        if b is None:
            if self._admitted >= self.replays + self.queue:
                raise Busy(f"{self._admitted} past-point models are being built or wait "
                           f"(at most {self.replays} at once, {self.queue} waiting): try again shortly")
            cancel = threading.Event()
            task = asyncio.ensure_future(self._build(key, build, cancel))
            task.add_done_callback(_retrieve)  # a build nobody waits for any more still ends quietly
            b = _Build(task, cancel)
            self._running[key] = b
        b.waiters += 1
        try:
            if disconnected is None:
                return await asyncio.shield(b.task)
            left = asyncio.ensure_future(disconnected())
            try:
                done, _ = await asyncio.wait({b.task, left}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                left.cancel()
            if b.task in done:
                return b.task.result()
            raise Cancelled("the client left")
        finally:
            b.waiters -= 1
            if b.waiters == 0 and not b.task.done():
                b.cancel.set()

    async def _build(self, key: Hashable, build: Callable[[threading.Event], T], cancel: threading.Event) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.replays)
        self._admitted += 1
        try:
            async with self._slots:
                if cancel.is_set():
                    raise Cancelled("every client left before the build started")
                return await asyncio.to_thread(build, cancel)
        finally:
            self._admitted -= 1
            self._running.pop(key, None)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def wait_disconnect(receive: Receive) -> None:
    """Returns when the client has gone (the request's body, if any, already read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


@attrs.define
class PerClient:
    """ASGI middleware: at most ``limit`` requests under ``/api/`` or ``/metrics`` per client
    address at once; past it, 429 with ``Retry-After: 1``. With ``threads``, the thread
    pool that answers slow requests is that small: every runnable thread takes turns at
    the GIL with the event loop, so forty busy threads made ``/healthz`` wait seconds."""

    app: ASGIApp
    limit: int = 8
    threads: int | None = None
    _busy: dict[str, int] = attrs.field(factory=dict)
    _pool_set: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._pool_set and self.threads is not None:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
            self._pool_set = True
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith("/api/") or path == "/metrics"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = str(client[0]) if client else "unknown"
        if self._busy.get(who, 0) >= self.limit:
            body = (b'{"error":"too many requests from this address at once (at most %d): wait for the '
                    b'answers","status":429}' % self.limit)
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self._busy[who] = self._busy.get(who, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._busy[who] - 1
            if left:
                self._busy[who] = left
            else:
                del self._busy[who]


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol that closes a connection whose request head (line and
    headers) has not arrived ``seconds`` after the connection opened or the head's first
    byte (a keep-alive connection's idle time is uvicorn's own ``timeout_keep_alive``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
