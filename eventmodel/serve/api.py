"""The read-only JSON API. Every answer names the log position it was read at
(``position``); lists take ``limit`` and ``cursor`` and answer ``next`` (the cursor of
the following page, null at the end).

Errors are JSON ``{"error": …, "status": …}``: 400 for a malformed parameter or a
position the log cannot answer for, 404 for an unknown key, 503 while the model is
being restored or the log cannot be read. Handlers that take O(1) are coroutines
(answered on the event loop); the others are plain functions, which Starlette runs on
its thread pool (``--threads``), so a list never blocks the event loop. Past-point
models and their answers (export, diff) are made in worker processes when the log can
be opened there (:mod:`eventmodel.serve.workers`), so that their seconds of Python do
not take the GIL from the event loop; the live export is encoded once per model
position (:class:`LiveExport`).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import attrs
import msgspec
from starlette.requests import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from eventmodel.errors import ServeError
from eventmodel.clock import parse_time
from eventmodel.codec import Codec
from eventmodel.events import KINDS, Instance
from eventmodel.log.base import Position
from eventmodel.serve.limits import ReplayGate, wait_disconnect
from eventmodel.serve.service import BadRequest, ModelService, describe_log
from eventmodel.serve.workers import ReplayWorkers, Spool
from eventmodel.serve.views import NodeRows, history_item, instance_row, time_text
from projections.export import to_document
from projections.model import ClusterModel, UnknownEntity
from projections.replay import diff

MAX_LIMIT = 5000
#: the most raw bytes one page of /api/deadletters carries; past it the page ends early
#: and ``next`` continues (so no request builds an answer of hundreds of megabytes)
DEAD_LETTER_PAGE_BYTES = 4 * 1024 * 1024
DEFAULT_LIMIT = 100

_encode = msgspec.json.Encoder().encode


class NotFound(ServeError, LookupError):
    """An unknown key or kind; the message says which."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(data), status_code=status, media_type="application/json", headers=headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "status": status}, status, headers)


# -- parameters -------------------------------------------------------------------
def limit_of(request: Request, default: int = DEFAULT_LIMIT) -> int:
    text = request.query_params.get("limit")
    if text is None or text == "":
        return default
    try:
        n = int(text)
    except ValueError:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {text[:40]!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIMIT}, not {n}")
    return n


def point(service: ModelService, text: str | None, name: str) -> Position | None:
    """A point of the log from a query parameter: a position (``N`` or ``P:N,P:N``) or an
    ISO 8601 time (the model as recorded then); None when absent."""
    if text is None or text.strip() == "":
        return None
    t = text.strip()
    if "T" in t or "-" in t[1:] or " " in t:
        try:
            when = parse_time(t)
        except (ValueError, OverflowError):
            raise BadRequest(f"{name}: {t[:60]!r} is neither a position (N or P:N,P:N) nor an ISO 8601 time") from None
        try:
            return service.position_at(when)
        except (ValueError, OverflowError) as exc:
            raise BadRequest(f"{name}: no position for time {t[:60]!r}: {exc}") from None
    try:
        pos = Position.parse(t)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}, and neither a position nor an ISO 8601 time "
                         "(e.g. 2026-11-25T15:31:37Z)") from None
    if any(o < 0 for o in pos.offsets):
        raise BadRequest(f"{name}: offsets cannot be negative: {t[:60]!r}")
    return service.check_position(pos)


def stamp(model: ClusterModel) -> dict[str, Any]:
    return {"position": str(model.position), "recorded_at": time_text(model.recorded_at or None)}


def page(items: list[Any], next_cursor: str | None, model: ClusterModel, **extra: Any) -> dict[str, Any]:
    return {**stamp(model), **extra, "items": items, "next": next_cursor}


def first_after(keys: Iterable[str], cursor: str | None, limit: int) -> tuple[list[str], str | None]:
    """The ``limit`` smallest keys after ``cursor``, and the next cursor."""
    if cursor:
        keys = (k for k in keys if k > cursor)
    chosen = heapq.nsmallest(limit + 1, keys)
    more = len(chosen) > limit
    chosen = chosen[:limit]
    return chosen, (chosen[-1] if more and chosen else None)


# -- routes -----------------------------------------------------------------------
def _service(request: Request) -> ModelService:
    return request.app.state.service


