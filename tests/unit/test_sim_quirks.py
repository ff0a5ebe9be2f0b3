"""The simulated cloud is as unkind as Nova: each quirk of ``Faults.nova_like()`` is
observable, configurable, deterministic per seed, and leaves the ground truth alone."""

from __future__ import annotations

from collections import Counter

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.clock import parse_time
from eventmodel.events import Instance
from eventmodel.sim import Faults, PartialInstance, SimCloud, diff_truth
from eventmodel.sim.notifications import unwrap

S = 1_000_000
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KIND_OF_INSTANCE = "instance."


def events(msgs: list[bytes]) -> list[dict]:
    return [unwrap(m) for m in msgs]


def data(msg: dict) -> dict:
    return msg["payload"]["nova_object.data"]


def updated_at(msg: dict) -> int | None:
    v = data(msg)["updated_at"]
    return None if v is None else parse_time(v)


def find(sim: SimCloud, pred) -> Instance:
    for inst in sim.truth().instances.values():
        if pred(inst):
            return inst
    raise AssertionError("no instance matches")


def full_listing(sim: SimCloud, limit: int = 1000) -> list[Instance | PartialInstance]:
    out: list[Instance | PartialInstance] = []
    marker = None
    while True:
        page = sim.list_servers(limit=limit, marker=marker)
        out += page
        if len(page) < limit:
            return out
        marker = page[-1].uuid


# ---------------------------------------------------------------------------
# The preset
# ---------------------------------------------------------------------------


def test_nova_like_turns_every_quirk_on_and_takes_overrides():
    f = Faults.nova_like()
    for name in ("drop", "duplicate", "delay", "reorder", "redeliver", "null_updated_at", "clock_skew",
                 "omit", "down_cell"):  # fmt: skip
        assert getattr(f, name) > 0, name
    assert f.empty_az and f.max_skew_s == 2 and f.redeliver_distance == (100, 1000)
    assert Faults.nova_like(omit=0.5, drop=0).omit == 0.5 and Faults.nova_like(drop=0).drop == 0
    quiet = f.quiet_listing()
    assert quiet.omit == quiet.down_cell == 0 and quiet.redeliver == f.redeliver
    kind = Faults.kind()
    assert not kind.any and kind == Faults()
    assert not (kind.null_updated_at or kind.clock_skew or kind.omit or kind.down_cell or kind.empty_az)


@pytest.mark.parametrize(
    "bad",
    [{"redeliver": 1.5}, {"omit": -0.1}, {"down_cell": 2}, {"null_updated_at": 1.1}, {"clock_skew": -1},
     {"redeliver_distance": (0, 10)}, {"redeliver_distance": (10, 5)}, {"cells": 0}, {"max_skew_s": -1}],
)  # fmt: skip
def test_faults_refuse_bad_rates(bad):
    with pytest.raises(ValueError):
        Faults(**bad)


def test_nova_like_is_deterministic_and_leaves_the_truth_alone_but_versions():
    a = SimCloud(8, 120, seed=7, faults=Faults.nova_like())
    b = SimCloud(8, 120, seed=7, faults=Faults.nova_like())
    clean = SimCloud(8, 120, seed=7)
    out_a = a.step(400) + a.flush()
    assert out_a == b.step(400) + b.flush()
    clean.step(400)
    assert full_listing(a, 37) == full_listing(b, 37)
    assert a.omitted_last_listing == b.omitted_last_listing
    assert a.minimal_last_listing == b.minimal_last_listing
    assert a.counters == b.counters
    # the same operations on the same entities: only versions move (clock skew)
    assert diff_truth(a.truth(), clean.truth().instances, clean.truth().nodes, clean.truth().services) == []
    assert [(r.kind, r.uuid, r.source, r.dest) for r in a.history] == [
        (r.kind, r.uuid, r.source, r.dest) for r in clean.history
    ]
    assert any(a.instance(u).version != clean.instance(u).version for u in a.truth().instances)


# ---------------------------------------------------------------------------
# Several saves in one second (Nova's one-second updated_at)
# ---------------------------------------------------------------------------


