"""The Starlette application: the JSON API, ``/metrics``, the probes and the page.

``create_app(service, token=…)`` builds it around one :class:`ModelService`; the
caller starts and stops the service (``eventmodel serve`` does, with uvicorn).
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from eventmodel.log.base import LogError
from eventmodel.serve.access import SecurityHeaders, TokenGate
from eventmodel.serve.limits import Busy, Cancelled, Limits, PerClient, ReplayGate
from eventmodel.serve.sessions import Throttle
from eventmodel.serve.api import ERRORS, LiveExport, error, json_response, routes
from eventmodel.metrics import render
from eventmodel.serve.metrics import registry_for
from eventmodel.serve.service import ModelService, NotReady
from eventmodel.serve.views import NodeRows
from eventmodel.serve.workers import ReplayWorkers, WorkerDied

PAGE = Path(__file__).resolve().parent / "page"
_log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """Alive: the process answers. (Kubernetes restarts the pod when this fails.)"""
    return json_response({"status": "alive"})


async def readyz(request: Request) -> Response:
    """Ready: restored, not stale, caught up within the bound; else 503 with the reason."""
    ready, why = request.app.state.service.readiness()
    return json_response({"ready": ready, "reason": _public(request, why)}, 200 if ready else 503)


def metrics(request: Request) -> Response:
    body, content_type = render(request.app.state.registry)
    return Response(body, headers={"content-type": content_type})


def index(request: Request) -> Response:
    return FileResponse(PAGE / "index.html", headers={"cache-control": "no-cache"})


def _public(request: Request, text: str) -> str:
    return request.app.state.service.public(text)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 else f"no such path: {request.url.path[:200]}"
    return error(exc.status_code, _public(request, str(detail)), dict(exc.headers or {}))


async def _known_error(request: Request, exc: Exception) -> Response:
    status = next(code for cls, code in ERRORS.items() if isinstance(exc, cls))
    return error(status, _public(request, str(exc)))


async def _not_ready(request: Request, exc: Exception) -> Response:
    return error(503, _public(request, str(exc)), {"retry-after": "5"})


async def _log_error(request: Request, exc: Exception) -> Response:
    return error(503, _public(request, f"the log cannot be read now: {exc}"), {"retry-after": "5"})


async def _busy(request: Request, exc: Exception) -> Response:
    return error(503, str(exc), {"retry-after": str(Busy.retry_after)})


@attrs.define
class NoBare500:
    """ASGI middleware: any other error (a damaged file the backend did not name, a bug)
    is answered 503 with the reason and logged with its traceback; never a bare 500."""

    app: ASGIApp
    service: ModelService

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # noqa: BLE001 - answered, logged
            _log.error("serve: %s %s failed", scope.get("method"), str(scope.get("path"))[:200], exc_info=exc)
            if started:
                return  # the answer is under way: the connection ends short
            reason = self.service.public(f"cannot answer now: {type(exc).__name__}: {exc}")
            response = error(503, reason, {"retry-after": "5"})
            await response(scope, receive, send)


def create_app(service: ModelService, *, token: str | None = None, limits: Limits | None = None,
               workers: ReplayWorkers | None = None) -> Starlette:
    """The ASGI application over ``service``; with ``token``, every path but the probes
    needs it (bearer header, or the page's session cookie). ``limits``: what one
    request, client and replay may cost (defaults: :class:`Limits`). ``workers``: the
    processes that build past-point models (None: threads of this process); the caller
    closes them."""
    limits = limits or Limits()
    handlers = {HTTPException: _http_error, NotReady: _not_ready, LogError: _log_error,
                Busy: _busy, Cancelled: _busy, WorkerDied: _busy}
    handlers.update({cls: _known_error for cls in ERRORS})
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/", index),
            *routes(),
            Mount("/static", StaticFiles(directory=PAGE), name="static"),
        ],
        exception_handlers=handlers,  # type: ignore[arg-type]
    )
    app.state.service = service
    app.state.registry = registry_for(service)
    app.state.node_rows = NodeRows()
    app.state.replays = ReplayGate(limits.replays, limits.replay_queue)
    app.state.workers = workers
    app.state.live_export = LiveExport()
    app.add_middleware(NoBare500, service=service)
    app.add_middleware(PerClient, limit=limits.per_client, threads=limits.threads)
    app.add_middleware(TokenGate, token=token, session_seconds=limits.session_seconds,
                       throttle=Throttle(rate=limits.guesses_per_second))
    app.add_middleware(SecurityHeaders)  # outermost: the gate's 401s carry them too
    return app
