"""The model service behind ``eventmodel serve``: restore retried while the log cannot be
read, the follower held and released, readiness and its reasons (a real SQLite log)."""

from __future__ import annotations

from pathlib import Path

from eventmodel.clock import now_us
from eventmodel.events import ComputeNode, ComputeNodeObserved, envelope
from eventmodel.log import open_log
from eventmodel.log.base import LogError, Position
from eventmodel.retry import RetryEvent
from eventmodel.serve.service import ModelService, NotReady, reason_class
from tests.fixtures.polling import wait_until


class FlakyLog:
    """A real log whose ``end()`` fails the first ``failures`` times (a broker starting)."""

    def __init__(self, log: object, failures: int) -> None:
        self._log, self.failures = log, failures

    def end(self) -> Position:
        if self.failures > 0:
            self.failures -= 1
            raise LogError("broker not reachable yet")
        return self._log.end()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)


def _nodes(n: int, start: int = 0) -> list:
    now = now_us()
    return [envelope(ComputeNodeObserved("s", ComputeNode(f"n{i}", now, host=f"h{i}", vcpus=8)), source="t",
                     message_id=f"m{i}", occurred_at=now, recorded_at=now) for i in range(start, start + n)]


def test_restore_is_retried_until_the_log_answers(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    log.append(_nodes(3))
    svc = ModelService(FlakyLog(log, 2), retry_initial=0.01, sample_every=0.05)  # type: ignore[arg-type]
    retries: list[RetryEvent] = []
    svc.on_retry = retries.append
    svc.start()
    try:
        wait_until(lambda: svc.readiness()[0], 30, "the service to be ready")
        assert len(retries) == 2 and all(r.component == "serve.restore" for r in retries)
        assert svc.restore_error is None and len(svc.model().compute_nodes()) == 3
    finally:
        svc.stop()


def test_hold_release_and_readiness_reasons(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    log.append(_nodes(2))
    svc = ModelService(log, sample_every=0.05, ready_lag=0.0)
    try:
        try:
            svc.model()
            raise AssertionError("a model before the service started")
        except NotReady as exc:
            assert "restoring" in str(exc)
        svc.start()
        wait_until(lambda: svc.readiness()[0], 30, "the service to be ready")
        assert svc.hold() is True
        log.append(_nodes(4, start=2))
        ready, why = wait_until(lambda: (lambda r: r if not r[0] else None)(svc.readiness()), 30, "not ready")
        assert "behind the log" in why and svc.sample.records == 4
        assert len(svc.model().compute_nodes()) == 2  # held: the model did not move
        assert svc.hold() is False
        wait_until(lambda: svc.readiness()[0], 30, "ready again after the release")
        assert len(svc.model().compute_nodes()) == 6 and svc.sample.records == 0
    finally:
        svc.stop()


def test_dead_letter_reasons_are_few_labels() -> None:
    assert reason_class("instance.update: missing field 'uuid'") == "instance.update"
    assert reason_class("") == "unknown"
    assert len(reason_class("x" * 500)) == 60


def test_a_dead_letter_page_is_bounded_in_bytes_and_continues(tmp_path: Path) -> None:
    """Issue 19 finding 4: ``limit=1000&bytes=65536`` once built a 351 MB answer."""
    import anyio
    import httpx

    from eventmodel.log.base import DeadLetter
    from eventmodel.serve.api import DEAD_LETTER_PAGE_BYTES
    from eventmodel.serve.app import create_app

    log = open_log(f"sqlite:///{tmp_path}/e.db")
    log.append(_nodes(1))
    blob = b"x" * 65536
    log.append_dead_letters([DeadLetter.of(blob + str(k).encode(), "not valid JSON", "amqp", now_us())
                             for k in range(200)])
    svc = ModelService(log, sample_every=0.05)
    svc.start()
    try:
        wait_until(lambda: svc.dead.total == 200, 30, "the dead letters read")
        app = create_app(svc)

        async def get(path: str) -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                return await c.get(path)

        seen: list[int] = []
        cursor = ""
        while True:
            r = anyio.run(get, f"/api/deadletters?limit=1000&bytes=65536{cursor}")
            assert r.status_code == 200 and len(r.content) < 2 * DEAD_LETTER_PAGE_BYTES
            body = r.json()
            seen += [item["id"] for item in body["items"]]
            if body["next"] is None:
                break
            cursor = f"&cursor={body['next']}"
        assert len(seen) == len(set(seen)) == min(200, len(svc.dead.newest))  # every letter once, in pages
    finally:
        svc.stop()