def test_several_saves_of_one_instance_share_a_second_with_different_states():
    sim = SimCloud(6, 60, seed=3, faults=Faults.nova_like(drop=0, duplicate=0, delay=0, reorder=0, redeliver=0))
    msgs = [m for m in events(sim.step(200)) if m["event_type"] == "instance.update"]
    last: dict[str, tuple[int | None, str | None]] = {}
    same = 0
    for m in msgs:
        d = data(m)
        prev = last.get(d["uuid"])
        now = (updated_at(m), d["task_state"])
        if prev is not None and prev[0] is not None and prev[0] == now[0] and prev[1] != now[1]:
            same += 1
        last[d["uuid"]] = now
    assert same >= len(msgs) // 10, (same, len(msgs))


# ---------------------------------------------------------------------------
# updated_at null on a new instance's first notifications
# ---------------------------------------------------------------------------


def boot_messages(faults: Faults) -> tuple[SimCloud, list[dict]]:
    sim = SimCloud(3, 5, seed=2, faults=faults)
    return sim, events(sim.boot(flavor="m1.small", host="compute-0002"))


def test_a_boot_first_updates_and_create_start_have_updated_at_null_and_created_at_set():
    sim, msgs = boot_messages(Faults(null_updated_at=1.0))
    types = [m["event_type"] for m in msgs]
    cut = types.index("instance.create.start")
    early, late = msgs[: cut + 1], msgs[cut + 1 :]
    assert [m["event_type"] for m in early].count("instance.update") >= 2
    for m in early:
        assert data(m)["updated_at"] is None, m["event_type"]
        assert data(m)["created_at"] is not None
    assert late and all(updated_at(m) is not None for m in late)
    inst = sim.instance(sim.last_op.uuid)
    assert updated_at(msgs[-1]) == inst.version
    assert parse_time(data(msgs[0])["created_at"]) < inst.version
    assert sim.counters["null_updated_at_boots"] == 1


def test_without_the_quirk_every_boot_notification_has_updated_at():
    _, msgs = boot_messages(Faults())
    assert all(updated_at(m) is not None for m in msgs)


@FAST
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([0.0, 0.5, 1.0]))
def test_only_a_boot_notifications_up_to_create_start_have_updated_at_null(seed, rate):
    sim = SimCloud(4, 30, seed=seed, faults=Faults(null_updated_at=rate), weights={"boot": 40})
    msgs = [m for m in events(sim.step(60)) if m["event_type"].startswith(KIND_OF_INSTANCE)]
    started: set[str] = set()
    nulls: Counter[str] = Counter()
    for m in msgs:
        d = data(m)
        assert d["created_at"] is not None
        if d["updated_at"] is None:
            assert d["uuid"] not in started and d["state"] == "building", m["event_type"]
            nulls[d["uuid"]] += 1
        if m["event_type"] == "instance.create.start":
            started.add(d["uuid"])
    assert set(nulls) <= started
    assert len(nulls) == sim.counters["null_updated_at_boots"]
    assert all(n == 3 for n in nulls.values())  # conductor's update, compute's first update, create.start
    if rate == 0.0:
        assert not nulls
    if rate == 1.0:
        assert len(nulls) == len(started) == sim.counters["boot"]


# ---------------------------------------------------------------------------
# Per-host clock skew
# ---------------------------------------------------------------------------


