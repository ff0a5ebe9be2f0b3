"""The Starlette application: the JSON API, ``/metrics``, the probes and the page.

``create_app(service, token=…)`` builds it around one :class:`ModelService`; the
caller starts and stops the service (``eventmodel serve`` does, with uvicorn).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eventmodel.log.base import LogError
from eventmodel.serve.access import SecurityHeaders, TokenGate
from eventmodel.serve.api import ERRORS, error, json_response, routes
from eventmodel.metrics import render
from eventmodel.serve.metrics import registry_for
from eventmodel.serve.service import ModelService, NotReady
from eventmodel.serve.views import NodeRows

PAGE = Path(__file__).resolve().parent / "page"
_log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """Alive: the process answers. (Kubernetes restarts the pod when this fails.)"""
    return json_response({"status": "alive"})


async def readyz(request: Request) -> Response:
    """Ready: restored, not stale, caught up within the bound; else 503 with the reason."""
    ready, why = request.app.state.service.readiness()
    return json_response({"ready": ready, "reason": why}, 200 if ready else 503)


def metrics(request: Request) -> Response:
    body, content_type = render(request.app.state.registry)
    return Response(body, headers={"content-type": content_type})


def index(request: Request) -> Response:
    return FileResponse(PAGE / "index.html", headers={"cache-control": "no-cache"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 else f"no such path: {request.url.path[:200]}"
    return error(exc.status_code, str(detail), dict(exc.headers or {}))


async def _known_error(request: Request, exc: Exception) -> Response:
    status = next(code for cls, code in ERRORS.items() if isinstance(exc, cls))
    return error(status, str(exc))


async def _not_ready(request: Request, exc: Exception) -> Response:
    return error(503, str(exc), {"retry-after": "5"})


async def _log_error(request: Request, exc: Exception) -> Response:
    return error(503, f"the log cannot be read now: {exc}", {"retry-after": "5"})


def create_app(service: ModelService, *, token: str | None = None) -> Starlette:
    """The ASGI application over ``service``; with ``token``, every path but the probes
    needs it (bearer header, or the page's session cookie)."""
    handlers = {HTTPException: _http_error, NotReady: _not_ready, LogError: _log_error}
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
    app.add_middleware(TokenGate, token=token)
    app.add_middleware(SecurityHeaders)  # outermost: the gate's 401s carry them too
    return app
