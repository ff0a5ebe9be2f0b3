"""``eventmodel serve`` under load, side by side in one run (these machines are noisy).

    python -m tests.bench.bench_serve [--hosts 1000] [--instances 50000] [--rate 1000] [--seconds 10]

A simulated cloud of ``--hosts``/``--instances`` is written to a SQLite log by one full
sync; a real ``eventmodel serve`` process follows it. Then, for ``--seconds`` each:

(a) the node list (``/api/nodes?limit=5000``: every node with capacity, used, free,
    status, zone, aggregates) and (b) an instance lookup (``/api/instances/{uuid}``),
    each by ``--clients`` client threads, first with the log idle, then while a feeder
    appends the simulated cloud's operations at ``--rate`` events/s (the follower folds
    them as they come): requests/s and p50/p99 latency, printed side by side;
(c) the page's first render in headless chromium: time from navigation until the cluster
    canvas has drawn every node (and the page's own ``performance.now()`` at that point),
    cold and warm;
(d) ``/healthz`` and the node list, idle and while the attacks of issue 19 run from other
    addresses (127.0.0.2-9, a process of their own): byte-a-second request heads, exports
    at distinct past positions, exports never read, ``/api/history?limit=1``, dead-letter
    pages of the largest size: p99 side by side, and what the attackers got (status
    counts). ``--attacks-only`` runs (d) alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from eventmodel.clock import now_us
from eventmodel.log import open_log
from eventmodel.sim.cloud import SimCloud
from eventmodel.sim.faults import Faults
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.sync import Snapshotter
from tests.fixtures.serve import ServeProcess


def fill(url: str, hosts: int, instances: int, seed: int) -> tuple[SimCloud, float]:
    log = open_log(url)
    sim = SimCloud(hosts, instances, seed=seed, faults=Faults.kind(), start_time_us=now_us())
    t0 = time.perf_counter()
    result = Snapshotter(sim, log, source="bench-sync", clock=lambda: sim.clock_us).run_once()
    assert result.ok, result.error
    log.close()
    return sim, time.perf_counter() - t0


def _feed(sim: SimCloud, url: str, rate: float, total: int, ready: Any, stop: Any, events: Any,
          seconds: Any) -> None:
    """Make ``total`` events first (the simulated cloud's operations, normalized), then
    append them at ``rate`` per second in batches every 0.1 s, stamped when appended."""
    normalizer = NovaNormalizer()
    made: list = []
    while len(made) < total:
        for raw in sim.step(20):
            made.extend(normalizer.normalize(raw, recorded_at=now_us()).events)
    log = open_log(url)
    ready.set()
    t0 = time.perf_counter()
    n = 0
    while not stop.is_set() and n < len(made):
        due = min(len(made), int(rate * (time.perf_counter() - t0 + 0.1)))
        if due > n:
            now = now_us()
            log.append([msgspec.structs.replace(e, recorded_at=now) for e in made[n:due]])
            n = due
            events.value = n
        stop.wait(0.1)
    seconds.value = time.perf_counter() - t0
    log.close()


class Feeder:
    """A process appending the simulated cloud's operations to the log at about ``rate``
    events/s (a process of its own: it must not share a GIL with the clients)."""

    def __init__(self, sim: SimCloud, url: str, rate: float, seconds: float) -> None:
        ctx = mp.get_context("fork")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self._events = ctx.Value("q", 0)
        self._seconds = ctx.Value("d", 0.0)
        total = int(rate * (seconds + 5))
        self._proc = ctx.Process(target=_feed, args=(sim, url, rate, total, self._ready, self._stop, self._events,
                                                     self._seconds), daemon=True)

    @property
    def rate(self) -> float:
        return self._events.value / max(self._seconds.value, 1e-9)

    def __enter__(self) -> Feeder:
        self._proc.start()
        if not self._ready.wait(600):
            raise TimeoutError("the feeder did not make its events within 600 s")
        time.sleep(1.0)  # let the follower reach the feeder's pace before measuring
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(30)


def _client(url: str, paths: Callable[[random.Random], str], seed: int, until: float, out: Any) -> None:
    rng = random.Random(seed)
    lat: list[float] = []
    codes: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        while time.time() < until:
            t = time.perf_counter()
            r = c.get(paths(rng))
            r.read()
            lat.append(time.perf_counter() - t)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    out.put((lat, codes))


def load(url: str, paths: Callable[[random.Random], str], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` processes GET ``paths(rng)`` for ``seconds`` (processes, so that the
    clients do not share one GIL): requests/s, p50, p99 (ms), 5xx and 404 counts."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    t0 = time.perf_counter()
    until = time.time() + seconds
    procs = [ctx.Process(target=_client, args=(url, paths, i, until, out)) for i in range(clients)]
    for p in procs:
        p.start()
    lat: list[float] = []
    codes: dict[int, int] = {}
    for _ in procs:
        mine, c = out.get(timeout=seconds + 120)
        lat.extend(mine)
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    for p in procs:
        p.join(30)
    took = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"rps": len(lat) / took, "p50": p(0.50), "p99": p(0.99), "n": len(lat),
            "errors": sum(n for c, n in codes.items() if c >= 500), "404": codes.get(404, 0)}


def _attack(url: str, kind: str, end: int, uuids: list[str], until: float, out: Any, who: int) -> None:
    """One attacker thread's loop until ``until``; counts of what it got go to ``out``."""
    import socket
    import threading
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    addr = f"127.0.0.{2 + who % 8}"
    codes: dict[str, int] = {}

    def got(k: str) -> None:
        codes[k] = codes.get(k, 0) + 1

    rng = random.Random(who)
    if kind == "slow heads":
        socks = []
        for _ in range(100):
            try:
                s = socket.create_connection((host, port), timeout=5, source_address=(addr, 0))
                s.sendall(b"GET /api/status HTTP/1.1\r\n")
                socks.append(s)
            except OSError:
                got("refused")
        while time.time() < until:
            for s in list(socks):
                try:
                    s.sendall(b"X")
                except OSError:
                    got("closed by server")
                    socks.remove(s)
                    try:
                        socks.append(socket.create_connection((host, port), timeout=5, source_address=(addr, 0)))
                        socks[-1].sendall(b"GET /api/status HTTP/1.1\r\n")
                    except OSError:
                        got("refused")
            time.sleep(1.0)
        for s in socks:
            s.close()
    elif kind == "exports never read":
        while time.time() < until:
            try:
                s = socket.create_connection((host, port), timeout=5, source_address=(addr, 0))
                s.settimeout(30)
                s.sendall(b"GET /api/export HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(1)
                time.sleep(2.0)
                s.close()
                got("left unread")
            except OSError:
                got("error")
    else:
        transport = httpx.HTTPTransport(local_address=addr)
        with httpx.Client(base_url=url, timeout=60, transport=transport) as c:
            while time.time() < until:
                if kind == "exports at past points":
                    path = f"/api/export?at={rng.randrange(1, end)}"
                elif kind == "history limit=1":
                    path = f"/api/history/instance/{rng.choice(uuids)}?limit=1"
                else:
                    path = "/api/deadletters?limit=5000&bytes=65536"
                try:
                    got(str(c.get(path).status_code))
                except httpx.HTTPError as exc:
                    got(type(exc).__name__)
    out.put((kind, codes))


ATTACKS = ("slow heads", "exports at past points", "exports never read", "history limit=1", "dead-letter pages")


def _attacker(url: str, end: int, uuids: list[str], seconds: float, out: Any) -> None:
    import threading

    until = time.time() + seconds
    threads = [threading.Thread(target=_attack, args=(url, kind, end, uuids, until, out, i * 5 + j))
               for j, kind in enumerate(ATTACKS) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def under_attack(url: str, uuids: list[str], clients: int, seconds: float) -> None:
    """(d): /healthz and the node list, idle and under attack, side by side."""
    end = httpx.get(url + "/api/status", timeout=60).json()["lag"]["partitions"][0]["end"]
    tests = {"/healthz": lambda rng: "/healthz", "node list (all nodes)": lambda rng: "/api/nodes?limit=5000"}
    idle = {name: load(url, paths, clients, seconds) for name, paths in tests.items()}
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    attacker = ctx.Process(target=_attacker, args=(url, end, uuids, seconds * len(tests) + 10, out), daemon=True)
    attacker.start()
    time.sleep(3.0)  # let the attacks get going
    busy = {name: load(url, paths, clients, seconds) for name, paths in tests.items()}
    got: dict[str, dict[str, int]] = {}
    for _ in range(len(ATTACKS) * 4):
        kind, codes = out.get(timeout=seconds * len(tests) + 300)
        for k, v in codes.items():
            got.setdefault(kind, {})[k] = got.setdefault(kind, {}).get(k, 0) + v
    attacker.join(60)
    print()
    print(f"{'':24} {'idle':>32}   {'under attack':>32}")
    print(f"{'':24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>5}   {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'5xx':>5}")
    for name in tests:
        a, b = idle[name], busy[name]
        print(f"{name:24} {a['rps']:8.1f} {a['p50']:8.1f} {a['p99']:8.1f} {a['errors']:5d}   "
              f"{b['rps']:8.1f} {b['p50']:8.1f} {b['p99']:8.1f} {b['errors']:5d}")
    print(f"(p99 under attack / idle: /healthz {busy['/healthz']['p99'] / max(idle['/healthz']['p99'], 1e-9):.1f}x, "
          f"node list {busy['node list (all nodes)']['p99'] / max(idle['node list (all nodes)']['p99'], 1e-9):.1f}x)")
    print("what the attackers got (4 threads each, 127.0.0.2-9):")
    for kind in ATTACKS:
        print(f"  {kind:24} " + ", ".join(f"{k}: {v}" for k, v in sorted(got.get(kind, {}).items())))


def first_render(url: str, nodes: int, runs: int = 2) -> list[tuple[float, float]]:
    """(seconds from navigation to every node drawn, the page's performance.now() then in s)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        raise SystemExit("the page figure needs: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1500,1000"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    out = []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            d.get(url + "/")
            while d.find_element(By.ID, "cluster").get_attribute("data-node-count") != str(nodes):
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError("the page did not draw every node within 120 s")
                time.sleep(0.01)
            wall = time.perf_counter() - t0
            perf = float(d.execute_script("return document.body.dataset.firstRender || 'NaN'")) / 1000
            out.append((wall, perf))
        d.save_screenshot(str(Path(tempfile.gettempdir()) / "bench-serve-page.png"))
    finally:
        d.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s appended while loading")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=4, help="client processes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attacks-only", action="store_true", help="run (d) alone")
    ap.add_argument("--threads", type=int, default=2, help="serve --threads")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        sim, took = fill(url, args.hosts, args.instances, args.seed)
        log = open_log(url)
        print(f"log: {args.hosts:,} hosts / {args.instances:,} instances, {log.end().total:,} records "
              f"(one full sync, {took:.1f} s)")
        uuids = sorted(sim.state.instances.keys()) if hasattr(sim.state, "instances") else []
        t0 = time.perf_counter()
        with ServeProcess(url, "--ready-lag", "30", "--threads", str(args.threads), timeout=600) as serve:
            serve.wait_ready(600)
            print(f"serve: ready in {time.perf_counter() - t0:.1f} s (process start, restore, first sample)")
            if not uuids:
                uuids = [i["uuid"] for i in serve.json("/api/instances?limit=5000")["items"]]
            nodes = serve.json("/api/status")["counts"]["node"]
            if args.attacks_only:
                under_attack(serve.url, uuids, args.clients, args.seconds)
                return
            tests = {
                "node list (all nodes)": lambda rng: "/api/nodes?limit=5000",
                "instance lookup": lambda rng: f"/api/instances/{rng.choice(uuids)}",
            }
            rows = []
            for name, paths in tests.items():
                idle = load(serve.url, paths, args.clients, args.seconds)
                with Feeder(sim, url, args.rate, args.seconds) as feeder:
                    busy = load(serve.url, paths, args.clients, args.seconds)
                rate = feeder.rate
                rows.append((name, idle, busy, rate))
            lag = serve.json("/api/status")["lag"]
            print()
            print(f"{'':24} {'idle log':>32}   {'while the follower folds':>40}")
            print(f"{'':24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>5}   {'events/s':>9} "
                  f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>5}")
            for name, idle, busy, rate in rows:
                print(f"{name:24} {idle['rps']:8.1f} {idle['p50']:8.1f} {idle['p99']:8.1f} {idle['errors']:5d}   "
                      f"{rate:9,.0f} {busy['rps']:8.1f} {busy['p50']:8.1f} {busy['p99']:8.1f} {busy['errors']:5d}")
            print(f"(clients: {args.clients}; lookups of instances deleted meanwhile answer 404: "
                  f"{rows[1][2]['404']}; lag after loading: {lag['records']} records, {lag['seconds']:.2f} s)")
            renders = first_render(serve.url, nodes)
            print()
            for i, (wall, perf) in enumerate(renders):
                print(f"page first render ({'cold' if i == 0 else 'warm'}): every one of {nodes:,} nodes drawn "
                      f"{wall:.2f} s after navigation (page clock: {perf:.2f} s)")
            size = len(serve.get("/api/nodes?limit=5000").content)
            print(f"node list answer: {size / 1e6:.2f} MB")
            under_attack(serve.url, uuids, args.clients, args.seconds)


if __name__ == "__main__":
    main()
