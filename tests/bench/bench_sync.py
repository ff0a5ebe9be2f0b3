"""Full sync at scale, over HTTP, beside what Watcher's collector would ask for.

    python -m tests.bench.bench_sync [--size 1k|10k|both] [--compare] [--workers 8] [--page-size 1000]

For each size (1,000 hosts / 50,000 servers; 10,000 / 500,000) the simulated cloud's
API runs in a process of its own (``--serve``: the same script), and this process
runs one full sync through openstacksdk into a fresh SQLite log, then prints:

- wall time of the sync, requests by service (counted on the client's HTTP session,
  and as the server served them), records by kind, server pages;
- the client's peak memory: peak RSS (``getrusage``) and its growth over the sync;
- the request bound ceil(servers/1000) + hosts + a constant, and the target time;
- the requests Watcher's Nova collector (``NovaModelBuilder``, no audit scope) makes
  for the same cloud, counted from its code: one hypervisor listing, then per compute
  node a hypervisor search with its servers, a Placement inventory, and a server
  listing of the host when it has servers (one per 1,000 servers, +1 past 1,000 since
  it then asks with ``limit=-1`` and pages to an empty page); plus the token.

The 10k run builds a 500,000-server cloud in the server process first (minutes).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SIZES = {"1k": (1_000, 50_000, 15.0), "10k": (10_000, 500_000, 120.0)}


def _serve(hosts: int, servers: int, info: Path) -> None:
    """The server side: build the cloud, serve it, write where, wait for stdin to close."""
    from eventmodel.sim import SimCloud
    from eventmodel.sim.server import SimServer

    t0 = time.monotonic()
    sim = SimCloud(hosts, servers, seed=7)
    built = time.monotonic() - t0
    per_host = Counter(i.host for i in sim.truth().instances.values() if i.host)
    with SimServer(sim, freeze_gc=True) as srv:
        tmp = info.with_suffix(".tmp")
        tmp.write_text(json.dumps({"auth": srv.auth_args(), "built_s": built, "control": srv.url + "/_sim",
                                   "servers": sim.instance_count, "per_host": sorted(per_host.values())}))
        tmp.replace(info)
        sys.stdin.read()  # until the benchmark closes our stdin


def watcher_requests(hosts: int, per_host: list[int]) -> dict[str, int]:
    """Requests of Watcher's NovaModelBuilder for the whole cloud (see the module docstring)."""
    listings = 0
    for n in per_host:
        if n == 0:
            continue
        listings += 1 if n <= 1000 else n // 1000 + 1
    compute = math.ceil(hosts / 1000) + hosts + listings
    return {"identity": 1, "compute": compute, "placement": hosts, "total": 1 + compute + hosts}


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stats(control: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(control + "/stats", timeout=30) as r:
        return json.loads(r.read())


def _reset(control: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(control + "/stats/reset", method="POST"), timeout=30).read()


def _sync_once(meta: dict, pid: int, tmp: Path, workers: int, page_size: int, sequential: bool) -> dict:
    """One full sync into a fresh log; its figures."""
    from eventmodel.log import open_log
    from eventmodel.sources.openstack import OpenStackReader
    from eventmodel.sources.sync import Snapshotter

    log = open_log(f"sqlite:///{tmp}/events-{'seq' if sequential else 'conc'}.db")
    reader = OpenStackReader.connect(None, timeout=300, inventory_workers=workers, **meta["auth"])
    reader.page_size = page_size
    if sequential:
        reader.concurrent_listings = False  # type: ignore[misc]
    _reset(meta["control"])
    gc.collect()
    rss0, cpu0, scpu0 = _rss_mb(), _cpu_self(), _cpu_of(pid)
    result = Snapshotter(reader, log, page_size=page_size).run_once()
    rss1, cpu1, scpu1 = _rss_mb(), _cpu_self(), _cpu_of(pid)
    if not result.ok:
        raise SystemExit(f"the sync failed: {result.error}")
    log.close()
    return {"result": result, "served": _stats(meta["control"]), "cpu": cpu1 - cpu0, "server_cpu": scpu1 - scpu0,
            "rss": rss1, "rss_growth": rss1 - rss0, "load": os.getloadavg()[0]}


def run(size: str, workers: int, page_size: int, modes: list[bool]) -> None:
    """Serve a cloud of ``size``, sync it once per mode (False: nodes read while the
    servers are; True: nodes, then servers), print the figures side by side."""
    hosts, servers, target = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix="eventmodel-bench-sync-"))
    info = tmp / "server.json"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_sync", "--serve", str(hosts), str(servers),
                             str(info)], stdin=subprocess.PIPE, text=True)
    try:
        while not info.exists():
            if proc.poll() is not None:
                raise SystemExit(f"the simulated cloud's server exited with {proc.returncode}")
            time.sleep(0.2)
        meta = json.loads(info.read_text())
        print(f"\n== {hosts:,} hosts / {meta['servers']:,} servers: cloud built in {meta['built_s']:.1f}s "
              f"(server up after {time.monotonic() - t0:.1f}s)")
        runs = [(seq, _sync_once(meta, proc.pid, tmp, workers, page_size, seq)) for seq in modes]
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(60)
    bound = math.ceil(meta["servers"] / 1000) + hosts
    watcher = watcher_requests(hosts, meta["per_host"])
    print(f"  target: <= {target:g}s; requests <= ceil(servers/1000) + hosts = {bound:,} + a constant")
    print(f"  Watcher's collector for this cloud: {watcher['total']:,} requests (identity {watcher['identity']}, "
          f"compute {watcher['compute']:,}, placement {watcher['placement']:,})")
    for seq, r in runs:
        result, served = r["result"], r["served"]
        total = sum(result.requests.values())
        rows = [
            ("wall time", f"{result.wall_s:.2f}s", f"load average {r['load']:.1f}"),
            ("CPU time", f"client {r['cpu']:.2f}s, server {r['server_cpu']:.2f}s",
             "the client's CPU is the floor of the wall time"),
            ("requests (client count)", f"{total:,} " + json.dumps(dict(sorted(result.requests.items()))),
             f"Watcher's collector: {watcher['total'] / max(total, 1):.1f}x this"),
            ("requests (server count)", (f"{served['total']:,} (identity {served['identity']}, compute "
                                         f"{served['compute']}, placement {served['placement']})"), ""),
            ("records", json.dumps(result.counts), f"{result.pages} server pages of {page_size}"),
            ("client peak RSS", f"{r['rss']:.0f} MB", f"grew {r['rss_growth']:.0f} MB during the sync"),
            ("throughput", f"{result.counts.get('instance', 0) / result.wall_s:,.0f} servers/s", ""),
        ]
        print("  -- " + ("nodes, then servers" if seq else "nodes read while the servers are (default)"))
        width = max(len(row[0]) for row in rows)
        for name, value, note in rows:
            print(f"    {name:<{width}}  {value}" + (f"   [{note}]" if note else ""))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["1k", "10k", "both"], default="1k")
    ap.add_argument("--workers", type=int, default=8, help="Placement inventory requests in flight")
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--compare", action="store_true",
                    help="also sync with the nodes read first, then the servers (side by side)")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import warnings

    warnings.simplefilter("ignore")
    sizes = ["1k", "10k"] if args.size == "both" else [args.size]
    for size in sizes:
        run(size, args.workers, args.page_size, [False, True] if args.compare else [False])


if __name__ == "__main__":
    main()
