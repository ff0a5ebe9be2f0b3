"""Full sync at scale, over HTTP, beside what Watcher's collector would ask for.

    python -m tests.bench.bench_sync [--size 1k|10k|both] [--compare] [--workers 8] [--page-size 1000]
                                     [--volumes 20000 --storage-backends 25]

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

With ``--volumes`` (20,000 by default at 1k; 0 turns it off) the cloud also runs a
simulated Cinder (``--storage-backends`` cinder-volume backends of two pools each, the
last one a single infinite pool), and a storage sync follows the compute one: its wall
time, requests by route as the server served them, records — beside what Watcher's
Cinder collector makes for the same cloud, counted from its code (research notes
§1.4) and, to check that count, made: the calls of Watcher's ``CinderHelper`` (python-watcher
17) sent through openstacksdk to the same simulated Cinder and counted as it served them.
The count: the services listing once; the types listing once per storage node (one
request: Cinder's ``GET /types`` returns at most ``osapi_max_limit`` types and no
``volume_types_links``, so the SDK never asks for a second page); the pools once; the
volumes in pages of 1,000, where a full page carries a ``volumes_links`` next link, so
``volumes // 1000 + 1`` requests (20,000 volumes: 21, the last page empty); plus what a
fresh openstacksdk connection asks first: Keystone's version document and the token
(identity 2) and Cinder's version document (block-storage 1).

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


def _serve(hosts: int, servers: int, info: Path, volumes: int = 0, backends: int = 25) -> None:
    """The server side: build the cloud, serve it, write where, wait for stdin to close."""
    from eventmodel.sim import SimCloud
    from eventmodel.sim.server import SimServer

    t0 = time.monotonic()
    sim = SimCloud(hosts, servers, seed=7, volumes=volumes, storage_backends=backends if volumes else None)
    built = time.monotonic() - t0
    per_host = Counter(i.host for i in sim.truth().instances.values() if i.host)
    storage = sim.storage_truth()
    with SimServer(sim, freeze_gc=True) as srv:
        tmp = info.with_suffix(".tmp")
        tmp.write_text(json.dumps({"auth": srv.auth_args(), "built_s": built, "control": srv.url + "/_sim",
                                   "servers": sim.instance_count, "per_host": sorted(per_host.values()),
                                   "volumes": len(storage.volumes), "pools": len(storage.pools),
                                   "storage_nodes": len(storage.nodes),
                                   "public_types": sum(1 for t in storage.volume_types.values() if t.is_public)}))
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


def watcher_cinder_requests(nodes: int, volumes: int, page: int = 1000) -> dict[str, int]:
    """Requests of Watcher's CinderModelBuilder for the whole cloud (see the module docstring):
    version document, services, one types listing per storage node, pools, ``volumes // page + 1``
    volume pages; identity: version document and token."""
    storage = 1 + 1 + nodes + 1 + volumes // page + 1
    return {"identity": 2, "block-storage": storage, "total": 2 + storage}


def watcher_cinder_made(auth: dict, control: str) -> dict:
    """Make the calls of Watcher's CinderHelper (python-watcher's own methods, on an
    openstacksdk connection to the simulated cloud) as CinderModelBuilder does, and
    return the requests the server served: by service and by route, and the wall time."""
    import openstack
    from watcher.common import cinder_helper

    helper = cinder_helper.CinderHelper.__new__(cinder_helper.CinderHelper)
    helper.connection = openstack.connect(**auth)
    _reset(control)
    t0 = time.monotonic()
    nodes = helper.get_storage_node_list()
    for node in nodes:  # build_storage_node: one type listing per node
        helper.get_volume_type_by_backendname(node.host.split("@")[1] if "@" in node.host else "")
    try:
        helper.get_storage_pool_list()
    except ValueError:  # float("infinite") (research notes, surprise 6): the request was made
        pass
    volumes = helper.get_volume_list()
    wall = time.monotonic() - t0
    served = _stats(control)
    return {"wall_s": wall, "served": served, "volumes": len(volumes), "nodes": len(nodes)}


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
    served = _stats(meta["control"])
    storage = None
    if meta.get("volumes"):
        from eventmodel.sources.storage_sync import CinderReader

        _reset(meta["control"])
        storage_cpu0 = _cpu_of(pid)  # not scpu0: the compute sync's server CPU is reported from it
        sresult = Snapshotter(CinderReader(reader, page_size=page_size), log, page_size=page_size,
                              service="storage").run_once()
        if not sresult.ok:
            raise SystemExit(f"the storage sync failed: {sresult.error}")
        storage = {"result": sresult, "served": _stats(meta["control"]), "server_cpu": _cpu_of(pid) - storage_cpu0,
                   "watcher": watcher_cinder_made(meta["auth"], meta["control"])}
    log.close()
    return {"result": result, "served": served, "cpu": cpu1 - cpu0, "server_cpu": scpu1 - scpu0,
            "rss": rss1, "rss_growth": rss1 - rss0, "load": os.getloadavg()[0], "storage": storage}


def run(size: str, workers: int, page_size: int, modes: list[bool], volumes: int = 0, backends: int = 25) -> None:
    """Serve a cloud of ``size``, sync it once per mode (False: nodes read while the
    servers are; True: nodes, then servers), print the figures side by side."""
    hosts, servers, target = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix="eventmodel-bench-sync-"))
    info = tmp / "server.json"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_sync", "--serve", str(hosts), str(servers),
                             str(info), str(volumes), str(backends)], stdin=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 1800
        while not info.exists():
            if proc.poll() is not None:
                raise SystemExit(f"the simulated cloud's server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the simulated cloud's server did not start within 30 min")
            time.sleep(0.2)  # the poll interval
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
        if r["storage"] is not None:
            _print_storage(meta, r["storage"])


def _print_storage(meta: dict, s: dict) -> None:
    """The storage sync's figures beside Watcher's Cinder collector's."""
    result, served = s["result"], s["served"]
    watcher = watcher_cinder_requests(meta["storage_nodes"], meta["volumes"])
    made = s["watcher"]
    made_routes = Counter()
    for route, n in made["served"]["by_route"].items():
        if route.startswith("GET /volume"):
            made_routes[route.split("?")[0]] += n
    total = sum(result.requests.values())
    routes = {k: v for k, v in sorted(served["by_route"].items()) if k.startswith("GET /volume")}
    print(f"  -- storage sync: {meta['storage_nodes']} cinder-volume backends, {meta['pools']} pools, "
          f"{meta['volumes']:,} volumes")
    rows = [
        ("wall time", f"{result.wall_s:.2f}s", f"server CPU {s['server_cpu']:.2f}s"),
        ("requests (client count)", f"{total:,} " + json.dumps(dict(sorted(result.requests.items()))),
         f"Watcher's Cinder collector, counted from its code: {watcher['total']:,} "
         f"(identity {watcher['identity']}, block-storage {watcher['block-storage']:,})"),
        ("requests by route (server)", json.dumps(routes), ""),
        ("Watcher's calls, made", f"{made['served']['total']:,} (identity {made['served']['identity']}, "
                                  f"block-storage {made['served']['block-storage']:,}) in {made['wall_s']:.2f}s",
         f"its CinderHelper through openstacksdk, {made['volumes']:,} volumes read"),
        ("  by route (server)", json.dumps(dict(sorted(made_routes.items()))), ""),
        ("records", json.dumps(result.counts), f"{result.pages} volume pages"),
    ]
    width = max(len(row[0]) for row in rows)
    for name, value, note in rows:
        print(f"    {name:<{width}}  {value}" + (f"   [{note}]" if note else ""))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), *(int(a) for a in sys.argv[5:7]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["1k", "10k", "both"], default="1k")
    ap.add_argument("--workers", type=int, default=8, help="Placement inventory requests in flight")
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--compare", action="store_true",
                    help="also sync with the nodes read first, then the servers (side by side)")
    ap.add_argument("--volumes", type=int, default=20_000, help="Cinder volumes (0: no storage sync)")
    ap.add_argument("--storage-backends", type=int, default=25, help="cinder-volume backends")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import warnings

    warnings.simplefilter("ignore")
    sizes = ["1k", "10k"] if args.size == "both" else [args.size]
    for size in sizes:
        run(size, args.workers, args.page_size, [False, True] if args.compare else [False], args.volumes,
            args.storage_backends)


if __name__ == "__main__":
    main()
