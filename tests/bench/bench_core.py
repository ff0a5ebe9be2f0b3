"""Core benchmarks, printed side by side in one run (these machines are noisy).

    python -m tests.bench.bench_core [--small]

1. replay from the SQLite log: decode + fold events/s, beside the same run's bare
   decode-and-dict-insert loop over the same records (the ceiling);
2. ``latest()`` at 1,000 hosts / 50,000 instances and 10,000 / 500,000, beside
   ``copy.deepcopy`` of the same data;
3. memory per instance in the projection, and beside it memory per Cinder volume, per
   storage pool (with its cinder-volume backend) and per Ironic bare-metal node, folded
   into that same state the same way (records decoded from bytes, traced allocations
   over the count; the storage and bare-metal figures are what each kind adds to it);
4. checkpoint write and restore at the larger size.
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec

from eventmodel import events as ev
from eventmodel.codec import Codec
from eventmodel.log import open_log
from eventmodel.log.base import decode_batches
from projections.checkpoint import read_checkpoint, write_checkpoint
from projections.fold import fold
from projections.projection import REPLAY_BATCH, Projection, bulk, catch_up
from projections.state import ClusterState

FLAVORS = [ev.Flavor(f"m1.{n}", v, m, d) for n, v, m, d in
           [("tiny", 1, 512, 1), ("small", 1, 2048, 20), ("medium", 2, 4096, 40), ("large", 4, 8192, 80),
            ("xlarge", 8, 16384, 160)]]
STATES = [("active", "running"), ("stopped", "shutdown"), ("paused", "paused")]


def instance_events(hosts: int, instances: int, updates: int, seed: int = 1) -> list[ev.Envelope]:
    """Creates for every instance, then ``updates`` random changes (10 % migrations)."""
    rng = random.Random(seed)
    projects = [f"{rng.getrandbits(128):032x}" for _ in range(50)]
    out: list[ev.Envelope] = []
    current: list[ev.Instance] = []
    t = 1_700_000_000_000_000
    for i in range(instances):
        node = f"compute-{rng.randrange(hosts):05d}"
        inst = ev.Instance(f"{rng.getrandbits(128):032x}", t, node, node, "active", rng.choice(FLAVORS), "running",
                           None, rng.choice(projects), "user", f"vm-{i}", False, None, "nova")
        current.append(inst)
        out.append(ev.envelope(ev.InstanceCreated(inst), source="nova-compute:" + node, message_id=str(i),
                               occurred_at=t, recorded_at=t))
    for j in range(updates):
        t += 1_000_000
        k = rng.randrange(instances)
        old = current[k]
        if rng.random() < 0.1:
            node = f"compute-{rng.randrange(hosts):05d}"
            new = ev.Instance(old.uuid, t, node, node, old.vm_state, old.flavor, old.power_state, None,
                              old.project_id, old.user_id, old.name, False, None, "nova")
            payload: object = ev.InstanceMigrated(new, old.host, old.node)
        else:
            vm, power = rng.choice(STATES)
            new = ev.Instance(old.uuid, t, old.host, old.node, vm, old.flavor, power, None,
                              old.project_id, old.user_id, old.name, False, None, "nova")
            payload = ev.InstanceStateChanged(new, "power", old.vm_state)
        current[k] = new
        out.append(ev.envelope(payload, source="nova-compute:" + str(new.host), message_id=f"u{j}",
                               occurred_at=t, recorded_at=t))
    return out


def bench_replay(n_instances: int, n_updates: int, tmp: Path) -> None:
    print(f"\n== replay from the SQLite log: {n_instances:,} creates + {n_updates:,} updates ==")
    log = open_log(f"sqlite:///{tmp}/replay.db")
    events = instance_events(1000, n_instances, n_updates)
    t = time.perf_counter()
    for i in range(0, len(events), 10_000):
        log.append(events[i:i + 10_000])
    print(f"append                     {len(events) / (time.perf_counter() - t):>12,.0f} events/s")
    del events
    raw = [r for batch in log.read_raw() for r in batch]
    n = len(raw)
    codec = Codec()
    results = {}
    for round_ in range(3):
        with bulk():
            # ceiling: bare decode of the same bytes and a dict insert per record
            t = time.perf_counter()
            d: dict = {}
            dec = msgspec.json.decode
            for r in raw:
                o = dec(r.value)
                d[o["key"]] = o
            bare = time.perf_counter() - t
            del d
            # ours: typed decode + fold, from the same bytes in memory, in replay's batches
            t = time.perf_counter()
            state = ClusterState.empty()
            for i in range(0, n, REPLAY_BATCH):
                for recs in decode_batches(iter([raw[i:i + REPLAY_BATCH]]), codec):
                    state = fold(state, recs)
            ours = time.perf_counter() - t
        del state
        gc.collect()
        # end to end: read from SQLite, decode, fold (what `eventmodel replay` does)
        p = Projection()
        t = time.perf_counter()
        catch_up(p, log)
        e2e = time.perf_counter() - t
        results[round_] = (bare, ours, e2e)
        del p
        gc.collect()
    # the best of each over the rounds: on a busy machine a round's pairs are not equally disturbed
    bare, ours, e2e = (min(r[i] for r in results.values()) for i in range(3))
    print(f"bare decode + dict insert  {n / bare:>12,.0f} events/s   (ceiling)")
    print(f"typed decode + fold        {n / ours:>12,.0f} events/s   {bare / ours:6.0%} of ceiling")
    print(f"SQLite read + decode + fold{n / e2e:>12,.0f} events/s   {bare / e2e:6.0%} of ceiling")
    log.close()


def build_state(hosts: int, instances: int) -> tuple[ClusterState, float]:
    """Fold ``instances`` creates (decoded from bytes, as from a log); return state and MB/instance."""
    codec = Codec()
    events = instance_events(hosts, instances, 0)
    nodes = [ev.ComputeNodeObserved("b", ev.ComputeNode(f"compute-{h:05d}", 1, f"compute-{h:05d}", vcpus=64,
                                                        memory_mb=262144, disk_gb=2000)) for h in range(hosts)]
    blobs = [codec.encode(e) for e in events]
    del events
    gc.collect()
    tracemalloc.start()
    state = ClusterState.empty()
    from eventmodel.log.base import Record
    with bulk():
        state = fold(state, [Record(0, i, ev.envelope(p, source="b", message_id=str(i), occurred_at=1,
                                                      recorded_at=1)) for i, p in enumerate(nodes)])
        for i in range(0, len(blobs), 10_000):
            recs = [Record(0, len(nodes) + i + j, codec.decode(b)) for j, b in enumerate(blobs[i:i + 10_000])]
            state = fold(state, recs)
    del blobs, recs
    gc.collect()
    per = tracemalloc.get_traced_memory()[0] / instances
    tracemalloc.stop()
    return state, per


def storage_events(backends: int, volumes: int, baremetal: int, servers: list[str],
                   seed: int = 2) -> dict[str, list[ev.Envelope]]:
    """Records of a block-storage and bare-metal cloud, by what they add: the storage
    nodes (one sync's reads, ``backends`` of them), their pools (two each, ``capacity.pool``),
    ``volumes`` volumes (``volume.create.end``; half attached to one of ``servers``) and
    ``baremetal`` Ironic nodes (``baremetal.node.create.end``)."""
    rng = random.Random(seed)
    projects = [f"{rng.getrandbits(128):032x}" for _ in range(50)]
    types = [(f"{rng.getrandbits(128):032x}", f"type-{k}") for k in range(5)]
    t = 1_700_000_000_000_000
    hosts = [f"storage-{b:03d}@backend-{b}" for b in range(backends)]
    nodes = [ev.SnapshotStarted("bench-storage", scope=(ev.STORAGE_NODE,))]
    nodes += [ev.StorageNodeObserved("bench-storage", ev.StorageNode(h, 0, "nova")) for h in hosts]
    nodes.append(ev.SnapshotCompleted("bench-storage", {ev.STORAGE_NODE: backends}))
    pool_names = [f"{h}#pool-{k}" for h in hosts for k in range(2)]
    pools = [ev.PoolChanged(ev.StoragePool(n, t, 10_000.0, 6_000.0, 5_000.0, 4_000.0, 9_000.0)) for n in pool_names]
    vols: list[object] = []
    for i in range(volumes):
        uuid = f"{rng.getrandbits(128):032x}"
        tid, tname = rng.choice(types)
        attached = (ev.VolumeAttachment(rng.choice(servers), f"{rng.getrandbits(128):032x}"),) if i % 2 else ()
        vols.append(ev.VolumeChanged(ev.Volume(uuid, t + i, rng.choice(pool_names), rng.choice((10, 20, 40, 100)),
                                               "in-use" if attached else "available", f"vol-{i}",
                                               rng.choice(projects), "user", tid, tname, "nova", attached,
                                               created_at=t + i), "created"))
    bms = [ev.BaremetalNodeChanged(ev.BaremetalNode(f"{rng.getrandbits(128):032x}", t + i, f"bm-{i}", "power on",
                                                    "active", False, None, "baremetal.gold",
                                                    rng.choice(servers) if i % 2 else None), "created")
           for i in range(baremetal)]

    def wrap(payloads: list, tag: str) -> list[ev.Envelope]:
        return [ev.envelope(p, source="bench", message_id=f"{tag}{i}", occurred_at=t, recorded_at=t)  # type: ignore[arg-type]
                for i, p in enumerate(payloads)]

    return {"storage_node": wrap(nodes, "s"), "pool": wrap(pools, "p"), "volume": wrap(vols, "v"),
            "baremetal_node": wrap(bms, "b")}


def fold_traced(state: ClusterState, events: list[ev.Envelope]) -> tuple[ClusterState, int]:
    """Fold ``events`` (decoded from bytes, as from a log) into ``state``, after its
    position; return the new state and the bytes the fold allocated and kept."""
    from eventmodel.log.base import Record

    codec = Codec()
    blobs = [codec.encode(e) for e in events]
    start = state.position.offsets[0]
    gc.collect()
    tracemalloc.start()
    with bulk():
        for i in range(0, len(blobs), 10_000):
            recs = [Record(0, start + i + j, codec.decode(b)) for j, b in enumerate(blobs[i:i + 10_000])]
            state = fold(state, recs)
            del recs
    del blobs
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return state, kept


def bench_memory_storage(state: ClusterState, per_instance: float, backends: int, volumes: int,
                         baremetal: int) -> ClusterState:
    """Memory per volume, per pool and per bare-metal node folded into ``state``,
    printed beside the instance figure."""
    servers = list(state.instances.keys())
    events = storage_events(backends, volumes, baremetal, servers)
    rows = [("instance", per_instance, len(servers), "incl. nodes and indexes")]
    for kind, label, note in (("storage_node", "storage node", "a sync's read of the cinder-volume service"),
                              ("pool", "pool", "capacity.pool"), ("volume", "volume", "half attached, 5 types"),
                              ("baremetal_node", "bare-metal node", "half with an instance")):
        state, kept = fold_traced(state, events[kind])
        n = len(state.table(kind))
        rows.append((label, kept / max(n, 1), n, note))
    for label, per, n, note in rows:
        print(f"memory per {label:<16}{per:>10,.0f} bytes ({n:,} folded; {note})")
    return state


def bench_latest(hosts: int, instances: int, tmp: Path, checkpoint: bool, volumes: int = 0, backends: int = 25,
                 baremetal: int = 0) -> None:
    print(f"\n== {hosts:,} hosts / {instances:,} instances ==")
    t = time.perf_counter()
    state, per_instance = build_state(hosts, instances)
    print(f"built by folding           {time.perf_counter() - t:>10.1f} s")
    if not (volumes or baremetal):
        print(f"memory per instance        {per_instance:>10,.0f} bytes (traced allocations / instances, incl. nodes and indexes)")
    else:
        print(f"-- with {backends} cinder-volume backends, {2 * backends} pools, {volumes:,} volumes, "
              f"{baremetal:,} bare-metal nodes (traced allocations each kind adds / its count):")
        state = bench_memory_storage(state, per_instance, backends, volumes, baremetal)
    p = Projection(state)
    reps = 100_000
    t = time.perf_counter()
    for _ in range(reps):
        m = p.latest()
    latest_us = (time.perf_counter() - t) / reps * 1e6
    t = time.perf_counter()
    m = p.latest("audit-1")
    journal_us = (time.perf_counter() - t) * 1e6
    # the same data as plain containers, deep-copied as Watcher does per audit
    plain = {"instances": dict(m.instances()), "nodes": dict(m.compute_nodes()),
             "by_node": {k: dict(v) for k, v in m.state.by_node.items()}}
    t = time.perf_counter()
    copy.deepcopy(plain)
    deep = time.perf_counter() - t
    print(f"latest()                   {latest_us:>10.3f} µs     (journalled read: {journal_us:.1f} µs)")
    print(f"copy.deepcopy of same data {deep * 1e6:>10,.0f} µs     ({deep * 1e6 / latest_us:,.0f}× slower)")
    node = next(iter(m.compute_nodes()))
    t = time.perf_counter()
    for _ in range(1000):
        m.node_free(node)
    print(f"node_free(node)            {(time.perf_counter() - t) / 1000 * 1e6:>10.1f} µs")
    t = time.perf_counter()
    uuid = next(iter(m.instances()))
    for _ in range(1000):
        m.migrate(uuid, node)
    print(f"what-if migrate            {(time.perf_counter() - t) / 1000 * 1e6:>10.1f} µs")
    del plain
    if checkpoint:
        path = tmp / "bench.ckpt"
        t = time.perf_counter()
        write_checkpoint(path, state)
        w = time.perf_counter() - t
        t = time.perf_counter()
        with bulk():
            back = read_checkpoint(path)
        r = time.perf_counter() - t
        assert len(back.instances) == instances
        print(f"checkpoint write           {w:>10.2f} s      ({path.stat().st_size / 2**20:,.0f} MiB)")
        print(f"checkpoint restore         {r:>10.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="Smaller sizes, for a quick look.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.small:
            bench_replay(20_000, 80_000, tmp)
            bench_latest(100, 5_000, tmp, checkpoint=True, volumes=2_000, backends=5, baremetal=100)
        else:
            bench_replay(100_000, 300_000, tmp)
            bench_latest(1_000, 50_000, tmp, checkpoint=False, volumes=20_000, backends=25, baremetal=1_000)
            bench_latest(10_000, 500_000, tmp, checkpoint=True)


if __name__ == "__main__":
    main()