async def status(request: Request) -> Response:
    """Position, lag, staleness, the last full syncs, dead letters: all from memory."""
    svc = _service(request)
    ready, why = svc.readiness()
    sample = svc.sample
    stale = svc.stale()
    out: dict[str, Any] = {
        "log": describe_log(str(svc.log.url)),
        "ready": ready,
        "ready_reason": svc.public(why),
        "stale": svc.public(stale) if stale else None,
        "held": svc.held,
        "session": bool(request.scope.get("state", {}).get("session")),  # signed in by the page's cookie
        "started_at": time_text(svc.started_at),
        "lag": {
            "records": sample.records,
            "seconds": round(sample.seconds, 3),
            "sampled_at": time_text(sample.at or None),
            "error": svc.public(sample.error) if sample.error else None,
            "partitions": [attrs.asdict(p) for p in sample.partitions],
        },
        "dead_letters": {"total": svc.dead.total, "by_reason": svc.dead.by_reason,
                         "read_at": time_text(svc.dead.read_at or None),
                         "error": svc.public(svc.dead.error) if svc.dead.error else None},
        "syncs": [_sync(s) for s in svc.syncs],
    }
    if svc.projection is None:
        out.update(position=None, recorded_at=None,
                   restoring={"error": svc.public(svc.restore_error) if svc.restore_error else None})
        return json_response(out)
    m = svc.model()
    s = m.state
    out.update(stamp(m))
    out.update(
        counts=m.counts(),
        applied=s.applied,
        duplicates=s.duplicates,
        rejected=s.rejected,
        last_rejected=svc.public(s.last_rejected) if s.last_rejected else None,
        syncs_in_progress=list(s.open_snapshots.keys()),
        last_sync=_sync(m.last_snapshot) if m.last_snapshot else None,
        checkpoint={"position": str(svc.health.checkpointed) if svc.health and svc.health.checkpointed else None,
                    "skipped": [svc.public(x) for x in svc.skipped_checkpoints]},
    )
    return json_response(out)


def _sync(s: Any) -> dict[str, Any]:
    return {"snapshot_id": s.snapshot_id, "started_at": time_text(s.started_at),
            "completed_at": time_text(s.completed_at),
            "duration_seconds": max(0.0, (s.completed_at - s.started_at) / 1e6),
            "observed": s.observed, "corrected": s.corrected, "deleted": s.deleted}


async def nodes(request: Request) -> Response:
    """Compute nodes, by name; filters: ``zone``, ``aggregate``, ``status`` (up|down|disabled).
    While the follower folds, the answer may come from a model a few records older than
    the newest (see :class:`NodeRows`); its ``position`` says which.

    The whole list of the current model, already encoded, is answered on the event loop
    (O(1): no wait for a thread that other clients' requests may hold); anything else on
    a thread."""
    q = request.query_params
    if not (q.get("cursor") or q.get("zone") is not None or q.get("aggregate") is not None
            or q.get("status") is not None):
        body = request.app.state.node_rows.body
        if body is not None and body[0] is _service(request).model().state and body[1] == limit_of(request):
            return Response(body[2], media_type="application/json")
    return await run_in_threadpool(_nodes, request)


def _nodes(request: Request) -> Response:
    svc = _service(request)
    limit = limit_of(request)
    q = request.query_params
    cursor, zone, aggregate, st = q.get("cursor"), q.get("zone"), q.get("aggregate"), q.get("status")
    if st is not None and st not in ("up", "down", "disabled"):
        raise BadRequest(f"status must be up, down or disabled, not {st[:40]!r}")
    cache: NodeRows = request.app.state.node_rows
    model, table = cache.all(svc.model())  # (the model those rows were read from)
    if zone is None and aggregate is None and st is None:
        body = cache.body  # the page polls the whole list: its bytes are kept per model
        if not cursor and body is not None and body[0] is model.state and body[1] == limit:
            return Response(body[2], media_type="application/json")
        names, nxt = first_after(table.keys(), cursor, limit)
        rows = [table[n] for n in names]
        data = _encode(page(rows, nxt, model, total=len(table)))
        if not cursor:
            cache.body = (model.state, limit, data)
        return Response(data, media_type="application/json")
    rows = []
    for name in sorted(k for k in table.keys() if not cursor or k > cursor):
        row = table[name]
        if zone is not None and (row["zone"] or "") != zone:
            continue
        if aggregate is not None and aggregate not in row["aggregates"]:
            continue
        if st is not None and row["status"] != st:
            continue
        rows.append(row)
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(page(rows, rows[-1]["name"] if more and rows else None, model))


