"""Every Nova notification sample through the normalizer: bare, and in a real wire envelope."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.clock import parse_time
from eventmodel.codec import Codec
from eventmodel.sources import nova
from eventmodel.sources.nova import NovaNormalizer

RECORDED = 1_795_000_000_123_456
WIRE_TIMESTAMP = "2026-11-25 15:31:37.996213"
SECOND = 1_000_000

#: sample file → (event type, action/method/change) for those that become events;
#: every other sample must be "irrelevant".
EXPECTED: dict[str, tuple[str, str | None]] = {
    "instance-create-start.json": ("instance.updated", "create.start"),
    "instance-create-end.json": ("instance.created", None),
    "instance-update.json": ("instance.updated", "update"),
    "instance-update-tags-action.json": ("instance.updated", "update"),
    "instance-delete-end.json": ("instance.deleted", None),
    "instance-delete-end_compute_down.json": ("instance.deleted", None),
    "instance-delete-end_not_scheduled.json": ("instance.deleted", None),
    "instance-soft_delete-end.json": ("instance.state_changed", "soft_delete"),
    "instance-restore-end.json": ("instance.state_changed", "restore"),
    "instance-power_on-end.json": ("instance.state_changed", "power_on"),
    "instance-power_on_share-end.json": ("instance.state_changed", "power_on"),
    "instance-power_off-end.json": ("instance.state_changed", "power_off"),
    "instance-pause-end.json": ("instance.state_changed", "pause"),
    "instance-unpause-end.json": ("instance.state_changed", "unpause"),
    "instance-suspend-end.json": ("instance.state_changed", "suspend"),
    "instance-resume-end.json": ("instance.state_changed", "resume"),
    "instance-rescue-end.json": ("instance.state_changed", "rescue"),
    "instance-unrescue-end.json": ("instance.state_changed", "unrescue"),
    "instance-shutdown-end.json": ("instance.state_changed", "shutdown"),
    "instance-shelve-end.json": ("instance.state_changed", "shelve"),
    "instance-shelve_offload-end.json": ("instance.state_changed", "shelve_offload"),
    "instance-unshelve-end.json": ("instance.migrated", "unshelve"),
    "instance-lock.json": ("instance.lock_changed", None),
    "instance-lock-with-reason.json": ("instance.lock_changed", None),
    "instance-unlock.json": ("instance.lock_changed", None),
    "instance-live_migration_post_dest-end.json": ("instance.migrated", "live"),
    "instance-live_migration_rollback-end.json": ("instance.updated", "live_migration_rollback"),
    "instance-resize_finish-end.json": ("instance.resized", "resize"),
    "instance-resize_confirm-end.json": ("instance.resized", "resize_confirm"),
    "instance-resize_revert-end.json": ("instance.resized", "resize_revert"),
    "instance-evacuate.json": ("instance.migrated", "evacuate"),
    "instance-rebuild-end.json": ("instance.updated", "rebuild"),
    "service-create.json": ("compute_service.changed", "created"),
    "service-update.json": ("compute_service.changed", "enabled"),
    "service-delete.json": ("compute_service.deleted", None),
    "aggregate-create-end.json": ("aggregate.changed", "created"),
    "aggregate-update_prop-end.json": ("aggregate.changed", "update_prop"),
    "aggregate-update_metadata-end.json": ("aggregate.changed", "update_metadata"),
    "aggregate-add_host-end.json": ("aggregate.changed", "add_host"),
    "aggregate-remove_host-end.json": ("aggregate.changed", "remove_host"),
    "aggregate-delete-end.json": ("aggregate.deleted", None),
}


def _files(samples_dir: Path) -> list[Path]:
    return sorted(samples_dir.glob("*.json"))


def _wire(sample: dict, message_id: str = "5c7e9d2a-3b1f-4e8a-9c6d-0f1e2d3c4b5a",
          timestamp: str = WIRE_TIMESTAMP) -> bytes:
    inner = dict(sample)
    inner.update(
        message_id=message_id,
        timestamp=timestamp,
        _unique_id="f3a6e1b2c4d5e6f7a8b9c0d1e2f3a4b5",
        _context_request_id="req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
        _context_user="fake",
    )
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def _detail(payload: object) -> str | None:
    for name in ("action", "method", "change"):
        value = getattr(payload, name, None)
        if isinstance(value, str):
            return value
    return None


def _check_instance(inst: ev.Instance, data: dict) -> None:
    assert inst.uuid == data["uuid"]
    assert inst.host == data["host"]
    assert inst.node == data["node"]
    assert inst.vm_state == data["state"]
    assert inst.power_state == data["power_state"]
    assert inst.task_state == data["task_state"]
    assert inst.project_id == data["tenant_id"]
    assert inst.user_id == data["user_id"]
    assert inst.name == data["display_name"]
    assert inst.locked == data["locked"]
    assert inst.locked_reason == data["locked_reason"]
    assert inst.availability_zone == data["availability_zone"]
    assert inst.metadata == data["metadata"]
    assert inst.created_at == (parse_time(data["created_at"]) if data["created_at"] else None)
    flavor = data["flavor"]["nova_object.data"]
    assert inst.flavor == ev.Flavor(
        flavor["name"], flavor["vcpus"], flavor["memory_mb"], flavor["root_gb"], flavor["ephemeral_gb"], flavor["swap"],
        flavor.get("extra_specs") or {},
    )
    assert inst.flavor.disk_gb == flavor["root_gb"] + flavor["ephemeral_gb"]


def _check_service(svc: ev.ComputeService, data: dict, now: int | None) -> None:
    assert svc.host == data["host"]
    assert svc.binary == data["binary"]
    assert svc.disabled == data["disabled"]
    assert svc.disabled_reason == data["disabled_reason"]
    assert svc.forced_down == data["forced_down"]
    # Nova's servicegroup rule with the notification's timestamp as now (60 s by default);
    # without a timestamp (a bare sample) or a last_seen_up: not forced_down
    if now is None or not data["last_seen_up"]:
        assert svc.up is (not data["forced_down"])
    else:
        fresh = abs(now - parse_time(data["last_seen_up"])) <= 60 * SECOND
        assert svc.up is (not data["forced_down"] and fresh)
    assert svc.uuid == data["uuid"]
    assert svc.availability_zone == (data.get("availability_zone") or None)
    assert svc.key == f"{data['host']}/{data['binary']}"


def _check_aggregate(agg: ev.Aggregate, data: dict) -> None:
    assert (agg.uuid, agg.id, agg.name) == (data["uuid"], data["id"], data["name"])
    assert agg.hosts == tuple(sorted(data["hosts"]))
    assert agg.metadata == data["metadata"]
    assert agg.availability_zone == data["metadata"].get("availability_zone")
    assert agg.version == ev.LOWEST_VERSION  # AggregatePayload carries no time


def test_there_are_140_samples(samples_dir: Path) -> None:
    assert len(_files(samples_dir)) == 140
    assert set(EXPECTED) <= {p.name for p in _files(samples_dir)}


@pytest.mark.parametrize("wire", [False, True], ids=["bare", "wire"])
def test_every_sample(samples_dir: Path, wire: bool) -> None:
    normalizer = NovaNormalizer()
    codec = Codec()
    seen_irrelevant = 0
    for path in _files(samples_dir):
        sample = json.loads(path.read_bytes())
        raw = _wire(sample) if wire else path.read_bytes()
        out = normalizer.normalize(raw, recorded_at=RECORDED)
        assert out.status != "dead", (path.name, out.reason)
        assert out.event_type == sample["event_type"]
        expected = EXPECTED.get(path.name)
        if expected is None:
            assert out.status == "irrelevant", (path.name, out)
            assert out.reason and out.events == ()
            seen_irrelevant += 1
            continue
        assert out.status == "events", (path.name, out.reason)
        (env,) = out.events
        type_name, detail = expected
        assert env.type == type_name, path.name
        assert type(env.payload) is nova.EVENT_CLASS[sample["event_type"]], path.name  # the table's class
        assert _detail(env.payload) == detail, path.name
        assert env.source == sample["publisher_id"]
        assert env.recorded_at == RECORDED
        assert env.occurred_at == (parse_time(WIRE_TIMESTAMP) if wire else RECORDED)
        data = sample["payload"]["nova_object.data"]
        entity = ev.entity_of(env.payload)
        assert env.key == entity.key
        if isinstance(entity, ev.Instance):
            _check_instance(entity, data)
            # updated_at, else created_at: never the notification's or our time
            when = data["updated_at"] or data["created_at"]
            stamp = parse_time(when) if when else ev.LOWEST_VERSION
            assert entity.version == stamp - stamp % SECOND, path.name
        elif isinstance(entity, ev.Aggregate):
            _check_aggregate(entity, data)
        else:
            _check_service(entity, data, parse_time(WIRE_TIMESTAMP) if wire else None)
            # ServiceStatusPayload has no updated_at: Nova's last heartbeat time
            stamp = parse_time(data["last_seen_up"]) if data["last_seen_up"] else ev.LOWEST_VERSION
            assert entity.version == stamp - stamp % SECOND, path.name
        # what the log would store decodes to the same event
        assert codec.decode(codec.encode(env)) == env
        assert codec.from_dict(codec.to_dict(env)) == env
    assert seen_irrelevant == 140 - len(EXPECTED)


def test_wire_and_bare_agree_and_ids_are_deterministic(samples_dir: Path) -> None:
    n = NovaNormalizer()
    for path in _files(samples_dir):
        sample = json.loads(path.read_bytes())
        a = n.normalize(_wire(sample), recorded_at=RECORDED)
        b = n.normalize(_wire(sample), recorded_at=RECORDED + 5)
        bare = n.normalize(path.read_bytes(), recorded_at=RECORDED)
        assert a.status == b.status == bare.status
        assert [e.type for e in a.events] == [e.type for e in bare.events]
        assert [e.event_id for e in a.events] == [e.event_id for e in b.events]
        for env in a.events:
            assert env.event_id == ev.event_id(sample["publisher_id"], "5c7e9d2a-3b1f-4e8a-9c6d-0f1e2d3c4b5a", 0)
        # bare: the id is derived from the content, the same however the sample is given
        again = n.normalize(json.loads(path.read_bytes()), recorded_at=RECORDED + 7)
        text = n.normalize(path.read_text(), recorded_at=RECORDED)
        assert [e.event_id for e in bare.events] == [e.event_id for e in again.events] == [e.event_id for e in text.events]
        other = n.normalize(_wire(sample, "0e5bfa34-97a1-4f42-bd1b-6cf0c1a0e0a1"), recorded_at=RECORDED)
        if a.events:
            assert other.events[0].event_id != a.events[0].event_id


def test_wire_envelope_as_dict_and_inner_message(samples_dir: Path) -> None:
    n = NovaNormalizer()
    raw = _wire(json.loads((samples_dir / "instance-power_off-end.json").read_bytes()))
    outer = json.loads(raw)
    inner = json.loads(outer["oslo.message"])
    results = [n.normalize(x, recorded_at=RECORDED) for x in (raw, raw.decode(), outer, inner)]
    assert all(r.status == "events" for r in results)
    assert len({r.events for r in results}) == 1


def test_live_migration_post_end_is_the_sources_stale_copy(samples_dir: Path) -> None:
    """post.end (sent by the source after post_dest.end) still names the source host:
    it is irrelevant whatever its updated_at, so no clock skew can move the instance back."""
    n = NovaNormalizer()
    dest = n.normalize((samples_dir / "instance-live_migration_post_dest-end.json").read_bytes(), recorded_at=RECORDED)
    sample = json.loads((samples_dir / "instance-live_migration_post-end.json").read_bytes())
    assert sample["payload"]["nova_object.data"]["host"] == "compute"
    assert dest.events[0].payload.instance.host == "host2"
    sample["payload"]["nova_object.data"]["updated_at"] = "2099-01-01T00:00:00Z"  # a skewed source clock
    post = n.normalize(sample, recorded_at=RECORDED)
    assert post.status == "irrelevant" and "stale" in post.reason and post.events == ()


def test_shelve_offload_clears_host_and_unshelve_places(samples_dir: Path) -> None:
    n = NovaNormalizer()
    off = n.normalize((samples_dir / "instance-shelve_offload-end.json").read_bytes(), recorded_at=RECORDED)
    inst = off.events[0].payload.instance
    assert inst.host is None and inst.node is None and inst.vm_state == "shelved_offloaded"
    on = n.normalize((samples_dir / "instance-unshelve-end.json").read_bytes(), recorded_at=RECORDED)
    assert on.events[0].payload.instance.host == "compute"
    assert on.events[0].payload.source_host is None


def test_resize_finish_carries_the_new_flavor(samples_dir: Path) -> None:
    n = NovaNormalizer()
    prep = json.loads((samples_dir / "instance-resize_prep-end.json").read_bytes())
    new_flavor = prep["payload"]["nova_object.data"]["new_flavor"]["nova_object.data"]
    out = n.normalize((samples_dir / "instance-resize_finish-end.json").read_bytes(), recorded_at=RECORDED)
    flavor = out.events[0].payload.instance.flavor
    assert (flavor.name, flavor.memory_mb, flavor.vcpus) == (new_flavor["name"], new_flavor["memory_mb"], new_flavor["vcpus"])


def test_service_update_change_names(samples_dir: Path) -> None:
    n = NovaNormalizer()
    sample = json.loads((samples_dir / "service-update.json").read_bytes())
    data = sample["payload"]["nova_object.data"]
    for disabled, forced_down, change in [(True, False, "disabled"), (False, True, "forced_down"), (True, True, "forced_down"), (False, False, "enabled")]:
        data.update(disabled=disabled, forced_down=forced_down, disabled_reason="maintenance" if disabled else None)
        out = n.normalize(sample, recorded_at=RECORDED)
        svc = out.events[0].payload.service
        assert (out.events[0].payload.change, svc.disabled, svc.forced_down, svc.up) == (change, disabled, forced_down, not forced_down)
    data["binary"] = "nova-conductor"
    out = n.normalize(sample, recorded_at=RECORDED)
    assert out.status == "irrelevant" and "nova-conductor" in out.reason


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.booleans(), st.booleans())
@settings(max_examples=60, deadline=None)
def test_version_is_updated_at_else_created_at_never_a_clock(
    samples_dir: Path, created: datetime, sent: datetime, null_updated: bool, null_created: bool
) -> None:
    """A new instance's first updates have updated_at null: the version is created_at
    (floored), else the lowest version — whatever the notification's timestamp or ours."""
    sample = json.loads((samples_dir / "instance-update.json").read_bytes())
    data = sample["payload"]["nova_object.data"]
    data["created_at"] = None if null_created else created.isoformat() + "Z"
    data["updated_at"] = None if null_updated else sent.replace(microsecond=0).isoformat() + "Z"
    out = NovaNormalizer().normalize(_wire(sample, timestamp=sent.strftime("%Y-%m-%d %H:%M:%S.%f")),
                                     recorded_at=RECORDED)
    version = out.events[0].payload.instance.version
    if not null_updated:
        stamp = parse_time(data["updated_at"])
    elif not null_created:
        stamp = parse_time(data["created_at"])
    else:
        assert version == ev.LOWEST_VERSION
        return
    assert version == stamp - stamp % SECOND


