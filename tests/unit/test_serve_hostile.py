"""``eventmodel serve`` under hostile input and a failing backend, in-process (httpx's ASGI
transport over a real SQLite log): history read from the end in O(limit), past-point
models shared, bounded and cancelled, the export streamed, 503 with the reason (never
500) when the log is damaged, and no file path in any answer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel.clock import now_us
from eventmodel.events import ComputeNode, ComputeNodeObserved, envelope
from eventmodel.log import open_log
from eventmodel.log.base import Position
from eventmodel.serve.api import export_chunks
from eventmodel.serve.app import create_app
from eventmodel.serve.limits import Busy, Cancelled, Limits, ReplayGate
from eventmodel.serve.service import ModelService
from tests.fixtures.polling import wait_until
from tests.unit.test_serve_service import _nodes


def _observed(name: str, n: int, at: int) -> Any:
    return envelope(ComputeNodeObserved("s", ComputeNode(name, at + n, host=name, vcpus=8)), source="t",
                    message_id=f"{name}-{n}", occurred_at=at + n, recorded_at=at)


def _fill_one_key(path: Path, key: str, n: int) -> None:
    """``n`` records of one key, stored straight into the SQLite file (fast: one encoding)."""
    log = open_log(f"sqlite:///{path}")
    at = now_us()
    log.append([_observed(key, 0, at)])
    value = log.codec.encode(_observed(key, 1, at))  # type: ignore[attr-defined]
    log.close()
    with sqlite3.connect(path) as c:
        c.executemany("INSERT INTO events(offset, event_id, type, key, recorded_at, value) VALUES (?,?,?,?,?,?)",
                      ((i, f"e{i}", "compute_node.observed", key, at, value) for i in range(1, n)))


async def _get(app: Any, *paths: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test") as c:
        return [await c.get(p) for p in paths]


def _ready(svc: ModelService) -> ModelService:
    svc.start()
    wait_until(lambda: svc.readiness()[0], 60, "the service to be ready")
    return svc


class Counting:
    """A log that counts the records its reads hand out (whatever the method)."""

    def __init__(self, log: Any) -> None:
        self._log, self.records = log, 0

    def read(self, *a: Any, **kw: Any) -> Iterator[list[Any]]:
        for batch in self._log.read(*a, **kw):
            self.records += len(batch)
            yield batch

    def read_key(self, key: str) -> Iterator[Any]:
        for r in self._log.read_key(key):
            self.records += 1
            yield r

    def read_key_back(self, key: str, before: int | None = None, limit: int = 100) -> Any:
        page = self._log.read_key_back(key, before, limit)
        self.records += len(page.records)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


# -- history ---------------------------------------------------------------------------
def test_history_of_a_key_with_200000_records_reads_o_limit(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    _fill_one_key(path, "n0", 200_000)
    counting = Counting(open_log(f"sqlite:///{path}"))
    svc = _ready(ModelService(counting, sample_every=0.05, dead_letters_every=3600))  # type: ignore[arg-type]
    try:
        app = create_app(svc)
        counting.records = 0
        first, = anyio.run(_get, app, "/api/history/node/n0?limit=1")
        assert first.status_code == 200, first.text
        body = first.json()
        assert [i["offset"] for i in body["items"]] == [199_999] and body["next"] == "199999"
        second, = anyio.run(_get, app, f"/api/history/node/n0?limit=3&cursor={body['next']}")
        assert [i["offset"] for i in second.json()["items"]] == [199_998, 199_997, 199_996]
        assert counting.records == 4  # what the two pages show, not the key's 200,000

        # and SQLite itself walks the key index backwards: a page's VM steps do not grow with the history
        log = counting._log
        steps = [0]

        def step() -> int:
            steps[0] += 1
            return 0

        with log._lock:  # type: ignore[attr-defined]
            log._r.set_progress_handler(step, 1000)  # type: ignore[attr-defined]
            try:
                log._r.execute("SELECT offset, value FROM events WHERE key = ? AND offset < ? "  # type: ignore[attr-defined]
                               "ORDER BY offset DESC LIMIT ?", ("n0", 1 << 62, 11)).fetchall()
                page_steps, steps[0] = steps[0], 0
                log._r.execute("SELECT offset, value FROM events WHERE key = ? ORDER BY offset",  # type: ignore[attr-defined]
                               ("n0",)).fetchall()
            finally:
                log._r.set_progress_handler(None, 0)  # type: ignore[attr-defined]
        assert page_steps <= 2 and steps[0] > 1000, (page_steps, steps[0])
    finally:
        svc.stop()


def test_a_history_cursor_no_log_can_hold_is_a_400_not_a_503(tmp_path: Path) -> None:
    """A cursor past what an offset can be (SQLite's INTEGER) is the client's mistake."""
    path = tmp_path / "e.db"
    _fill_one_key(path, "n0", 3)
    svc = _ready(ModelService(open_log(f"sqlite:///{path}"), sample_every=0.05, dead_letters_every=3600))
    try:
        app = create_app(svc)
        for cursor in ("9" * 40, str(1 << 63), "-1", "x"):
            r, = anyio.run(_get, app, f"/api/history/node/n0?cursor={cursor}")
            assert r.status_code == 400 and "cursor" in r.json()["error"], (cursor, r.status_code, r.text)
        ok, = anyio.run(_get, app, f"/api/history/node/n0?cursor={(1 << 63) - 1}")
        assert ok.status_code == 200 and len(ok.json()["items"]) == 3, ok.text
    finally:
        svc.stop()


def test_history_pages_without_a_backward_read_keep_only_limit(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    at = now_us()
    log.append([_observed(f"n{i % 3}", i, at) for i in range(30)])

    class NoBack:
        def __init__(self, log: Any) -> None:
            self._log = log

        def __getattr__(self, name: str) -> Any:
            if name == "read_key_back":
                raise AttributeError(name)
            return getattr(self._log, name)

    svc = ModelService(NoBack(log))  # type: ignore[arg-type]
    pages, before = [], None
    while True:
        page = svc.history_page("n1", before, 4)
        pages.append([r.offset for r in page.records])
        before = page.before
        if before is None:
            break
    assert [o for p in pages for o in p] == list(range(28, 0, -3)) and all(len(p) <= 4 for p in pages)
    direct = log.read_key_back("n1", None, 4)  # type: ignore[attr-defined]
    assert [r.offset for r in direct.records] == pages[0] and direct.before == pages[0][-1]


# -- past-point models -------------------------------------------------------------------
def test_concurrent_exports_at_one_position_build_it_once(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    for i in range(4):
        log.append(_nodes(50, 50 * i))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    builds: list[Position] = []
    real = svc.build_model

    def counted(pos: Position, cancel: threading.Event | None = None) -> Any:
        builds.append(pos)
        return real(pos, cancel)

    svc.build_model = counted  # type: ignore[method-assign]
    try:
        app = create_app(svc, limits=Limits(per_client=100))
        answers = at_once(app, "/api/export?at=100")
        assert {a.status_code for a in answers} == {200}
        assert builds == [Position((100,))]
        assert all(len(a.json()["compute_nodes"]) == 100 for a in answers)
        assert "content-length" not in answers[0].headers  # streamed
    finally:
        svc.stop()


def test_the_replay_gate_is_bounded_and_cancels_builds_nobody_waits_for() -> None:
    async def scenario() -> None:
        gate = ReplayGate(replays=1, queue=1)
        release = threading.Event()
        cancelled: list[str] = []

        def slow(name: str) -> Any:
            def build(cancel: threading.Event) -> str:
                while not release.wait(0.01):
                    if cancel.is_set():
                        cancelled.append(name)
                        raise Cancelled(name)
                return name
            return build

        left = asyncio.Event()
        a = asyncio.ensure_future(gate.run("a", slow("a"), left.wait))
        b = asyncio.ensure_future(gate.run("b", slow("b")))
        shared = asyncio.ensure_future(gate.run("b", slow("b-again")))  # same key: waits for b's build
        await wait_async(lambda: gate.pending == 2)  # a building, b waiting for the one slot
        with pytest.raises(Busy, match="at most 1 at once, 1 waiting"):
            await gate.run("c", slow("c"))
        left.set()  # a's only client leaves: its build is cancelled
        with pytest.raises(Cancelled):
            await a
        await wait_async(lambda: cancelled == ["a"])
        release.set()
        assert await b == "b" and await shared == "b"
        assert gate.pending == 0

    anyio.run(scenario)


async def wait_async(cond: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_excess_replays_are_503_with_retry_after_and_a_client_has_a_share(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    for i in range(4):
        log.append(_nodes(50, 50 * i))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    release = threading.Event()
    real = svc.build_model

    def blocked(pos: Position, cancel: threading.Event | None = None) -> Any:
        release.wait(30)
        return real(pos, cancel)

    svc.build_model = blocked  # type: ignore[method-assign]
    try:
        app = create_app(svc, limits=Limits(replays=1, replay_queue=1, per_client=2))

        def client(addr: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(addr, 1234)),
                                     base_url="http://t")

        async def flood() -> list[httpx.Response]:
            async with client("10.0.0.1") as one, client("10.0.0.2") as two:
                first = [asyncio.ensure_future(one.get(f"/api/export?at={n}")) for n in (10, 20)]
                await wait_async(lambda: app.state.replays.pending == 2)
                busy = await two.get("/api/export?at=30")  # a third position: over replays + queue
                crowd = await one.get("/api/nodes")  # 10.0.0.1 has 2 requests running: its share
                other = await two.get("/api/nodes")  # another address is not held back
                assert other.status_code == 200
                release.set()
                return [busy, crowd, *await asyncio.gather(*first)]

        busy, crowd, *done = anyio.run(flood)
        assert busy.status_code == 503 and busy.headers["retry-after"] and "at most 1 at once" in busy.json()["error"]
        assert crowd.status_code == 429 and crowd.headers["retry-after"] == "1"
        assert [d.status_code for d in done] == [200, 200]
    finally:
        svc.stop()


@settings(max_examples=60, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=5), st.one_of(
    st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=40),
    st.lists(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), max_size=25))), chunk=st.integers(1, 7))
def test_a_streamed_export_is_the_same_json(doc: dict[str, Any], chunk: int) -> None:
    assert msgspec.json.decode(b"".join(export_chunks(doc, chunk))) == doc


# -- a failing backend ----------------------------------------------------------------------
class Breakable:
    """A real log whose reads raise a raw ``sqlite3.DatabaseError`` (not the backend's
    LogError) while ``broken``."""

    def __init__(self, log: Any) -> None:
        self._log, self.broken = log, False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._log, name)
        if name in ("read", "read_raw", "read_key", "read_key_back", "end", "start", "position_at", "dead_letters"):
            def guarded(*a: Any, **kw: Any) -> Any:
                if self.broken:
                    raise sqlite3.DatabaseError("database disk image is malformed")
                return attr(*a, **kw)
            return guarded
        return attr


def test_raw_backend_errors_are_503_with_the_reason_and_readiness_recovers(tmp_path: Path) -> None:
    log = Breakable(open_log(f"sqlite:///{tmp_path}/e.db"))
    log._log.append(_nodes(40))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=0.1, retry_initial=0.01))  # type: ignore[arg-type]
    try:
        app = create_app(svc)
        log.broken = True
        answers = anyio.run(_get, app, "/api/history/node/n3", "/api/export?at=5", "/api/diff?from=5",
                            "/api/status")
        for r in answers[:3]:
            assert r.status_code == 503, r.text
            assert "malformed" in r.json()["error"] and r.headers["retry-after"]
        assert answers[3].status_code == 200
        wait_until(lambda: not svc.readiness()[0], 30, "readiness to fail")
        ready, = anyio.run(_get, app, "/readyz")
        assert ready.status_code == 503 and "malformed" in ready.json()["reason"]
        log.broken = False  # retried: ready again without a restart
        wait_until(lambda: anyio.run(_get, app, "/readyz")[0].status_code == 200, 30, "readiness to come back")
    finally:
        svc.stop()


def test_a_damaged_log_file_is_503_never_500_and_no_answer_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "secret-dir" / "events.db"
    path.parent.mkdir()
    ckpt = tmp_path / "ckpt-dir"
    log = open_log(f"sqlite:///{path}")
    for i in range(20):
        log.append(_nodes(500, 500 * i))
    svc = _ready(ModelService(open_log(f"sqlite:///{path}"), checkpoint_dir=ckpt, sample_every=0.05,
                              dead_letters_every=0.1, retry_initial=0.01))
    probes = ["/readyz", "/api/status", "/api/history/node/n3", "/api/history/node/nope", "/api/export?at=5",
              "/api/diff?from=5", "/api/nodes/nope", "/api/instances/nope", "/api/nope", "/api/export?at=99999999",
              "/api/deadletters", "/metrics"]
    try:
        app = create_app(svc)
        whole = anyio.run(_get, app, *probes)
        c = sqlite3.connect(path)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
        good = path.read_bytes()
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(len(good) - 4096))
        damaged = anyio.run(_get, app, *probes[2:])  # (SQLite notices the damage when it reads a page)
        wait_until(lambda: not svc.readiness()[0], 30, "readiness to fail on the damaged file")
        damaged = anyio.run(_get, app, *probes[:2]) + damaged
        for r in damaged[2:6]:
            assert r.status_code in (404, 503), r.text
        assert {r.status_code for r in damaged[2:3] + damaged[4:6]} == {503}
        assert damaged[0].status_code == 503 and "malformed" in damaged[0].json()["reason"]
        for r in whole + damaged:
            assert r.status_code != 500, r.text
            for secret in (str(tmp_path), "secret-dir", "ckpt-dir", "events.db"):
                assert secret not in r.text, (r.request.url, r.text[:300])
        path.write_bytes(good)
        wait_until(lambda: svc.readiness()[0], 60, "readiness to come back once the file is whole")
    finally:
        svc.stop()


def test_a_stuck_sampler_makes_readiness_fail(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    log.append(_nodes(3))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    try:
        svc.sample_overdue = 0.5
        stuck = threading.Event()
        real = svc.take_sample

        def hang(health: Any) -> Any:
            stuck.wait(30)
            return real(health)

        svc.take_sample = hang  # type: ignore[method-assign]
        wait_until(lambda: "last sampled" in svc.readiness()[1], 30, "readiness to notice the stuck sampler")
        stuck.set()
        svc.take_sample = real  # type: ignore[method-assign]
        wait_until(lambda: svc.readiness()[0], 30, "readiness to come back")
    finally:
        svc.stop()


def at_once(app: Any, path: str, n: int = 12) -> list[httpx.Response]:
    """``n`` concurrent GETs of ``path`` from one client address, answers in order."""

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return list(await asyncio.gather(*(c.get(path) for _ in range(n))))

    return anyio.run(many)


def leaving_request(app: Any, query: bytes, gone: asyncio.Event, sent: list[dict]) -> Any:
    """An ASGI call of ``/api/export?{query}`` whose client disconnects once ``gone`` is set."""
    first = [True]

    async def receive() -> dict:
        if first[0]:
            first[0] = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/api/export", "raw_path": b"/api/export", "query_string": query,
             "root_path": "", "headers": [(b"host", b"t")], "client": ("10.1.1.1", 5), "server": ("t", 80)}
    return app(scope, receive, send)


def test_a_replay_is_cancelled_when_its_client_disconnects(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    for i in range(4):
        log.append(_nodes(50, 50 * i))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    started, cancels = threading.Event(), []

    def endless(pos: Position, cancel: threading.Event | None = None) -> Any:
        assert cancel is not None
        cancels.append(cancel)
        started.set()
        if not cancel.wait(30):
            raise AssertionError("the build was not cancelled")
        raise Cancelled("abandoned")

    svc.build_model = endless  # type: ignore[method-assign]
    app = create_app(svc)

    async def call() -> list[dict]:
        gone, sent = asyncio.Event(), []
        task = asyncio.ensure_future(leaving_request(app, b"at=77", gone, sent))
        await wait_async(started.is_set)
        gone.set()  # the client leaves while the model is being built
        await asyncio.wait_for(task, 30)
        return sent

    try:
        sent = anyio.run(call)
        assert cancels and cancels[0].is_set()
        assert app.state.replays.pending == 0
        assert sent[0]["status"] == 503  # (nobody reads it: the client is gone)
    finally:
        svc.stop()