async def node(request: Request) -> Response:
    """One compute node (O(1) but for its own instances: answered on the event loop)."""
    model = _service(request).model()
    name = request.path_params["name"]
    model.compute_node(name)  # UnknownEntity → 404
    return json_response({**stamp(model), "node": request.app.state.node_rows.row(model, name)})


def instances(request: Request) -> Response:
    """Instances by uuid; filters: ``node``, ``project``, ``state`` (vm_state), ``host``."""
    svc = _service(request)
    limit = limit_of(request)
    q = request.query_params
    cursor, node_name, project, st, host = q.get("cursor"), q.get("node"), q.get("project"), q.get("state"), q.get("host")
    model = svc.model()
    table = model.instances()
    if node_name is not None:
        if node_name not in model.compute_nodes() and not model.node_instance_count(node_name):
            raise NotFound(f"no compute node {node_name!r} at position {model.position}")
        pool: Iterable[Instance] = model.node_instances(node_name)
    else:
        pool = table.values()
    preds: list[Callable[[Instance], bool]] = []
    if project is not None:
        preds.append(lambda i: i.project_id == project)
    if st is not None:
        preds.append(lambda i: i.vm_state == st)
    if host is not None:
        preds.append(lambda i: i.host == host)
    if preds:
        keys: Iterable[str] = [i.uuid for i in pool if all(p(i) for p in preds)]
    elif node_name is not None:
        keys = [i.uuid for i in pool]
    else:
        keys = table.keys()
    if not isinstance(keys, list):
        total = len(table)
    else:
        total = len(keys)
    chosen, nxt = first_after(keys, cursor, limit)
    return json_response(page([instance_row(table[u]) for u in chosen], nxt, model, total=total))


async def instance(request: Request) -> Response:
    """One instance and its node (O(1): answered on the event loop)."""
    model = _service(request).model()
    inst = model.instance(request.path_params["uuid"])
    node_row_ = None
    if inst.node and inst.node in model.compute_nodes():
        node_row_ = request.app.state.node_rows.row(model, inst.node)
    return json_response({**stamp(model), "instance": instance_row(inst), "node": node_row_})


def search(request: Request) -> Response:
    """Nodes whose name contains ``q``; instances whose uuid starts with it or whose name contains it."""
    svc = _service(request)
    limit = min(limit_of(request, 20), 200)
    q = (request.query_params.get("q") or "").strip().lower()
    if not q:
        raise BadRequest("q (what to search for) is required")
    model = svc.model()
    found_nodes = heapq.nsmallest(limit, (n for n in model.compute_nodes().keys() if q in n.lower()))
    found = []
    for inst in model.instances().values():
        if inst.uuid.startswith(q) or q in inst.name.lower():
            found.append(inst)
            if len(found) >= limit:
                break
    return json_response({**stamp(model), "nodes": found_nodes,
                          "instances": [{"uuid": i.uuid, "name": i.name, "node": i.node, "vm_state": i.vm_state}
                                        for i in sorted(found, key=lambda i: i.uuid)]})


def entity_history(request: Request) -> Response:
    """One entity's records, newest first, with the entity as each left it. Read from the
    log's end: O(limit) records per page (``next``: the cursor of the older page)."""
    svc = _service(request)
    kind, key = request.path_params["kind"], request.path_params["key"]
    if kind not in KINDS:
        raise NotFound(f"unknown kind {kind[:40]!r}: kinds are {', '.join(KINDS)}")
    limit = limit_of(request)
    cursor = request.query_params.get("cursor")
    before = None
    if cursor:
        try:
            before = int(cursor)
            if not 0 <= before < 1 << 63:  # an offset: what the logs (SQLite, Kafka) can hold
                raise ValueError
        except ValueError:
            raise BadRequest(f"cursor must be an offset from a previous answer, not {cursor[:40]!r}") from None
    model = svc.model()
    got = svc.history_page(key, before, limit)
    records = [r for r in got.records if getattr(type(r.envelope.payload), "KIND", kind) in (kind, None)]
    if not records and before is None and got.before is None:
        raise NotFound(f"no events for {kind} {key[:200]!r} on the log")
    codec: Codec = getattr(svc.log, "codec", None) or Codec()
    items = [history_item(r, codec.unstructure_payload(r.envelope.payload)) for r in records]
    current = model.table(kind).get(key)
    nxt = str(got.before) if got.before is not None else None
    return json_response({**page(items, nxt, model), "kind": kind, "key": key, "order": "newest first",
                          "exists": current is not None})


