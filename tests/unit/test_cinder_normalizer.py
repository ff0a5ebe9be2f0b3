"""Cinder's unversioned notifications through the default normalizer (issue 17): the
corpus (tests/data/cinder-notifications, shapes of cinder 29.0.0) and Watcher's own
Cinder files normalize with no dead letter and as ADR 0018's table says; every
``volume.*`` type Cinder emits is decided; bad values are dead with a reason, never
raised; dead letters keep no credential."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.clock import parse_time, to_us
from eventmodel.sources.cinder import HANDLERS, IRRELEVANT_TYPES, VOLUME_EVENT_TYPES, CinderNormalizer, irrelevance
from eventmodel.sources.nova import Outcome
from eventmodel.sources.plugins import CompositeNormalizer
from tests.unit.notification_corpus import RECORDED, Corpus, check, json_values, wire

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Corpus("cinder-notifications")
WATCHER = ROOT / "tests" / "data" / "watcher-cinder-notifications"
EXPECTED = CORPUS.expected
SECRETS = (b"gAAAAABnZXhhbXBsZS10b2tlbi1ub3QtcmVhbA", b"N0tR3alChapS3cret")

#: every volume.* type of cinder 29.0.0 (fact sheet section 3.2)
CINDER_VOLUME_TYPES = [
    *(f"volume.{a}.{p}" for a in ("create", "manage_existing", "update", "attach", "detach", "resize", "revert",
                                   "delete", "unmanage", "reset_status") for p in ("start", "end")),
    *(f"volume.transfer.{a}.{p}" for a in ("create", "accept", "delete") for p in ("start", "end")),
    "volume.retype", "volume.exists",
]

_default = CompositeNormalizer()
_us = to_us
_inner, _wire, _check = CORPUS.inner, wire, check


def _one(name: str, **payload: object) -> Outcome:
    inner = _inner(name)
    inner["payload"].update(payload)
    return _check(_default.normalize(_wire(inner), recorded_at=RECORDED))


def _volume(name: str, **payload: object) -> ev.Volume:
    out = _one(name, **payload)
    assert out.status == "events", out.reason
    return out.events[0].payload.volume


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_corpus_file_becomes_what_the_table_says_without_a_dead_letter(name: str) -> None:
    CORPUS.check_file(name, (_default, CinderNormalizer()))


def test_a_volume_event_carries_the_volume_as_the_payload_describes_it() -> None:
    out = _one("volume-attach-end")
    env = out.events[0]
    assert env.key == "6f1b1c8e-3c5a-4b7e-9a53-2f4d1b8e7c01" and env.source == "volume.controller-1"
    assert env.payload.change == "attached"
    assert env.occurred_at == parse_time(_inner("volume-attach-end")["timestamp"])  # Cinder's clock
    vol = env.payload.volume
    # the time Cinder sent it (its clock, just after the save), floored to the second as updated_at is stored
    assert vol.version == env.occurred_at // 1_000_000 * 1_000_000 and vol.version > ev.LOWEST_VERSION
    assert vol.host == "storage-1@lvm#lvm-pool" and vol.size_gb == 10 and vol.status == "in-use"
    assert vol.attachments == (ev.VolumeAttachment("0e3c8f4a-7d2b-4c19-8e6a-5b1f9d2c7a33",
                                                   "9b8e2d1c-4f6a-4e3b-a7c5-1d2e3f4a5b6c"),)
    assert vol.metadata == {"purpose": "db", "tier": "gold"}
    assert vol.volume_type_id == "2c0f2b8e-8f3a-4d5b-9e6c-7a1b2c3d4e5f" and vol.volume_type is None
    assert vol.project_id == "4b1e7a6c2d3f4e5a8b9c0d1e2f3a4b5c" and vol.name == "data-1"
    assert vol.created_at == _us(datetime(2026, 12, 1, 9, 58, 2, tzinfo=UTC))  # "…+00:00", parsed
    assert vol.availability_zone == "nova" and vol.snapshot_id is None
    assert vol.multiattach is False and vol.bootable is False


def test_only_attached_rows_that_name_a_server_are_attachments() -> None:
    rows = _inner("volume-attach-end")["payload"]["volume_attachment"]
    row = rows[0]
    mixed = [dict(row, attach_status="attaching"), dict(row, attach_status="detaching"),
             dict(row, attach_status="error_attaching"), dict(row, id="a2", instance_uuid=None),
             dict(row, id="a3", instance_uuid="srv-3")]
    vol = _volume("volume-attach-end", volume_attachment=mixed)
    assert vol.attachments == (ev.VolumeAttachment("srv-3", "a3"),)
    multi = dict(row, volume=dict(row["volume"], multiattach=True))
    assert _volume("volume-attach-end", volume_attachment=[multi]).multiattach is True


def test_the_changes_each_handled_type_reports() -> None:
    assert _volume("volume-detach-end").attachments == ()
    assert _volume("volume-resize-end").size_gb == 20
    retyped = _volume("volume-retype")
    assert retyped.volume_type_id == "7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2910" and retyped.host == "storage-2@ceph#rbd"
    assert _volume("volume-transfer-accept-end").project_id == "9f8e7d6c5b4a49382716a5b4c3d2e1f0"
    image = _volume("volume-create-end-from-image")
    assert image.bootable is True and image.name == "" and image.metadata == {}
    gone = _one("volume-delete-end-unscheduled").events[0].payload
    assert isinstance(gone, ev.VolumeDeleted) and gone.volume.host is None
    changes = {name: _one(name).events[0].payload.change for name, t in EXPECTED.items() if t == "volume.changed"}
    assert changes["volume-manage_existing-end"] == "managed" and changes["volume-retype"] == "retyped"
    assert changes["volume-reset_status-end"] == "reset_status" and changes["volume-revert-end"] == "reverted"


def test_a_pool_report_has_its_reported_at_as_version_and_words_for_no_number() -> None:
    pool = _one("capacity-pool").events[0].payload.pool
    assert pool.name == "storage-1@lvm#lvm-pool" and pool.node == "storage-1@lvm"
    assert pool.version == _us(datetime(2026, 12, 1, 10, 1, 2, 345678, tzinfo=UTC))  # not floored
    assert (pool.total_capacity_gb, pool.free_capacity_gb, pool.allocated_capacity_gb) == (1024.0, 860.5, 150.0)
    assert (pool.provisioned_capacity_gb, pool.virtual_free_gb, pool.unbounded) == (163.0, 3220.5, None)
    assert pool.total_volumes is None
    odd = _one("capacity-pool", total="infinite", free="Unknown", virtual_free=-12.5, allocated="17.25",
               reported_at=None).events[0].payload.pool
    assert (odd.total_capacity_gb, odd.free_capacity_gb, odd.unbounded) == (None, None, "infinite")
    assert (odd.virtual_free_gb, odd.allocated_capacity_gb, odd.version) == (-12.5, 17.25, ev.LOWEST_VERSION)
    assert _one("capacity-pool", total=None).events[0].payload.pool.unbounded == "unknown"


def test_every_volume_type_cinder_emits_is_decided_with_a_reason() -> None:
    assert sorted(CINDER_VOLUME_TYPES) == list(VOLUME_EVENT_TYPES)
    for t in CINDER_VOLUME_TYPES:
        assert t in HANDLERS or IRRELEVANT_TYPES[t], t


@pytest.mark.parametrize(("event_type", "words"), [
    ("snapshot.create.end", "snapshots"), ("snapshot.exists", "snapshots"), ("backup.restore.end", "backups"),
    ("backup.createprogress", "backups"), ("group.create.end", "groups"), ("groups.reset_status.end", "groups"),
    ("group_snapshot.create.end", "group snapshots"), ("groupsnapshots.reset_status.end", "group snapshots"),
    ("group_type.create", "group types"), ("group_type_specs.create", "group types"),
    ("consistencygroup.create.end", "consistency groups"), ("cgsnapshot.create.end", "consistency group"),
    ("volume_type.create", "volume types"), ("volume_type_extra_specs.update", "names only the key"),
    ("volume_type_encryption.create", "encryption"), ("volume_type_project.access.add", "access"),
    ("qos_specs.create", "QoS"), ("image_volume_cache.hit", "cache"), ("scheduler.create_volume", "scheduling"),
    ("capacity.backend", "sum of a backend's pools"), ("capacity.other", "another level"),
    ("volume.frobnicate.end", "does not model"), ("volume.frobnicate.start", "only begun"),
])
def test_every_other_family_is_irrelevant_with_its_reason(event_type: str, words: str) -> None:
    inner = _inner("volume-create-end")
    inner["event_type"] = event_type
    inner["publisher_id"] = "scheduler.controller-1" if event_type.startswith("scheduler.") else "volume.h"
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "irrelevant" and words in out.reason and out.event_type == event_type
    assert irrelevance(event_type) == out.reason


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_a_usage_audit_replay_is_irrelevant_whatever_its_type(event_type: str) -> None:
    inner = _inner("volume-create-end-replayed")
    inner["event_type"] = event_type
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "irrelevant" and "usage-audit replay" in out.reason


def test_a_type_nobody_knows_is_irrelevant_and_nova_still_gets_nova(samples_dir: Path) -> None:
    inner = _inner("volume-create-end")
    inner["event_type"] = "frobnicator.spun"
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    assert out.status == "irrelevant" and "unknown event type" in out.reason
    nova = _check(_default.normalize((samples_dir / "instance-power_off-end.json").read_bytes(), recorded_at=RECORDED))
    assert nova.events[0].type == "instance.state_changed"
    # Nova's own volume.usage (a nova-compute publisher) stays Nova's
    usage = json.loads((samples_dir / "volume-usage.json").read_bytes())
    assert "volume I/O usage" in _check(_default.normalize(usage, recorded_at=RECORDED)).reason


@pytest.mark.parametrize(("name", "payload", "words"), [
    ("volume-create-end", {"volume_id": None}, "missing required field 'volume_id'"),
    ("volume-create-end", {"status": 3}, "'status' must be a non-empty string"),
    ("volume-create-end", {"size": -1}, "'size' must be a non-negative integer"),
    ("volume-create-end", {"size": "ten"}, "'size'"),
    ("volume-create-end", {"metadata": [{"value": "x"}]}, "'metadata' must list {key, value}"),
    ("volume-create-end", {"metadata": [{"key": "k", "value": {"deep": 1}}]}, "'metadata'"),
    ("volume-create-end", {"volume_attachment": {"id": "x"}}, "'volume_attachment' must be a list"),
    ("volume-create-end", {"volume_attachment": ["x"]}, "'volume_attachment' must list objects"),
    ("volume-create-end", {"created_at": "yesterday"}, "'created_at' is not a time"),
    ("volume-create-end", {"host": 7}, "field 'host'"),
    ("capacity-pool", {"name_to_id": ""}, "'name_to_id'"),
    ("capacity-pool", {"free": "lots"}, "'free' must be a number, 'infinite' or 'unknown'"),
    ("capacity-pool", {"total": True}, "'total'"),
    ("capacity-pool", {"reported_at": 12}, "'reported_at'"),
])
def test_a_payload_that_cannot_be_read_is_dead_with_the_field_named(name: str, payload: dict, words: str) -> None:
    out = _one(name, **payload)
    assert out.status == "dead" and words in out.reason, out.reason
    assert out.reason.startswith(out.event_type + ":")


def test_a_dead_cinder_letter_keeps_no_credential() -> None:
    inner = _inner("volume-attach-end")
    inner["payload"]["size"] = "ten"
    raw = _wire(inner)
    assert all(s in raw for s in SECRETS)  # the corpus carries them: the test means something
    out = _default.normalize(raw, recorded_at=RECORDED)
    assert out.status == "dead"
    letter = _default.dead_letter(raw, out)
    assert not any(s in letter.raw for s in SECRETS)
    kept = json.loads(json.loads(letter.raw)["oslo.message"])
    row = kept["payload"]["volume_attachment"][0]
    assert row["connection_info"] == "***" and row["volume"]["provider_auth"] == "***"
    assert kept["_context_auth_token"] == "***"
    assert kept["payload"]["volume_id"] == inner["payload"]["volume_id"]  # the rest stays readable
    assert kept["payload"]["volume_attachment"][0]["instance_uuid"] == "0e3c8f4a-7d2b-4c19-8e6a-5b1f9d2c7a33"


WATCHER_EXPECTED = {
    "capacity.json": "pool.changed", "scenario_1_capacity.json": "pool.changed",
    "scenario_1_capacity_node_notfound.json": "pool.changed", "scenario_1_capacity_pool_notfound.json": "pool.changed",
    "scenario_1_volume-create.json": "volume.changed", "scenario_1_bootable-volume-create.json": "volume.changed",
    "scenario_1_error-volume-create.json": "volume.changed", "scenario_1_volume-create_pool_notfound.json": "volume.changed",
    "scenario_1_volume-update.json": "volume.changed", "scenario_1_volume-attach.json": "volume.changed",
    "scenario_1_volume-detach.json": "volume.changed", "scenario_1_volume-resize.json": "volume.changed",
    "scenario_1_volume-delete.json": "volume.deleted",
}


def test_watchers_own_cinder_files_normalize_without_a_dead_letter() -> None:
    assert sorted(p.name for p in WATCHER.glob("*.json")) == sorted(WATCHER_EXPECTED)
    got = {}
    for name in WATCHER_EXPECTED:
        out = _check(_default.normalize((WATCHER / name).read_bytes(), recorded_at=RECORDED))
        assert out.status == "events", f"{name}: {out.reason}"
        got[name] = out.events[0].type
    assert got == WATCHER_EXPECTED
    vol = _default.normalize((WATCHER / "scenario_1_volume-attach.json").read_bytes(),
                             recorded_at=RECORDED).events[0].payload.volume
    assert vol.size_gb == 40 and vol.attachments == (ev.VolumeAttachment("server", "attachment"),)
    assert vol.metadata == {"readonly": "False", "attached_mode": "rw"} and vol.snapshot_id is None
    error = _default.normalize((WATCHER / "scenario_1_error-volume-create.json").read_bytes(),
                               recorded_at=RECORDED).events[0].payload.volume
    assert error.host is None and error.volume_type_id is None and error.status == "error"


_FIELDS = sorted({*_inner("volume-attach-end")["payload"], *_inner("capacity-pool")["payload"], "glance_metadata"})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["volume-attach-end", "volume-delete-end", "capacity-pool", "volume-retype"]),
       st.lists(st.tuples(st.sampled_from(_FIELDS), json_values), min_size=1, max_size=4))
def test_any_json_value_in_any_field_never_crashes_the_normalizer(name: str, changes: list) -> None:
    inner = _inner(name)
    for key, value in changes:
        inner["payload"][key] = value
    _check(_default.normalize(copy.deepcopy(inner), recorded_at=RECORDED))
    _check(_default.normalize(_wire(inner), recorded_at=RECORDED))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), json_values, st.sampled_from(["payload", "volume_attachment", "metadata"]))
def test_any_json_value_in_place_of_a_payload_or_its_lists_never_crashes(name: str, value: object, where: str) -> None:
    inner = _inner(name)
    if where == "payload":
        inner["payload"] = value
    else:
        inner["payload"][where] = [value]
    _check(_default.normalize(inner, recorded_at=RECORDED))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["volume.", "capacity.", "snapshot.", "scheduler.", "baremetal.node.", "baremetal.", "", "x."]),
       st.text(max_size=24), st.sampled_from(["volume.", "capacity.", "ironic-", "nova-", "scheduler.", ""]),
       st.text(min_size=1, max_size=12), st.sampled_from(["volume-attach-end", "capacity-pool"]))
def test_any_event_type_from_any_publisher_is_routed_without_a_crash(
        family: str, rest: str, service: str, host: str, name: str) -> None:
    inner = _inner(name)
    inner["event_type"], inner["publisher_id"] = family + rest or "x", service + host
    out = _check(_default.normalize(inner, recorded_at=RECORDED))
    if out.status == "irrelevant":
        assert out.event_type == inner["event_type"]


def test_the_adr_draws_every_handled_type() -> None:
    adr = (ROOT / "ADR" / "0018-storage-and-baremetal.md").read_text()
    for event_type, handler in HANDLERS.items():
        short = event_type.removeprefix("volume.")
        assert short in adr and handler.event.TYPE in adr, event_type


def test_notifications_after_a_syncs_read_decide_by_cinders_own_times() -> None:
    """ADR 0018: a volume record from a notification has the time Cinder sent it as its
    version, so a change notified after a sync's read (at ``updated_at``) applies, and a
    late copy of a change older than the read does not."""
    from eventmodel.testing import records_of
    from projections.fold import fold
    from projections.model import ClusterModel
    from projections.state import ClusterState

    attach = _one("volume-attach-end").events[0].payload
    delete = _one("volume-delete-end").events[0].payload
    read = attrs.evolve(_one("volume-create-end").events[0].payload.volume, status="available",
                        volume_type="standard", bootable=True)

    def after(version: int, *live: object) -> dict[str, object]:
        recs = records_of([ev.SnapshotStarted("s", ev.STORAGE_KINDS, 1),
                           ev.VolumeObserved("s", attrs.evolve(read, version=version)),
                           ev.SnapshotCompleted("s", {ev.VOLUME: 1}), *live])
        return dict(ClusterModel(fold(ClusterState.empty(), recs)).volumes())

    assert attach.volume.version < delete.volume.version
    before_attach = attach.volume.version - 1_000_000
    got = after(before_attach, attach)
    assert got[read.uuid].status == "in-use"
    # what the notification does not say is kept: the type's name, the bootable flag
    assert (got[read.uuid].volume_type, got[read.uuid].bootable) == ("standard", True)
    assert after(before_attach, attach, delete) == {}
    later = delete.volume.version + 1_000_000  # the sync read a newer state: both copies are stale
    assert after(later, attach, delete)[read.uuid].status == "available"