def test_skewed_hosts_have_whole_second_offsets_within_the_bound():
    sim = SimCloud(40, 0, seed=1, faults=Faults(clock_skew=1.0, max_skew_s=2))
    offsets = [sim.skew_of(h) for h in sim.hosts]
    assert all(o != 0 and o % S == 0 and abs(o) <= 2 * S for o in offsets)
    assert {o // S for o in offsets} == {-2, -1, 1, 2}
    half = SimCloud(40, 0, seed=1, faults=Faults(clock_skew=0.5))
    assert 0 < sum(1 for h in half.hosts if half.skew_of(h)) < 40
    assert all(SimCloud(10, 0, seed=1).skew_of(h) == 0 for h in sim.hosts[:10])


def test_a_skewed_compute_save_differs_from_the_conductor_and_the_truth_follows_it():
    faults = Faults(clock_skew=1.0)
    sim = SimCloud(3, 6, seed=6, faults=faults)
    clean = SimCloud(3, 6, seed=6)
    inst = find(sim, lambda i: True)
    skew = sim.skew_of(inst.host)
    assert skew != 0
    ours, theirs = events(sim.power_off(inst.uuid)), events(clean.power_off(inst.uuid))
    assert [m["event_type"] for m in ours] == [m["event_type"] for m in theirs]
    for a, b in zip(ours, theirs):
        if a["publisher_id"].startswith("nova-api:"):
            assert updated_at(a) == updated_at(b)  # the conductor's clock is right
            assert parse_time(a["timestamp"]) == parse_time(b["timestamp"])
        else:
            assert a["publisher_id"] == "nova-compute:" + inst.host
            assert parse_time(a["timestamp"]) == parse_time(b["timestamp"]) + skew
    api_save, comp_save = ours[0], ours[-1]
    assert api_save["publisher_id"].startswith("nova-api:") and comp_save["event_type"] == "instance.power_off.end"
    assert updated_at(comp_save) == updated_at(theirs[-1]) + skew
    assert sim.instance(inst.uuid).version == updated_at(comp_save) == clean.instance(inst.uuid).version + skew
    # the saver's own clock stamps its own notifications: same second on both
    assert parse_time(comp_save["timestamp"]) // S * S == updated_at(comp_save)


@FAST
@given(seed=st.integers(0, 10_000), steps=st.integers(20, 150))
def test_the_truth_version_is_the_updated_at_of_the_last_save(seed, steps):
    sim = SimCloud(5, 30, seed=seed, faults=Faults(clock_skew=1.0))
    msgs = events(sim.step(steps))
    last: dict[str, int] = {}
    for m in msgs:
        # the source's post.end is stale: it is not a save
        if m["event_type"].startswith(KIND_OF_INSTANCE) and m["event_type"] != "instance.live_migration_post.end":
            last[data(m)["uuid"]] = updated_at(m)  # type: ignore[assignment]
    truth = sim.truth().instances
    assert any(u in truth for u in last)
    for u, v in last.items():
        if u in truth:
            assert truth[u].version == v, u


def test_skew_can_make_a_later_save_look_older():
    """Why only a full sync can be trusted over versions: a compute whose clock is
    behind stamps the operation's last save before the conductor's first."""
    sim = SimCloud(20, 200, seed=4, faults=Faults(clock_skew=1.0), weights={"state_away": 50, "state_back": 50})
    found = False
    for m_batch in (events(sim.step(1)) for _ in range(300)):
        saves = [updated_at(m) for m in m_batch if m["event_type"] == "instance.update"]
        if len(saves) >= 2 and saves[-1] is not None and saves[0] is not None and saves[-1] < saves[0]:
            found = True
            break
    assert found


# ---------------------------------------------------------------------------
# Redelivery far later
# ---------------------------------------------------------------------------


@FAST
@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([0.05, 0.3, 1.0]),
    lo=st.integers(1, 300),
    span=st.integers(0, 400),
)
def test_redelivered_notifications_come_again_at_least_lo_later(seed, rate, lo, span):
    clean = SimCloud(5, 50, seed=seed).step(150)
    sim = SimCloud(5, 50, seed=seed, faults=Faults(redeliver=rate, redeliver_distance=(lo, lo + span)))
    out = sim.step(150)
    rest = sim.flush()
    c = sim.counters
    assert c["redelivered"] > 0 or rate < 1.0
    everything = Counter(out + rest)
    assert set(everything) == set(clean)
    assert sum(everything.values()) == len(clean) + c["redelivered"] == c["emitted"]
    assert sum(1 for n in everything.values() if n == 2) == c["redelivered"]
    first: dict[bytes, int] = {}
    for i, m in enumerate(out):
        if m in first:
            assert i - first[m] >= lo
        else:
            first[m] = i
    # the first copies go out in order: only the redelivered copies are late
    assert [m for i, m in enumerate(out) if first[m] == i] == [m for m in clean if m in first]


