"""Nova's value rules hold alike on both paths (ADR 0004): a notification through the
normalizer and the same values read by the full sync's reader give the same version,
zone and maps, for any Nova-like value; the version is the source's time floored to the
second, ``updated_at`` else ``created_at`` else the lowest."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.clock import parse_time
from eventmodel.sources.nova import NovaNormalizer
from eventmodel.sources.nova import values as v
from eventmodel.sources.openstack import aggregate_from_api, server_to_instance, service_from_api

SECOND = 1_000_000
RECORDED = 1_795_000_000_000_000
_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "nova-notification-samples"
SERVER = {
    "id": "11111111-2222-3333-4444-555555555555", "name": "vm1", "status": "ACTIVE",
    "OS-EXT-SRV-ATTR:host": "cmp1", "OS-EXT-SRV-ATTR:hypervisor_hostname": "cmp1.example",
    "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1, "tenant_id": "p1", "user_id": "u1",
    "flavor": {"original_name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 0, "swap": 0},
}


def _sample(name: str) -> dict:
    return json.loads((_SAMPLES / name).read_bytes())


INSTANCE_UPDATE = _sample("instance-update.json")
SERVICE_UPDATE = _sample("service-update.json")
AGGREGATE_METADATA = _sample("aggregate-update_metadata-end.json")


def _normalized(sample: dict, **fields: Any) -> Any:
    msg = copy.deepcopy(sample)
    msg["payload"]["nova_object.data"].update(fields)
    out = NovaNormalizer().normalize(msg, recorded_at=RECORDED)
    assert out.status == "events", out.reason
    return ev.entity_of(out.events[0].payload)


#: times as Nova writes them: its notifications (``…T…Z``, naive with µs), its API
_FORMS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f+00:00")
times = st.builds(
    lambda dt, form: dt.strftime(form),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)), st.sampled_from(_FORMS))
#: a time field as either path may carry it: absent (null or '') or a time
maybe_times = st.one_of(st.none(), st.just(""), times)
zones = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=12))
map_values = st.one_of(st.text(max_size=8), st.none(), st.integers(), st.booleans(),
                       st.floats(allow_nan=False, allow_infinity=False))
maps = st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8), map_values, max_size=6))


def _expected_version(*stamps: str | None) -> int:
    """The rule, stated independently: the first time given, floored to the second."""
    for stamp in stamps:
        if stamp:
            us = parse_time(stamp)
            return us - us % SECOND
    return ev.LOWEST_VERSION


@settings(max_examples=150, deadline=None)
@given(updated=maybe_times, created=maybe_times, zone=zones)
def test_an_instance_reads_alike_from_a_notification_and_from_the_api(
        updated: str | None, created: str | None, zone: str | None) -> None:
    notified = _normalized(INSTANCE_UPDATE, updated_at=updated, created_at=created, availability_zone=zone)
    synced = server_to_instance({**SERVER, "updated": updated, "created": created,
                                 "OS-EXT-AZ:availability_zone": zone})
    assert notified.version == synced.version == _expected_version(updated, created)
    assert notified.created_at == synced.created_at == (parse_time(created) if created else None)
    assert notified.availability_zone == synced.availability_zone == (zone or None)


@settings(max_examples=100, deadline=None)
@given(updated=maybe_times, created=maybe_times, zone=zones)
def test_a_service_reads_alike_from_a_notification_and_from_the_api(
        updated: str | None, created: str | None, zone: str | None) -> None:
    notified = _normalized(SERVICE_UPDATE, updated_at=updated, created_at=created, last_seen_up=None,
                           availability_zone=zone)
    synced = service_from_api({"host": "cmp1", "binary": "nova-compute", "id": 1, "updated_at": updated,
                               "created_at": created, "zone": zone, "state": "up", "status": "enabled"})
    assert notified.version == synced.version == _expected_version(updated, created)
    assert notified.availability_zone == synced.availability_zone == (zone or None)


@settings(max_examples=150, deadline=None)
@given(metadata=maps, zone=zones)
def test_an_aggregate_reads_alike_from_a_notification_and_from_the_api(metadata: dict | None,
                                                                       zone: str | None) -> None:
    metadata = None if metadata is None else {**metadata, "availability_zone": zone}
    notified = _normalized(AGGREGATE_METADATA, metadata=metadata)
    synced = aggregate_from_api({"id": 1, "uuid": "agg-1", "name": "a", "hosts": [], "metadata": metadata,
                                 "availability_zone": zone if metadata is not None else None})
    assert notified.metadata == synced.metadata
    assert all(type(x) is str for x in synced.metadata.values())
    assert notified.availability_zone == synced.availability_zone
    assert synced.availability_zone == (zone or None if metadata is not None else None)
    assert notified.version == synced.version == ev.LOWEST_VERSION


@pytest.mark.parametrize("bad", [["x"], {"x": ["y"]}, {"x": {"y": "z"}}, "k=v"])
def test_a_map_that_is_not_of_strings_is_refused_on_both_paths(bad: object) -> None:
    msg = copy.deepcopy(AGGREGATE_METADATA)
    msg["payload"]["nova_object.data"]["metadata"] = bad
    out = NovaNormalizer().normalize(msg, recorded_at=RECORDED)
    assert out.status == "dead" and "'metadata'" in out.reason
    with pytest.raises(v.Invalid, match="'metadata'"):
        aggregate_from_api({"id": 1, "uuid": "agg-1", "metadata": bad})


@given(st.integers(min_value=0, max_value=2**62), st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)))
def test_the_version_is_the_first_time_floored_to_the_second(first: int, second: int | None) -> None:
    version = v.version(first, second)
    assert version % SECOND == 0 and version <= first < version + SECOND
    assert v.version(None, first) == version  # created_at stands in for a missing updated_at
    assert v.version(None, None) == ev.LOWEST_VERSION


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_version_of_reads_the_fields_in_order(dt: datetime) -> None:
    text = dt.isoformat()
    us = parse_time(text)
    assert v.version_of({"updated_at": None, "created_at": text}, v.INSTANCE_VERSION_FIELDS) == us - us % SECOND
    assert v.version_of({"last_seen_up": text}, v.SERVICE_VERSION_FIELDS) == us - us % SECOND
    assert v.version_of({"last_seen_up": text}, v.INSTANCE_VERSION_FIELDS) == ev.LOWEST_VERSION


@pytest.mark.parametrize("stamp", ["yesterday", 5, ["2026-01-01"]])
def test_a_time_that_is_not_one_is_refused_with_the_field_named(stamp: object) -> None:
    with pytest.raises(v.Invalid, match="'updated_at'"):
        v.version_of({"updated_at": stamp}, v.INSTANCE_VERSION_FIELDS)
