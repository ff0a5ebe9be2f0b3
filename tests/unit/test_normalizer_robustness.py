"""The normalizer never raises: malformed envelopes and payloads become dead (with a reason)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel.codec import Codec
from eventmodel.sources.nova import NovaNormalizer, Outcome

RECORDED = 1_795_000_000_000_000
STATUSES = {"events", "irrelevant", "dead"}

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)

_normalizer = NovaNormalizer()
_codec = Codec()


def _check(out: Outcome) -> Outcome:
    assert isinstance(out, Outcome)
    assert out.status in STATUSES
    if out.status == "dead":
        assert out.reason and out.events == ()
    elif out.status == "irrelevant":
        assert out.reason and out.events == ()
    else:
        assert out.events and not out.reason
        for env in out.events:  # whatever becomes an event can be stored and read back
            assert _codec.decode(_codec.encode(env)) == env
    return out


def _normalize(raw: object) -> Outcome:
    return _check(_normalizer.normalize(raw, recorded_at=RECORDED))  # type: ignore[arg-type]


def _wire(inner: object) -> bytes:
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


@pytest.fixture(scope="module")
def samples(samples_dir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_bytes()) for p in sorted(samples_dir.glob("*.json"))}


RELEVANT = [
    "instance-update.json",
    "instance-create-end.json",
    "instance-live_migration_post_dest-end.json",
    "instance-resize_finish-end.json",
    "instance-shelve_offload-end.json",
    "instance-lock-with-reason.json",
    "instance-delete-end.json",
    "service-update.json",
    "service-delete.json",
]


@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _normalize(raw)


@given(st.text(max_size=300))
def test_random_text(raw: str) -> None:
    _normalize(raw)


@given(json_values)
def test_any_json_value(value: object) -> None:
    _normalize(value if isinstance(value, dict) else json.dumps(value))
    _normalize(_wire(value))


@given(st.one_of(json_values, st.just("2.1"), st.just(2.0)), json_values)
def test_envelopes_of_any_shape(version: object, message: object) -> None:
    out = _normalize({"oslo.version": version, "oslo.message": message})
    if version != "2.0":
        assert out.status == "dead" and "oslo.version" in out.reason
    out = _normalize(json.dumps({"oslo.version": "2.0", "oslo.message": message}))
    if not isinstance(message, (str, dict)):
        assert out.status == "dead"


def test_wrong_oslo_version(samples: dict[str, dict]) -> None:
    inner = json.dumps(samples["instance-update.json"])
    for version in ("1.0", "3.0", None, 2):
        out = _normalize({"oslo.version": version, "oslo.message": inner})
        assert out.status == "dead" and "oslo.version" in out.reason


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(st.sampled_from(RELEVANT), st.data())
def test_truncated_json(samples: dict[str, dict], name: str, data: st.DataObject) -> None:
    inner = dict(samples[name], message_id="m-1", timestamp="2026-11-25 15:31:37.996213")
    raw = _wire(inner)
    cut = data.draw(st.integers(0, len(raw) - 1))
    out = _normalize(raw[:cut])
    assert out.status == "dead"
    assert _normalize(raw).status == "events"


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested dict."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    return out


def _set(obj: dict, path: tuple, value: object, delete: bool = False) -> None:
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=400)
@given(st.sampled_from(RELEVANT), st.data())
def test_mutated_payloads(samples: dict[str, dict], name: str, data: st.DataObject) -> None:
    """Drop or replace any key anywhere in a real sample: never raises."""
    sample = copy.deepcopy(samples[name])
    path = data.draw(st.sampled_from(_paths(sample)))
    if data.draw(st.booleans()):
        _set(sample, path, None, delete=True)
    else:
        _set(sample, path, data.draw(json_values))
    _normalize(sample)
    _normalize(_wire(sample))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(st.sampled_from(RELEVANT), json_values)
def test_non_dict_payloads(samples: dict[str, dict], name: str, payload: object) -> None:
    sample = dict(samples[name], payload=payload)
    out = _normalize(sample)
    if not isinstance(payload, dict) or not isinstance(payload.get("nova_object.data"), dict):
        assert out.status == "dead" and out.event_type == samples[name]["event_type"]


def test_missing_nova_object_keys(samples: dict[str, dict]) -> None:
    sample = copy.deepcopy(samples["instance-update.json"])
    del sample["payload"]["nova_object.data"]
    out = _normalize(sample)
    assert out.status == "dead" and "nova_object.data" in out.reason and "instance.update" in out.reason
    # the object's name and version are only informative
    sample = copy.deepcopy(samples["instance-update.json"])
    for key in ("nova_object.name", "nova_object.version", "nova_object.namespace"):
        del sample["payload"][key]
    assert _normalize(sample).status == "events"
    # a flavor given without its nova_object wrapper is still read
    sample = copy.deepcopy(samples["instance-update.json"])
    flavor = sample["payload"]["nova_object.data"]["flavor"]
    sample["payload"]["nova_object.data"]["flavor"] = flavor["nova_object.data"]
    assert _normalize(sample).events[0].payload.instance.flavor.vcpus == flavor["nova_object.data"]["vcpus"]


REQUIRED_INSTANCE = [
    (("uuid",), "'uuid'"),
    (("state",), "'state'"),
    (("flavor",), "'flavor'"),
    (("flavor", "nova_object.data", "vcpus"), "'vcpus'"),
    (("flavor", "nova_object.data", "memory_mb"), "'memory_mb'"),
    (("flavor", "nova_object.data", "root_gb"), "'root_gb'"),
    (("flavor", "nova_object.data", "ephemeral_gb"), "'ephemeral_gb'"),
]


@pytest.mark.parametrize("name", [n for n in RELEVANT if n.startswith("instance")])
@pytest.mark.parametrize(("path", "named"), REQUIRED_INSTANCE)
def test_missing_required_instance_field(samples: dict[str, dict], name: str, path: tuple, named: str) -> None:
    sample = copy.deepcopy(samples[name])
    _set(sample["payload"]["nova_object.data"], path, None, delete=True)
    out = _normalize(_wire(dict(sample, message_id="m", timestamp="2026-11-25 15:31:37.996213")))
    assert out.status == "dead"
    assert named in out.reason and sample["event_type"] in out.reason


@pytest.mark.parametrize("name", ["service-update.json", "service-create.json", "service-delete.json"])
@pytest.mark.parametrize("field", ["host", "binary"])
def test_missing_required_service_field(samples: dict[str, dict], name: str, field: str) -> None:
    sample = copy.deepcopy(samples[name])
    del sample["payload"]["nova_object.data"][field]
    out = _normalize(sample)
    assert out.status == "dead" and f"'{field}'" in out.reason and sample["event_type"] in out.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("uuid", 12), ("host", 3), ("vcpus", "2"), ("memory_mb", -1), ("locked", "yes"), ("updated_at", "yesterday"), ("updated_at", 5)],
)
def test_mistyped_fields_are_dead(samples: dict[str, dict], field: str, value: object) -> None:
    sample = copy.deepcopy(samples["instance-update.json"])
    data = sample["payload"]["nova_object.data"]
    (data["flavor"]["nova_object.data"] if field in ("vcpus", "memory_mb") else data)[field] = value
    out = _normalize(sample)
    assert out.status == "dead" and f"'{field}'" in out.reason


def test_envelope_field_errors(samples: dict[str, dict]) -> None:
    base = samples["instance-update.json"]
    cases = {
        "event_type": dict(base, event_type=None),
        "publisher_id": {k: v for k, v in base.items() if k != "publisher_id"},
        "message_id": dict(base, message_id=7),
        "timestamp": dict(base, timestamp="not a time"),
    }
    for field, msg in cases.items():
        out = _normalize(_wire(msg))
        assert out.status == "dead" and field in out.reason, (field, out)
    assert _normalize(_wire(dict(base, timestamp=12))).status == "dead"


def test_old_instance_update_payload_1x(samples: dict[str, dict]) -> None:
    """InstanceUpdatePayload 1.x: fields 2.x dropped are ignored, fields it lacked default."""
    sample = copy.deepcopy(samples["instance-update.json"])
    payload = sample["payload"]
    payload["nova_object.version"] = "1.3"
    data = payload["nova_object.data"]
    data["bandwidth"] = [{"nova_object.data": {"network_name": "private", "in_bytes": 0, "out_bytes": 0}}]
    data["some_future_field"] = {"x": [1, 2, 3]}
    for newer in ("locked", "locked_reason", "action_initiator_project", "action_initiator_user", "shares",
                  "block_devices", "updated_at", "availability_zone", "power_state", "task_state"):
        data.pop(newer, None)
    data["flavor"]["nova_object.data"].pop("swap")
    data["flavor"]["nova_object.data"].pop("name")
    out = _normalize(sample)
    assert out.status == "events", out.reason
    inst = out.events[0].payload.instance
    assert inst.uuid == data["uuid"] and inst.host == data["host"] and inst.vm_state == data["state"]
    assert (inst.locked, inst.locked_reason, inst.availability_zone, inst.power_state, inst.task_state) == (False, None, None, None, None)
    assert inst.flavor.swap_mb == 0 and inst.flavor.name == data["flavor"]["nova_object.data"]["flavorid"]


def test_huge_strings(samples: dict[str, dict]) -> None:
    sample = copy.deepcopy(samples["instance-update.json"])
    sample["payload"]["nova_object.data"]["display_name"] = "x" * 2_000_000
    out = _normalize(_wire(dict(sample, message_id="m", timestamp="2026-11-25 15:31:37.996213")))
    assert out.status == "events" and len(out.events[0].payload.instance.name) == 2_000_000
    out = _normalize(dict(sample, event_type="y" * 1_000_000))
    assert out.status == "irrelevant"
    out = _normalize(dict(sample, timestamp="9" * 1_000_000))
    assert out.status == "dead" and len(out.reason) < 1000


def test_deep_nesting_does_not_raise() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    _normalize(deep.encode())
    _normalize(_wire({"event_type": "instance.update", "publisher_id": "nova-compute:h", "payload": json.loads("[" * 500 + "]" * 500)}))


def test_unsupported_input_types() -> None:
    for raw in (None, 12, 3.5, ["a"], object(), bytearray(b"{}"), memoryview(b"[]")):
        _normalize(raw)