async def past_model(request: Request, pos: Position | None) -> ClusterModel:
    """The model at ``pos`` (None: now): the live one, one of the last few built, or one
    built through the app's :class:`ReplayGate` (shared with concurrent requests for the
    same position, bounded, cancelled when every client that asked has left)."""
    svc = _service(request)
    live = svc.model()
    if pos is None or pos == live.position:
        return live
    cached = svc.cached_model(pos)
    if cached is not None:
        return cached
    gate: ReplayGate = request.app.state.replays
    return await gate.run(pos, lambda cancel: svc.build_model(pos, cancel),
                          lambda: wait_disconnect(request.receive))


async def difference(request: Request) -> Response:
    """What changed between ``from`` and ``to`` (positions or times; ``to`` defaults to now).
    With replay workers, both models and the page are made in a worker process."""
    svc = _service(request)
    limit = limit_of(request)
    q = request.query_params
    if not q.get("from"):
        raise BadRequest("from is required: a position (N or P:N,P:N) or an ISO 8601 time")
    cursor = q.get("cursor") or "0"
    try:
        skip = int(cursor)
        if skip < 0:
            raise ValueError
    except ValueError:
        raise BadRequest(f"cursor must come from a previous answer, not {cursor[:40]!r}") from None
    start = await run_in_threadpool(point, svc, q.get("from"), "from")
    end = await run_in_threadpool(point, svc, q.get("to"), "to")
    workers: ReplayWorkers | None = request.app.state.workers
    if workers is not None:
        assert start is not None
        live = svc.model().position
        a, b = start, end or live
        gate: ReplayGate = request.app.state.replays
        data = await gate.run(("diff", a, b, skip, limit), lambda cancel: workers.diff(a, b, skip, limit, cancel),
                              lambda: wait_disconnect(request.receive))
        return Response(data, media_type="application/json")
    a = await past_model(request, start)
    b = await past_model(request, end)
    data = await run_in_threadpool(_diff_page, a, b, skip, limit)
    return Response(data, media_type="application/json")


def _diff_page(a: ClusterModel, b: ClusterModel, skip: int, limit: int) -> bytes:
    changes = sorted(diff(a, b), key=lambda c: (c.kind, c.key))
    chosen = changes[skip:skip + limit]
    items = []
    for c in chosen:
        item: dict[str, Any] = {"kind": c.kind, "key": c.key, "change": c.change}
        if c.change == "changed":
            item["fields"] = {f: [getattr(c.before, f, None), getattr(c.after, f, None)] for f in c.fields}
        else:
            item["entity"] = c.after if c.change == "added" else c.before
        items.append(item)
    nxt = str(skip + limit) if skip + limit < len(changes) else None
    return _encode({**page(items, nxt, b), "from": str(a.position), "to": str(b.position),
                    "total": len(changes)})


#: entities per chunk of a streamed export (about 1 MB): a slow reader holds one chunk
EXPORT_CHUNK = 2000


async def export(request: Request) -> Response:
    """The model at ``at`` (position or time; default now) in `eventmodel export`'s format,
    streamed in chunks (a reader that does not read stops the writing: backpressure).

    Now (no ``at``, or the live position): encoded once per model position and shared
    (:class:`LiveExport`). A past point: with replay workers, built and encoded in a
    worker process and streamed from its spool file; else built on a thread here."""
    svc = _service(request)
    pos = await run_in_threadpool(point, svc, request.query_params.get("at"), "at")
    live = svc.model()
    if pos is None or pos == live.position:
        cache: LiveExport = request.app.state.live_export
        data = await cache.get(live)
        return StreamingResponse(_slices(data), media_type="application/json")
    workers: ReplayWorkers | None = request.app.state.workers
    if workers is not None:
        gate: ReplayGate = request.app.state.replays
        spool = await gate.run(("export", pos), lambda cancel: workers.export(pos, cancel),
                               lambda: wait_disconnect(request.receive))
        return StreamingResponse(_spooled(spool), media_type="application/json")
    model = await past_model(request, pos)
    doc = await run_in_threadpool(to_document, model)
    return StreamingResponse(export_chunks(doc), media_type="application/json")