def test_redelivery_hundreds_of_notifications_later():
    clean = SimCloud(10, 200, seed=5).step(600)
    sim = SimCloud(10, 200, seed=5, faults=Faults(redeliver=0.02))
    out = sim.step(600)
    first: dict[bytes, int] = {}
    distances = []
    for i, m in enumerate(out):
        if m in first:
            distances.append(i - first[m])
        else:
            first[m] = i
    assert distances and min(distances) >= 100
    assert len(clean) > 1000 and sim.counters["redelivered"] >= len(distances)


@FAST
@given(seed=st.integers(0, 1000), f=st.sampled_from([Faults.nova_like(), Faults.nova_like(drop=0.3, redeliver=0.3)]))
def test_all_delivery_counters_add_up(seed, f):
    on_time = attrs.evolve(f, drop=0, duplicate=0, delay=0, reorder=0, redeliver=0)
    clean = SimCloud(4, 30, seed=seed, faults=on_time).step(80)
    sim = SimCloud(4, 30, seed=seed, faults=f)
    out = sim.step(80) + sim.flush()
    c = sim.counters
    assert c["notifications"] == len(clean)
    assert len(out) == c["emitted"] == c["notifications"] - c["dropped"] + c["duplicated"] + c["redelivered"]
    assert set(out) <= set(clean)


# ---------------------------------------------------------------------------
# A listing that omits servers
# ---------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 10_000), limit=st.integers(1, 60), rate=st.sampled_from([0.05, 0.3]))
def test_an_omitted_server_is_missing_from_that_listing_only(seed, limit, rate):
    sim = SimCloud(4, 80, seed=seed, faults=Faults(omit=rate))
    sim.step(20)
    truth = set(sim.truth().instances)
    pages: list[list] = []
    marker = None
    while True:
        page = sim.list_servers(limit=limit, marker=marker)
        pages.append(page)
        if len(page) < limit:
            break
        marker = page[-1].uuid
    assert all(len(p) == limit for p in pages[:-1]), "an omission must not end the listing early"
    listed = [i.uuid for p in pages for i in p]
    omitted = sim.omitted_last_listing
    assert listed == sorted(set(listed))  # each once, in uuid order
    assert set(listed) | omitted == truth and not set(listed) & omitted
    assert sim.counters["omitted"] == len(omitted)
    # the next, quiet, listing has them all
    with sim.quiescent():
        again = {i.uuid for i in full_listing(sim, limit)}
        assert sim.omitted_last_listing == set()
    assert again == truth


def test_omissions_happen_at_about_the_rate():
    sim = SimCloud(40, 1500, seed=1, faults=Faults(omit=0.05))
    total = 0
    for _ in range(4):
        listed = full_listing(sim, 500)
        assert len(listed) + len(sim.omitted_last_listing) == 1500
        total += len(sim.omitted_last_listing)
    assert 200 <= total <= 400  # 4 listings x 1500 x 5 %


def test_a_page_asked_twice_gives_the_same_answer():
    sim = SimCloud(4, 100, seed=2, faults=Faults(omit=0.3))
    first = sim.list_servers(limit=20)
    second = sim.list_servers(limit=20, marker=first[-1].uuid)
    assert sim.list_servers(limit=20, marker=first[-1].uuid) == second


# ---------------------------------------------------------------------------
# Minimal records for a down cell
# ---------------------------------------------------------------------------


def test_a_down_cell_lists_its_servers_as_minimal_records():
    sim = SimCloud(8, 200, seed=3, faults=Faults(down_cell=1.0, cells=4, empty_az=True))
    sim.step(30)
    truth = sim.truth().instances
    listed = full_listing(sim, 33)
    down = sim.down_cell_last_listing
    assert down is not None and 0 <= down < 4
    expect = {u for u, i in truth.items() if sim.cell_of(i.host, u) == down}
    assert expect and expect != set(truth)
    assert sim.minimal_last_listing == expect
    assert [x.uuid for x in listed] == sorted(truth)
    for x in listed:
        if x.uuid in expect:
            assert isinstance(x, PartialInstance)
            assert x.status == "UNKNOWN" and x.project_id == truth[x.uuid].project_id and x.key == x.uuid
        else:
            assert isinstance(x, Instance)
            assert attrs.evolve(x, availability_zone=truth[x.uuid].availability_zone) == truth[x.uuid]
    assert sim.counters["minimal"] == len(expect)
    with sim.quiescent():
        assert all(isinstance(x, Instance) for x in full_listing(sim))
        assert sim.minimal_last_listing == set() and sim.down_cell_last_listing is None


