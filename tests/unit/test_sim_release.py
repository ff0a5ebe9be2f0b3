"""What a sync's follow-up rounds need of the simulated cloud: held notifications
released a few at a time without operations (``SimCloud.release``), and one server read
by uuid as Nova's show server answers (``SimCloud.get_server``)."""

from __future__ import annotations

import attrs
import pytest

from eventmodel.events import Instance
from eventmodel.sim import Faults, PartialInstance, SimCloud
from eventmodel.sim.notifications import unwrap


def ids(msgs: list[bytes]) -> list[str]:
    return [unwrap(m)["message_id"] for m in msgs]


def held_back(seed: int = 1, ops: int = 20) -> tuple[SimCloud, list[bytes]]:
    """A sim whose every notification was delayed (none goes out: nothing is emitted
    after them), and the notifications the same operations send without faults."""
    clean = SimCloud(5, 40, seed=seed).step(ops)
    sim = SimCloud(5, 40, seed=seed, faults=Faults(delay=1.0, max_delay=1000))
    assert sim.step(ops) == []
    assert sim.held == len(clean) > 10
    return sim, clean


# ---------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------


def test_release_gives_the_held_notifications_in_the_order_they_were_held():
    sim, clean = held_back()
    n = len(clean)
    ops, history = sim.counters["ops"], len(sim.history)
    assert sim.release(3) == clean[:3]
    assert sim.held == n - 3
    assert sim.release(1) == clean[3:4]
    assert sim.release(0) == [] and sim.held == n - 4
    assert sim.release(5) == clean[4:9]
    assert sim.release() == clean[9:]  # None: all that is left
    assert sim.held == 0 and sim.release() == [] and sim.release(3) == []
    # no operation ran; every notification was emitted once
    assert sim.counters["ops"] == ops and len(sim.history) == history
    assert sim.counters["emitted"] == sim.counters["notifications"] == n


def test_release_of_more_than_held_gives_what_there_is():
    sim, clean = held_back(seed=2, ops=5)
    assert sim.release(len(clean) + 100) == clean
    assert sim.held == 0


def test_release_none_is_flush():
    a, clean = held_back(seed=3)
    b, _ = held_back(seed=3)
    assert a.release(None) == b.flush() == clean
    assert a.counters == b.counters


def test_release_refuses_a_negative_count():
    sim, _ = held_back(seed=4, ops=3)
    with pytest.raises(ValueError):
        sim.release(-1)


def test_released_and_delivered_notifications_together_are_each_delivered_once():
    """Partial releases between operations: every notification reaches the bus once
    (delay only: no drop, no duplicate), and release never runs an operation."""
    sim = SimCloud(6, 60, seed=5, faults=Faults(delay=0.5, max_delay=8, reorder=0.2))
    clean = SimCloud(6, 60, seed=5).step(60)
    out: list[bytes] = []
    for _ in range(12):
        out += sim.step(5)
        ops = sim.counters["ops"]
        out += sim.release(2)
        assert sim.counters["ops"] == ops
    out += sim.release()
    assert sim.held == 0
    assert sorted(ids(out)) == sorted(ids(clean))


def test_release_feeds_a_listing_hook():
    """The use it is for: a backlog delivered while a sync reads, without new operations."""
    sim, clean = held_back(seed=6)
    fed: list[bytes] = []
    sim.during_listing = lambda: fed.extend(sim.release(3))
    before = sim.truth()
    ops = sim.counters["ops"]
    sim.list_services()  # the hook runs before and after
    assert fed == clean[:6]
    sim.get_server(next(iter(before.instances)))  # and before a read by uuid
    assert fed == clean[:9]
    after = sim.truth()
    assert sim.counters["ops"] == ops and after.time_us == before.time_us
    assert (after.instances, after.services, after.aggregates) == (before.instances, before.services, before.aggregates)


# ---------------------------------------------------------------------------
# get_server
# ---------------------------------------------------------------------------


def test_get_server_gives_the_instance_as_it_is_now():
    sim = SimCloud(5, 30, seed=7)
    sim.step(40)
    truth = sim.truth().instances
    for u, inst in truth.items():
        assert sim.get_server(u) == inst
    u = sorted(truth)[0]
    sim.lock(u, "audit")
    got = sim.get_server(u)
    assert isinstance(got, Instance) and got.locked and got.locked_reason == "audit"
    assert got == sim.instance(u)
    assert sim.counters["server_gets"] == len(truth) + 1


def test_get_server_of_a_deleted_or_unknown_server_is_none():
    sim = SimCloud(5, 30, seed=8)
    u = sorted(sim.truth().instances)[3]
    assert sim.get_server(u) is not None
    sim.delete(u)
    assert sim.get_server(u) is None
    assert sim.get_server("00000000-0000-0000-0000-000000000000") is None


def test_get_server_is_never_omitted():
    sim = SimCloud(5, 30, seed=9, faults=Faults(omit=1.0))
    assert sim.list_servers() == [] and len(sim.omitted_last_listing) == 30
    for u, inst in sim.truth().instances.items():
        assert sim.get_server(u) == inst


def test_get_server_shows_no_zone_as_empty_when_the_api_does():
    sim = SimCloud(5, 30, seed=10, faults=Faults(empty_az=True))
    u = next(u for u, i in sorted(sim.truth().instances.items()) if i.vm_state == "active")
    sim.shelve(u, offload=True)
    assert sim.instance(u).availability_zone is None
    got = sim.get_server(u)
    assert isinstance(got, Instance) and got.availability_zone == ""
    assert attrs.evolve(got, availability_zone=None) == sim.instance(u)
    sim.faults = Faults()
    assert sim.get_server(u) == sim.instance(u)


def test_get_server_in_the_down_cell_of_the_current_listing_is_minimal():
    sim = SimCloud(8, 120, seed=11, faults=Faults(down_cell=1.0, cells=4))
    sim.step(20)
    sim.list_servers()
    down = sim.down_cell_last_listing
    assert down is not None
    truth = sim.truth().instances
    minimal = {u for u, i in truth.items() if sim.cell_of(i.host, u) == down}
    assert minimal and minimal != set(truth)
    assert sim.minimal_last_listing == minimal
    counted = sim.counters["minimal"]
    for u, inst in truth.items():
        got = sim.get_server(u)
        if u in minimal:
            assert got == PartialInstance(u, "UNKNOWN", inst.project_id)
        else:
            assert got == inst
    # reads by uuid are not listings: the listing's record of what it did stays
    assert sim.counters["minimal"] == counted and sim.minimal_last_listing == minimal
    # a quiescent block sees every server whole, before any new listing too
    with sim.quiescent():
        assert all(sim.get_server(u) == inst for u, inst in truth.items())