async def _slices(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """``data`` a megabyte at a time (on the event loop: no thread per chunk)."""
    for at in range(0, len(data), size):
        yield data[at:at + size]


async def _spooled(spool: Spool) -> AsyncIterator[bytes]:
    """A spooled export a megabyte at a time (``pread`` of a file just written: the page
    cache answers; on the event loop, no thread per chunk)."""
    for chunk in spool.chunks():
        yield chunk


@attrs.define
class LiveExport:
    """The export of the live model, encoded once per model position and shared by every
    request for it; at most one encoding at a time (a request that comes while one runs
    gets that one's answer, a few records old at most, as the node list does)."""

    _done: tuple[Position, bytes] | None = None
    _encoding: asyncio.Future[bytes] | None = None

    async def get(self, model: ClusterModel) -> bytes:
        done = self._done
        if done is not None and done[0] == model.position:
            return done[1]
        fut = self._encoding
        if fut is None or fut.done() or fut.get_loop() is not asyncio.get_running_loop():
            fut = asyncio.ensure_future(self._encode(model))
            fut.add_done_callback(_quiet)
            self._encoding = fut
        return await asyncio.shield(fut)

    async def _encode(self, model: ClusterModel) -> bytes:
        data = await run_in_threadpool(lambda: b"".join(export_chunks(to_document(model))))
        self._done = (model.position, data)
        return data


def _quiet(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def export_chunks(doc: dict[str, Any], chunk: int = EXPORT_CHUNK) -> Iterator[bytes]:
    """``doc`` encoded as one JSON object, its long lists a chunk of entities at a time."""
    yield b"{"
    for i, (name, value) in enumerate(doc.items()):
        yield (b"," if i else b"") + _encode(name) + b":"
        if not isinstance(value, list) or len(value) <= chunk:
            yield _encode(value)
            continue
        yield b"["
        for at in range(0, len(value), chunk):
            yield (b"," if at else b"") + _encode(value[at:at + chunk])[1:-1]
        yield b"]"
    yield b"}"


def dead_letters(request: Request) -> Response:
    """Dead letters, newest first (redacted; raw bytes as text, cut to ``bytes`` bytes)."""
    svc = _service(request)
    limit = limit_of(request)
    cursor = request.query_params.get("cursor")
    width_text = request.query_params.get("bytes") or "2048"
    try:
        width = int(width_text)
        if not 0 <= width <= 65536:
            raise ValueError
    except ValueError:
        raise BadRequest(f"bytes must be from 0 to 65536, not {width_text[:40]!r}") from None
    before = None
    if cursor:
        try:
            before = int(cursor)
        except ValueError:
            raise BadRequest(f"cursor must come from a previous answer, not {cursor[:40]!r}") from None
    dead = svc.dead
    letters = [d for d in reversed(dead.newest) if before is None or d.offset < before]
    chosen = []
    budget = DEAD_LETTER_PAGE_BYTES  # limit × bytes could ask for 300 MB in one answer
    for d in letters[:limit]:
        cost = min(len(d.raw), width) + len(d.reason) + len(d.source) + 200
        if chosen and cost > budget:
            break
        chosen.append(d)
        budget -= cost
    items = [{"id": d.offset, "at": time_text(d.at), "source": d.source, "reason": d.reason,
              "size": d.size, "sha256": d.sha256, "truncated": d.truncated,
              "raw": d.raw[:width].decode("utf-8", "replace")} for d in chosen]
    model = svc.model()
    nxt = str(chosen[-1].offset) if len(letters) > len(chosen) and chosen else None
    return json_response({**page(items, nxt, model), "total": dead.total, "by_reason": dead.by_reason,
                          "read_at": time_text(dead.read_at or None), "kept": len(dead.newest)})


def routes() -> list[Route]:
    return [
        Route("/api/status", status),
        Route("/api/nodes", nodes),
        Route("/api/nodes/{name:path}", node),
        Route("/api/instances", instances),
        Route("/api/instances/{uuid:path}", instance),
        Route("/api/search", search),
        Route("/api/history/{kind}/{key:path}", entity_history),
        Route("/api/diff", difference),
        Route("/api/export", export),
        Route("/api/deadletters", dead_letters),
    ]


#: exception → (status, extra headers), used by the app's handlers
ERRORS: dict[type[Exception], int] = {BadRequest: 400, NotFound: 404, UnknownEntity: 404}