def test_down_cells_come_and_go_between_listings():
    sim = SimCloud(8, 100, seed=4, faults=Faults(down_cell=0.5))
    downs = []
    for _ in range(40):
        full_listing(sim)
        downs.append(sim.down_cell_last_listing)
        assert bool(sim.minimal_last_listing) == (downs[-1] is not None)
    assert None in downs and len(set(downs)) > 2


def test_without_listing_faults_every_record_is_full():
    sim = SimCloud(8, 100, seed=4)
    listed = full_listing(sim, 7)
    assert all(isinstance(x, Instance) for x in listed) and len(listed) == 100
    assert sim.minimal_last_listing == set() == sim.omitted_last_listing


# ---------------------------------------------------------------------------
# Operations while a full sync reads
# ---------------------------------------------------------------------------


@FAST
@given(
    seed=st.integers(0, 10_000),
    limit=st.integers(1, 40),
    ops=st.integers(1, 6),
    weights=st.sampled_from([None, {"boot": 60, "delete": 60}]),
)
def test_paging_never_skips_or_repeats_a_server_while_operations_run_between_pages(seed, limit, ops, weights):
    sim = SimCloud(5, 60, seed=seed, weights=weights)
    calls = []
    sim.during_listing = lambda: calls.append(sim.step(ops))
    before = set(sim.truth().instances)
    sim.list_services()
    sim.list_nodes()
    assert len(calls) == 4  # before and after each
    pages: list[list] = []
    marker = None
    while True:
        n = len(calls)
        page = sim.list_servers(limit=limit, marker=marker)
        assert len(calls) == n + 1, "the hook runs before each page"
        pages.append(page)
        if len(page) < limit:
            break
        marker = page[-1].uuid
    after = set(sim.truth().instances)
    listed = [i.uuid for p in pages for i in p]
    assert listed == sorted(set(listed)), "a server was repeated or out of order"
    assert (before & after) <= set(listed), "a server that existed all along was skipped"
    booted = {r.uuid for r in sim.history if r.kind == "boot"}
    assert set(listed) <= before | booted
    assert sim.counters["ops"] >= ops * len(calls) // 2


def test_the_hook_interleaves_operations_with_the_listing():
    sim = SimCloud(6, 120, seed=5)
    emitted: list[list[bytes]] = []
    seen = []

    def hook() -> None:
        emitted.append(sim.step(2))
        seen.append(sim.truth())

    sim.during_listing = hook
    first = sim.list_servers(limit=50)
    second = sim.list_servers(limit=50, marker=first[-1].uuid)
    assert len(emitted) == 2 and all(emitted)
    assert seen[0].instances != seen[1].instances
    # each page is read after the operations the hook ran before it
    for page, truth, marker in ((first, seen[0], ""), (second, seen[1], first[-1].uuid)):
        assert page == [truth.instances[u] for u in sorted(truth.instances) if u > marker][:50]


def test_the_hook_is_not_called_inside_itself_nor_when_quiescent():
    sim = SimCloud(3, 30, seed=1)
    depth = []

    def hook() -> None:
        depth.append(1)
        sim.list_servers(limit=5)  # a hook that reads does not recurse

    sim.during_listing = hook
    sim.list_servers(limit=10)
    assert len(depth) == 1
    with sim.quiescent():
        full_listing(sim, 4)
        sim.list_services()
        assert len(depth) == 1 and sim.during_listing is None
    assert sim.during_listing is hook


# ---------------------------------------------------------------------------
# Availability zone of a shelve-offloaded instance
# ---------------------------------------------------------------------------