def test_null_and_empty_availability_zone_are_one_value(samples_dir: Path) -> None:
    n = NovaNormalizer()
    sample = json.loads((samples_dir / "instance-shelve_offload-end.json").read_bytes())
    zones = set()
    for az in (None, ""):
        sample["payload"]["nova_object.data"]["availability_zone"] = az
        zones.add(n.normalize(sample, recorded_at=RECORDED).events[0].payload.instance.availability_zone)
    assert zones == {None}


def test_strings_are_interned(samples_dir: Path) -> None:
    n = NovaNormalizer()
    a = n.normalize((samples_dir / "instance-pause-end.json").read_bytes(), recorded_at=RECORDED).events[0]
    b = n.normalize((samples_dir / "instance-unpause-end.json").read_bytes(), recorded_at=RECORDED).events[0]
    ia, ib = a.payload.instance, b.payload.instance
    assert ia.host is ib.host and ia.node is ib.node and ia.project_id is ib.project_id
    assert ia.flavor is ib.flavor  # one Flavor object per distinct flavor


def test_decision_table_is_documented() -> None:
    """Every handled type is in ADR 0017's table, with the event its handler produces."""
    doc = (Path(__file__).resolve().parents[2] / "ADR" / "0017-nova-decision-table.md").read_text(encoding="utf-8")
    table = doc[doc.index("```"):doc.index("Irrelevant (")]
    for event_type in nova.HANDLERS:
        short = ".".join(event_type.rsplit(".", 2)[-2:])
        rows = [row for row in table.splitlines() if event_type in row or f"/ {short}" in row]
        assert rows, event_type
        assert nova.EVENT_CLASS[event_type].TYPE in rows[0], (event_type, rows[0])
    assert set(nova.HANDLERS) == set(nova.EVENT_CLASS)


def test_dead_letter_keeps_bytes_and_reason() -> None:
    n = NovaNormalizer()
    raw = b'{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": \\"instance.update\\", '
    out = n.normalize(raw, recorded_at=RECORDED)
    assert out.status == "dead" and "JSON" in out.reason
    letter = n.dead_letter(raw, out)
    assert letter.raw == raw and letter.reason == out.reason and letter.source == "amqp" and letter.at > 0
    assert letter.size == len(raw) and not letter.truncated
