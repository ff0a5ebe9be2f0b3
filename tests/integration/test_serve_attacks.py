"""``eventmodel serve`` while it is attacked, at a small scale (the figures at 1,000 hosts /
50,000 instances are ``tests/bench/bench_serve.py``'s): byte-a-second connections, exports
at many distinct positions, clients that never read, history and dead-letter pages,
token guesses. Asserted: no answer is a 500, every /healthz answers meanwhile, the slow
connections are closed by the server, and the model's answers stay right."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from eventmodel.log import open_log
from tests.fixtures.polling import wait_until
from tests.fixtures.serve import ServeProcess, fill_with_demo

TOKEN = "attack-test-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('attacks') / 'events.db'}"
    fill_with_demo(url, hosts=10, instances=120, seed=3)
    return url


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (read until EOF or a reset; waits at most 30 s)."""
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_attacks_get_no_500_and_healthz_answers_throughout(attack_log: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    end = open_log(attack_log).end().total
    with ServeProcess(attack_log, "--token-file", str(token_file), "--header-timeout", "1", "--max-replays", "1",
                      "--replay-queue", "2", "--per-client", "6", "--guesses-per-minute", "6") as serve:
        serve.headers = AUTH
        serve.wait_ready()
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def count(code: int) -> None:
            with lock:
                statuses[code] += 1

        # byte-a-second heads: each is closed by the server (the head never completes)
        slow = [_connect(serve.url) for _ in range(30)]
        for s in slow:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")

        def exports(worker: int) -> None:
            with httpx.Client(base_url=serve.url, headers=AUTH, timeout=120) as c:
                for n in range(8):
                    count(c.get(f"/api/export?at={1 + (worker * 8 + n) * 7 % (end - 1)}").status_code)

        def never_read() -> None:
            for _ in range(6):
                s = _connect(serve.url)
                s.sendall(f"GET /api/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
                s.recv(1)  # the answer started; the rest is never read
                s.close()

        def pages() -> None:
            with httpx.Client(base_url=serve.url, headers=AUTH, timeout=120) as c:
                for _ in range(10):
                    for path in ("/api/deadletters?limit=5000&bytes=65536", "/api/nodes?limit=5000",
                                 "/api/instances?limit=5000", "/api/search?q=a&limit=200",
                                 f"/api/diff?from={end // 3}&to={end // 2}"):
                        count(c.get(path).status_code)

        def guesses() -> None:
            # from another address: the throttle is per address (the others are not locked out)
            with httpx.Client(base_url=serve.url, timeout=60,
                              transport=httpx.HTTPTransport(local_address="127.0.0.2")) as c:
                for i in range(40):
                    count(c.post("/login", data={"token": f"guess-{i}"}).status_code)

        workers = [threading.Thread(target=exports, args=(w,)) for w in range(4)]
        workers += [threading.Thread(target=never_read), threading.Thread(target=pages),
                    threading.Thread(target=guesses)]
        for w in workers:
            w.start()
        health: Counter[int] = Counter()
        with httpx.Client(base_url=serve.url, timeout=30) as probe:
            while any(w.is_alive() for w in workers):
                health[probe.get("/healthz").status_code] += 1
        for w in workers:
            w.join()
        assert health and set(health) == {200}, health
        assert 500 not in statuses and set(statuses) <= {200, 303, 401, 429, 503}, statuses
        assert statuses[429] >= 1  # the guesses were throttled
        with httpx.Client(base_url=serve.url, timeout=60,
                          transport=httpx.HTTPTransport(local_address="127.0.0.2")) as c:
            locked = c.get("/api/status", headers=AUTH)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        assert statuses[200] >= 1

        wait_until(lambda: all(_closed_by_server(s) for s in slow), 60, "the server to close the slow heads")
        for s in slow:
            s.close()
        # and the model still answers right
        assert serve.json("/api/status")["position"] == str(open_log(attack_log).end())
        code, err = serve.stop()
        assert code == 0, err


def test_insecure_no_token_is_needed_to_serve_a_public_address_without_one(attack_log: str) -> None:
    with ServeProcess(attack_log, "--listen", "0.0.0.0:0", "--insecure-no-token") as serve:
        serve.wait_ready()
        assert serve.get("/api/status").status_code == 200
        code, err = serve.stop()
    assert code == 0 and "without a token (--insecure-no-token)" in err