def test_shelve_offloaded_zone_is_null_in_notifications_none_in_truth_empty_in_api():
    sim = SimCloud(3, 6, seed=7, faults=Faults(empty_az=True))
    inst = find(sim, lambda i: True)
    msgs = events(sim.shelve(inst.uuid, offload=True))
    end = data(msgs[-1])
    assert msgs[-1]["event_type"] == "instance.shelve_offload.end"
    assert end["availability_zone"] is None and end["host"] is None
    assert sim.instance(inst.uuid).availability_zone is None
    (listed,) = [x for x in full_listing(sim) if x.uuid == inst.uuid]
    assert listed.availability_zone == ""
    first = full_listing(SimCloud(3, 6, seed=7))[0]
    assert first.availability_zone == sim.zone_of(first.host) != ""  # a zone where there is one
    msgs = events(sim.unshelve(inst.uuid))
    back = sim.instance(inst.uuid)
    assert data(msgs[-1])["availability_zone"] == sim.zone_of(back.host) == back.availability_zone
    (listed,) = [x for x in full_listing(sim) if x.uuid == inst.uuid]
    assert listed.availability_zone == back.availability_zone


def test_without_the_quirk_the_api_says_none_like_the_truth():
    sim = SimCloud(3, 6, seed=7)
    inst = find(sim, lambda i: True)
    sim.shelve(inst.uuid, offload=True)
    (listed,) = [x for x in full_listing(sim) if x.uuid == inst.uuid]
    assert listed.availability_zone is None and listed == sim.instance(inst.uuid)


# ---------------------------------------------------------------------------
# Nova's stale post.end, still there with every quirk on
# ---------------------------------------------------------------------------


@FAST
@given(seed=st.integers(0, 10_000))
def test_live_migration_post_end_is_stale_with_skewed_clocks(seed):
    sim = SimCloud(4, 20, seed=seed, faults=Faults.nova_like(drop=0, duplicate=0, delay=0, reorder=0, redeliver=0))
    inst = find(sim, lambda i: i.vm_state == "active")
    msgs = events(sim.live_migrate(inst.uuid))
    post, dest = msgs[-1], msgs[-2]
    assert post["event_type"] == "instance.live_migration_post.end"
    assert dest["event_type"] == "instance.live_migration_post_dest.end"
    assert data(post)["host"] == inst.host != data(dest)["host"] == sim.instance(inst.uuid).host
    assert updated_at(post) <= updated_at(dest) == sim.instance(inst.uuid).version


# ---------------------------------------------------------------------------
# A full sync through the hook: live records land between its observations
# ---------------------------------------------------------------------------


def test_a_full_sync_reads_while_operations_reach_the_log(sqlite_url: str):
    from eventmodel.log import open_log
    from eventmodel.sources.nova import NovaNormalizer
    from eventmodel.sources.sync import Snapshotter

    log = open_log(sqlite_url)
    normalizer = NovaNormalizer()

    def feed(msgs: list[bytes]) -> None:
        out = [e for raw in msgs for e in normalizer.normalize(raw, recorded_at=0).events]
        log.append(out)

    sim = SimCloud(6, 150, seed=9, faults=Faults.nova_like())
    sim.during_listing = lambda: feed(sim.step(3))
    # batch=1: each observation is appended as it is read (the default batches them to the end)
    syncer = Snapshotter(sim, log, page_size=40, batch=1, clock=lambda: sim.clock_us)
    assert syncer.run_once().ok
    types = [r.envelope.type for batch in log.read() for r in batch]
    first, last = types.index("snapshot.started"), len(types) - 1 - types[::-1].index("snapshot.completed")
    inside = types[first:last]
    observed = [k for k, t in enumerate(inside) if t.endswith(".observed") or t == "instance.seen"]
    live = [k for k, t in enumerate(inside) if t.startswith("instance.") and not t.endswith(".observed")
            and t != "instance.seen"]  # fmt: skip
    assert observed and live
    assert observed[0] < live[-1] and live[0] < observed[-1], "live records interleave with observations"
    assert sim.counters["ops"] >= 3 * (4 + 150 // 40)

    with sim.quiescent():
        ops = sim.counters["ops"]
        end = log.end()
        assert syncer.run_once().ok
        assert sim.counters["ops"] == ops
        assert not sim.omitted_last_listing and not sim.minimal_last_listing
    after = [r.envelope for batch in log.read(start=end) for r in batch]
    assert sum(1 for e in after if e.type == "instance.observed") == sim.instance_count
