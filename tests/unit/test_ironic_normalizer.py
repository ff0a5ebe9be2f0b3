"""Ironic's versioned ``baremetal.*`` notifications through the default normalizer
(issue 17): the corpus (tests/data/ironic-notifications, shapes of ironic 39.0.0)
normalizes with no dead letter and as ADR 0018's table says; versions are Ironic's
``updated_at`` floored to the second; bad values are dead with a reason, never raised."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.clock import to_us
from eventmodel.sources.ironic import HANDLERS, IronicNormalizer, irrelevance
from eventmodel.sources.nova import Outcome
from eventmodel.sources.plugins import CompositeNormalizer
from tests.unit.notification_corpus import RECORDED, Corpus, check, json_values, wire

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Corpus("ironic-notifications")
EXPECTED = CORPUS.expected
NODE = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
TOKEN = b"gAAAAABpcm9uaWMtdG9rZW4tbm90LXJlYWw"

_default = CompositeNormalizer()
_inner, _check = CORPUS.inner, check


def _one(name: str, **data: object) -> Outcome:
    inner = _inner(name)
    inner["payload"]["ironic_object.data"].update(data)
    return _check(_default.normalize(inner, recorded_at=RECORDED))


def _node(name: str, **data: object) -> ev.BaremetalNode:
    out = _one(name, **data)
    assert out.status == "events", out.reason
    return out.events[0].payload.baremetal_node


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_corpus_file_becomes_what_the_table_says_without_a_dead_letter(name: str) -> None:
    CORPUS.check_file(name, (_default, IronicNormalizer()))


def test_a_node_event_carries_the_node_as_ironic_describes_it() -> None:
    out = _one("baremetal-node-provision_set-end")
    env = out.events[0]
    assert env.key == NODE and env.source == "ironic-conductor.conductor-1"
    assert env.payload.change == "provision_set"
    node = env.payload.baremetal_node
    assert node.version == to_us(datetime(2026, 12, 1, 10, 10, 0, tzinfo=UTC))
    assert (node.name, node.power_state, node.provision_state) == ("bm-0042", "power on", "active")
    assert node.instance_uuid == "0e3c8f4a-7d2b-4c19-8e6a-5b1f9d2c7a33"
    assert node.resource_class == "baremetal.gold" and node.maintenance is False and node.maintenance_reason is None
    assert node.extra == {"compute_node_id": 42, "rack": "r12"}
    held = _node("baremetal-node-maintenance_set-end")
    assert held.maintenance is True and held.maintenance_reason == "disk replacement"
    assert _node("baremetal-node-power_state_corrected-success").power_state == "power off"
    gone = _one("baremetal-node-delete-end").events[0].payload
    assert isinstance(gone, ev.BaremetalNodeDeleted) and gone.baremetal_node.uuid == NODE


def test_the_version_is_updated_at_else_created_at_floored_to_the_second() -> None:
    created = _node("baremetal-node-create-end")  # updated_at null on a new node
    assert created.version == to_us(datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC))
    assert _node("baremetal-node-update-end", updated_at="2026-12-01T10:00:07.654321+00:00").version == \
        to_us(datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC))
    assert _node("baremetal-node-update-end", updated_at=None, created_at=None).version == ev.LOWEST_VERSION
    older = _inner("baremetal-node-update-end")  # an older payload version without the newer fields
    data = older["payload"]["ironic_object.data"]
    older["payload"]["ironic_object.data"] = {k: data[k] for k in ("uuid", "power_state", "updated_at")}
    node = _check(_default.normalize(older, recorded_at=RECORDED)).events[0].payload.baremetal_node
    assert (node.maintenance, node.extra, node.provision_state) == (False, {}, None)


@pytest.mark.parametrize(("event_type", "words"), [
    ("baremetal.node.power_set.start", "start of power_set"),
    ("baremetal.node.provision_set.error", "provision_set failed"),
    ("baremetal.node.console_restore.end", "console"),
    ("baremetal.node.inspect.end", "does not model"),
    ("baremetal.port.update.end", "only nodes"), ("baremetal.chassis.create.end", "only nodes"),
    ("baremetal.allocation.create.end", "only nodes"), ("baremetal.portgroup.delete.end", "only nodes"),
])
def test_other_types_are_irrelevant_with_their_reason(event_type: str, words: str) -> None:
    inner = _inner("baremetal-node-update-end")
    inner["event_type"] = event_type
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "irrelevant" and words in out.reason and irrelevance(event_type) == out.reason


def test_baremetal_types_from_another_publisher_are_not_ironics() -> None:
    inner = _inner("baremetal-node-update-end")
    inner["publisher_id"] = "someone-else.host"
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "irrelevant" and "unknown event type" in out.reason


@pytest.mark.parametrize(("data", "words"), [
    ({"uuid": None}, "missing required field 'uuid'"),
    ({"extra": ["a"]}, "'extra' must be an object"),
    ({"maintenance": "yes"}, "'maintenance' must be a boolean"),
    ({"power_state": 1}, "'power_state'"),
    ({"updated_at": "soon"}, "'updated_at' is not a time"),
    ({"extra": {"ratio": float("nan")}}, "JSON cannot carry"),
    ({"extra": {"deep": [{"x": float("inf")}]}}, "JSON cannot carry"),
])
def test_a_node_that_cannot_be_read_is_dead_with_the_field_named(data: dict, words: str) -> None:
    out = _one("baremetal-node-update-end", **data)
    assert out.status == "dead" and words in out.reason, out.reason
    letter = _default.dead_letter(wire(_inner("baremetal-node-update-end")), out)
    assert TOKEN not in letter.raw and b"***" in letter.raw


def test_a_payload_without_ironic_object_data_is_dead() -> None:
    inner = _inner("baremetal-node-update-end")
    inner["payload"] = {"uuid": NODE}
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "dead" and "no ironic_object.data" in out.reason


_FIELDS = sorted(_inner("baremetal-node-update-end")["payload"]["ironic_object.data"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.lists(st.tuples(st.sampled_from(_FIELDS), json_values), min_size=1,
                                                    max_size=4))
def test_any_json_value_in_any_field_never_crashes_the_normalizer(name: str, changes: list) -> None:
    inner = _inner(name)
    for key, value in changes:
        inner["payload"]["ironic_object.data"][key] = value
    _check(_default.normalize(inner, recorded_at=RECORDED))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), json_values)
def test_any_json_value_as_the_payload_never_crashes(name: str, value: object) -> None:
    inner = _inner(name)
    inner["payload"] = value
    _check(_default.normalize(inner, recorded_at=RECORDED))


def test_the_adr_draws_every_handled_type() -> None:
    adr = (ROOT / "ADR" / "0018-storage-and-baremetal.md").read_text()
    for event_type, handler in HANDLERS.items():
        short = event_type.removeprefix("baremetal.node.").rsplit(".", 1)[0]
        assert f"baremetal.node.{short}" in adr and handler.event.TYPE in adr, event_type
