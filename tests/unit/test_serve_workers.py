"""Past-point work in worker processes (``eventmodel.serve.workers``), in-process app over a
real SQLite log: the answers equal the ones built on a thread, a killed worker is a 503
and the pool recovers, a client that leaves cancels the worker's replay, the gate's
bounds hold, and the live export is encoded once per model position."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from eventmodel.clock import now_us
from eventmodel.events import ComputeNode, ComputeNodeObserved, envelope
from eventmodel.log import open_log
from eventmodel.serve import api
from eventmodel.serve.app import create_app
from eventmodel.serve.limits import Limits
from eventmodel.serve.service import ModelService
from eventmodel.serve.workers import ReplayWorkers
from tests.fixtures.polling import wait_until
from tests.unit.test_serve_hostile import _get, _ready, at_once, leaving_request, wait_async
from tests.unit.test_serve_service import _nodes


def _resized(n: int, vcpus: int) -> list:
    now = now_us()
    return [envelope(ComputeNodeObserved("s", ComputeNode(f"n{i}", now, host=f"h{i}", vcpus=vcpus)), source="t",
                     message_id=f"r{vcpus}-{i}", occurred_at=now, recorded_at=now) for i in range(n)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ModelService, ReplayWorkers]]:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    for i in range(4):
        log.append(_nodes(50, 50 * i))
    log.append(_resized(20, 16))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    workers = ReplayWorkers.for_log(log, processes=1)
    assert workers is not None
    try:
        yield svc, workers
    finally:
        workers.close()
        svc.stop()


def _doc(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    doc = msgspec.json.decode(r.content)
    doc.pop("exported_at")
    return doc


def test_exports_and_diffs_from_a_worker_equal_the_ones_built_here(served: tuple[ModelService, ReplayWorkers]) -> None:
    svc, workers = served
    here = create_app(svc, limits=Limits(replays=1))
    there = create_app(svc, limits=Limits(replays=1), workers=workers)
    paths = ["/api/export?at=100", "/api/export?at=210", "/api/diff?from=60&to=215&limit=30",
             "/api/diff?from=60&to=215&limit=30&cursor=30", "/api/diff?from=120", "/api/diff?from=205&to=120"]
    mine = anyio.run(_get, here, *paths)
    theirs = anyio.run(_get, there, *paths)
    assert workers.submitted >= 5  # every one of them went to the worker (a repeated export is kept)
    for path, a, b in zip(paths, mine, theirs, strict=True):
        assert a.status_code == b.status_code == 200, (path, a.text, b.text)
        if "export" in path:
            assert _doc(a) == _doc(b), path
        else:
            assert a.json() == b.json(), path
    changed = theirs[5].json()
    assert changed["total"] == 80 + 5 and {i["change"] for i in changed["items"]} == {"removed", "changed"}
    assert len(_doc(theirs[0])["compute_nodes"]) == 100


def test_a_worker_killed_mid_build_is_503_and_the_next_request_succeeds(
        served: tuple[ModelService, ReplayWorkers]) -> None:
    svc, workers = served
    app = create_app(svc, limits=Limits(replays=1), workers=workers)
    assert anyio.run(_get, app, "/api/export?at=100")[0].status_code == 200  # the worker runs
    pid, = workers.pids()
    os.kill(pid, signal.SIGSTOP)  # it cannot take the next job before it is killed

    async def killed() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            before = workers.submitted
            answer = asyncio.ensure_future(c.get("/api/export?at=150"))
            await wait_async(lambda: workers.submitted > before)
            os.kill(pid, signal.SIGKILL)
            return await answer

    dead = anyio.run(killed)
    assert dead.status_code == 503 and dead.headers["retry-after"], dead.text
    assert "replay worker process ended" in dead.json()["error"]
    after, = anyio.run(_get, app, "/api/export?at=150")
    assert len(_doc(after)["compute_nodes"]) == 150
    assert workers.restarts == 1 and workers.pids() and pid not in workers.pids()


def test_a_client_that_leaves_cancels_the_workers_build_and_the_bounds_hold(
        served: tuple[ModelService, ReplayWorkers]) -> None:
    svc, workers = served
    app = create_app(svc, limits=Limits(replays=1, replay_queue=1), workers=workers)
    assert anyio.run(_get, app, "/api/export?at=100")[0].status_code == 200
    pid, = workers.pids()
    os.kill(pid, signal.SIGSTOP)
    try:
        async def scenario() -> tuple[list[dict], httpx.Response]:
            gone, sent = asyncio.Event(), []
            before = workers.submitted
            task = asyncio.ensure_future(leaving_request(app, b"at=150", gone, sent))
            await wait_async(lambda: workers.submitted > before)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                queued = asyncio.ensure_future(c.get("/api/export?at=160"))  # waits for the one slot
                await wait_async(lambda: app.state.replays.pending == 2)
                busy = await c.get("/api/export?at=170")  # over replays + queue
                gone.set()  # the first client leaves: its job's flag is set, the worker will not replay
                await asyncio.wait_for(task, 30)
                await wait_async(lambda: bool(workers._flags[0]))
                os.kill(pid, signal.SIGCONT)
                await wait_async(lambda: workers.cancelled == 1)
                assert (await queued).status_code == 200
            return sent, busy

        sent, busy = anyio.run(scenario)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert sent[0]["status"] == 503  # (nobody reads it: the client is gone)
    assert busy.status_code == 503 and "at most 1 at once, 1 waiting" in busy.json()["error"]
    assert app.state.replays.pending == 0 and workers.cancelled == 1


def test_the_live_export_is_encoded_once_per_model_position(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    log.append(_nodes(50))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    encoded: list[str] = []
    real = api.to_document

    def counted(model: Any, **kw: Any) -> Any:
        encoded.append(str(model.position))
        return real(model, **kw)

    monkeypatch.setattr(api, "to_document", counted)
    try:
        app = create_app(svc, limits=Limits(per_client=100))
        first = at_once(app, "/api/export")
        assert {a.status_code for a in first} == {200} and encoded == ["50"]
        assert all(len(a.json()["compute_nodes"]) == 50 for a in first)
        again = anyio.run(_get, app, "/api/export", "/api/export?at=50")
        assert encoded == ["50"] and all(a.content == first[0].content for a in again)
        log.append(_nodes(5, 50))
        wait_until(lambda: svc.model().position.total == 55, 30, "the follower to fold the new records")
        moved, = anyio.run(_get, app, "/api/export")
        assert encoded == ["50", "55"] and len(moved.json()["compute_nodes"]) == 55
    finally:
        svc.stop()


def test_a_log_another_process_cannot_open_has_no_workers(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")

    class Wrapped:
        url = log.url

    assert ReplayWorkers.for_log(Wrapped()) is None
    workers = ReplayWorkers.for_log(log)
    assert workers is not None and workers.log_url == f"sqlite:///{tmp_path}/e.db"
    workers.close()


def test_errors_a_worker_names_keep_their_status_and_show_no_path(tmp_path: Path) -> None:
    path = tmp_path / "secret-dir" / "e.db"
    path.parent.mkdir()
    log = open_log(f"sqlite:///{path}")
    log.append(_nodes(50))
    svc = _ready(ModelService(log, sample_every=0.05, dead_letters_every=3600))
    workers = ReplayWorkers.for_log(log, processes=1)
    assert workers is not None
    try:
        app = create_app(svc, workers=workers)
        for suffix in ("", "-wal", "-shm"):  # this process keeps reading its open file; a worker cannot open it
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        gone = anyio.run(_get, app, "/api/export?at=20", "/api/diff?from=10&to=30")
        for r in gone:
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            assert "no such log file" in r.json()["error"] and "secret-dir" not in r.text, r.text

        # what a worker answers is turned back into the error the thread path raises
        from concurrent.futures import Future

        from eventmodel.log.base import LogError, Position
        from eventmodel.serve.limits import Cancelled
        from eventmodel.serve.service import BadRequest

        for outcome, error in (("bad", BadRequest), ("log", LogError), ("cancelled", Cancelled),
                               ("error", RuntimeError)):
            done: Future[Any] = Future()
            done.set_result((outcome, "why"))
            workers._submit = lambda job, args, done=done: done  # type: ignore[method-assign]
            with pytest.raises(error, match="why"):
                workers.diff(Position((1,)), Position((2,)), 0, 10, threading.Event())
    finally:
        workers.close()
        svc.stop()


def test_spools_of_a_dead_serving_process_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """A serving process killed with -9 leaves its spool directory; the next one removes
    it (its pid no longer runs) and leaves a running process's alone."""
    import subprocess
    import sys

    from eventmodel.serve.workers import SPOOL_PREFIX, remove_orphan_spools

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{SPOOL_PREFIX}{gone.pid}-abc"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "export.json").write_bytes(b"{}")
    live = tmp_path / f"{SPOOL_PREFIX}{os.getpid()}-xyz"
    live.mkdir()
    odd = tmp_path / f"{SPOOL_PREFIX}notapid"
    odd.mkdir()
    assert remove_orphan_spools(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists() and odd.exists()
