"""Codec: every event type round-trips; old schema versions and unknown types still decode."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.codec import Codec, DecodeError, EventTypes

text = st.text(max_size=20)
opt_text = st.none() | text
ints = st.integers(0, 2**53)
str_dicts = st.dictionaries(text, text, max_size=3)
flavors = st.builds(ev.Flavor, text, st.integers(0, 512), st.integers(0, 2**20), st.integers(0, 4096),
                    st.integers(0, 4096), st.integers(0, 2**16), str_dicts)
instances = st.builds(ev.Instance, st.uuids().map(str), ints, opt_text, opt_text, text, flavors, opt_text, opt_text,
                      text, text, text, st.booleans(), opt_text, opt_text, str_dicts, st.none() | ints)
nodes = st.builds(ev.ComputeNode, text, ints, opt_text, opt_text, st.integers(0, 4096), st.integers(0, 2**24),
                  st.integers(0, 2**20), cpu_allocation_ratio=st.floats(0.1, 64), ram_allocation_ratio=st.floats(0.1, 8),
                  disabled=st.booleans(), disabled_reason=opt_text)
services = st.builds(ev.ComputeService, text, text, ints, st.booleans(), opt_text, st.booleans(), st.booleans(),
                     opt_text, opt_text)
aggregates = st.builds(ev.Aggregate, st.uuids().map(str), ints, st.none() | st.integers(1, 10**6), text, opt_text,
                       st.lists(text, max_size=4).map(tuple), str_dicts)
floats = st.none() | st.floats(0, 10**6, allow_nan=False)
storage_nodes = st.builds(ev.StorageNode, text, ints, opt_text, st.booleans(), opt_text, st.booleans())
pools = st.builds(ev.StoragePool, text, ints, floats, floats, floats, floats, floats, st.none() | st.integers(0, 10**6),
                  st.sampled_from([None, "infinite", "unknown"]))
volume_types = st.builds(ev.VolumeType, st.uuids().map(str), ints, text, opt_text, st.booleans(), str_dicts)
attachments = st.lists(st.builds(ev.VolumeAttachment, st.uuids().map(str), st.uuids().map(str)), max_size=3).map(tuple)
volumes = st.builds(ev.Volume, st.uuids().map(str), ints, opt_text, st.integers(0, 2**16), text, text, text, text,
                    opt_text, opt_text, opt_text, attachments, st.booleans(), st.booleans(), opt_text, str_dicts,
                    st.none() | ints)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=6)
baremetal_nodes = st.builds(ev.BaremetalNode, st.uuids().map(str), ints, opt_text, opt_text, opt_text, st.booleans(),
                            opt_text, opt_text, st.none() | st.uuids().map(str),
                            st.dictionaries(text, json_values, max_size=3))
sid = st.uuids().map(str)
positions = st.lists(st.integers(0, 2**40), min_size=1, max_size=6).map(tuple)

#: one strategy per payload class; the test below holds it to the built-in vocabulary
PAYLOAD_STRATEGIES: dict[type, st.SearchStrategy] = {
    ev.InstanceCreated: st.builds(ev.InstanceCreated, instances),
    ev.InstanceUpdated: st.builds(ev.InstanceUpdated, instances, text),
    ev.InstanceStateChanged: st.builds(ev.InstanceStateChanged, instances, text, opt_text),
    ev.InstanceLockChanged: st.builds(ev.InstanceLockChanged, instances),
    ev.InstanceResized: st.builds(ev.InstanceResized, instances, st.none() | flavors, opt_text, opt_text, text),
    ev.InstanceMigrated: st.builds(ev.InstanceMigrated, instances, opt_text, opt_text,
                                   st.sampled_from(["live", "cold", "evacuate"])),
    ev.InstanceDeleted: st.builds(ev.InstanceDeleted, instances),
    ev.InstanceObserved: st.builds(ev.InstanceObserved, sid, instances),
    ev.InstanceSeen: st.builds(ev.InstanceSeen, sid, st.uuids().map(str), text),
    ev.ComputeNodeObserved: st.builds(ev.ComputeNodeObserved, sid, nodes),
    ev.ComputeServiceChanged: st.builds(ev.ComputeServiceChanged, services, text),
    ev.ComputeServiceDeleted: st.builds(ev.ComputeServiceDeleted, services),
    ev.ComputeServiceObserved: st.builds(ev.ComputeServiceObserved, sid, services),
    ev.AggregateChanged: st.builds(ev.AggregateChanged, aggregates, text),
    ev.AggregateDeleted: st.builds(ev.AggregateDeleted, aggregates),
    ev.AggregateObserved: st.builds(ev.AggregateObserved, sid, aggregates),
    ev.VolumeChanged: st.builds(ev.VolumeChanged, volumes, text),
    ev.VolumeDeleted: st.builds(ev.VolumeDeleted, volumes),
    ev.VolumeObserved: st.builds(ev.VolumeObserved, sid, volumes),
    ev.PoolChanged: st.builds(ev.PoolChanged, pools),
    ev.PoolObserved: st.builds(ev.PoolObserved, sid, pools),
    ev.StorageNodeObserved: st.builds(ev.StorageNodeObserved, sid, storage_nodes),
    ev.VolumeTypeObserved: st.builds(ev.VolumeTypeObserved, sid, volume_types),
    ev.BaremetalNodeChanged: st.builds(ev.BaremetalNodeChanged, baremetal_nodes, text),
    ev.BaremetalNodeDeleted: st.builds(ev.BaremetalNodeDeleted, baremetal_nodes),
    ev.BaremetalNodeObserved: st.builds(ev.BaremetalNodeObserved, sid, baremetal_nodes),
    ev.SnapshotStarted: st.builds(ev.SnapshotStarted, sid, st.lists(st.sampled_from(ev.KINDS), unique=True).map(tuple),
                                  st.integers(1, 64), st.none() | positions, st.none() | sid),
    ev.SnapshotCompleted: st.builds(ev.SnapshotCompleted, sid,
                                    st.dictionaries(st.sampled_from(ev.KINDS), st.integers(0, 10**6)),
                                    st.none() | ints, st.none() | positions),
    ev.SnapshotAborted: st.builds(ev.SnapshotAborted, sid, text, st.none() | ints, st.none() | positions),
    ev.EntityAbsent: st.builds(ev.EntityAbsent, sid, st.sampled_from(ev.KINDS), text),
    ev.AuditRead: st.builds(ev.AuditRead, text, st.lists(ints, min_size=1, max_size=4).map(tuple), ints, ints, text,
                            text, text),
}
payloads = st.one_of(*PAYLOAD_STRATEGIES.values())


def test_every_builtin_type_has_a_round_trip_strategy() -> None:
    missing = {c.TYPE for c in ev.BUILTIN_PAYLOADS} - {c.TYPE for c in PAYLOAD_STRATEGIES}
    assert not missing, f"no strategy for {sorted(missing)}"
    assert set(EventTypes.builtin().names()) == {c.TYPE for c in ev.BUILTIN_PAYLOADS}


@pytest.mark.parametrize("cls", list(PAYLOAD_STRATEGIES), ids=lambda c: c.TYPE)
def test_each_strategy_builds_its_own_class(cls: type) -> None:
    @given(PAYLOAD_STRATEGIES[cls])
    def check(payload: object) -> None:
        assert type(payload) is cls

    check()


@given(payloads, text, ints, ints)
def test_round_trip(payload: object, source: str, occurred: int, recorded: int) -> None:
    codec = Codec()
    env = ev.envelope(payload, source=source, message_id="m", occurred_at=occurred, recorded_at=recorded)
    back = codec.decode(codec.encode(env))
    assert back == env
    assert codec.from_dict(codec.to_dict(env)) == env


@given(st.builds(ev.InstanceMigrated, instances, opt_text, opt_text, st.sampled_from(["live", "cold"])))
def test_schema_0_migrated_record_is_upcast(payload: ev.InstanceMigrated) -> None:
    codec = Codec()
    d = codec.to_dict(ev.envelope(payload, source="s", message_id="m", occurred_at=1, recorded_at=2))
    d["schema"] = 0
    d["payload"]["live"] = d["payload"].pop("method") == "live"
    import msgspec

    back = codec.decode(msgspec.json.encode(d))
    assert back.payload == payload and back.schema == ev.InstanceMigrated.VERSION


def test_unknown_type_is_kept_not_lost() -> None:
    codec = Codec()
    raw = b'{"event_id":"e","type":"volume.attached","schema":3,"key":"v1","source":"cinder",' \
          b'"occurred_at":1,"recorded_at":2,"payload":{"volume":"v1","size":10}}'
    env = codec.decode(raw)
    assert isinstance(env.payload, ev.Unknown) and env.payload.data == {"volume": "v1", "size": 10}
    assert codec.decode(codec.encode(env)) == env


def test_newer_schema_than_known_is_a_clear_error() -> None:
    codec = Codec()
    env = ev.envelope(ev.SnapshotCompleted("s", {}), source="s", message_id="m", occurred_at=1, recorded_at=2)
    d = codec.to_dict(env)
    d["schema"] = 9
    import msgspec

    with pytest.raises(DecodeError, match="newer than this process knows"):
        codec.decode(msgspec.json.encode(d))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'{"type":"instance.created"}',
                                 b'{"event_id":"e","type":"instance.created","key":"k","source":"s",'
                                 b'"occurred_at":1,"recorded_at":2,"payload":{"instance":{"uuid":5}}}'])
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        Codec().decode(raw)


def test_event_ids_are_deterministic() -> None:
    assert ev.event_id("nova-compute:h1", "m1") == ev.event_id("nova-compute:h1", "m1")
    assert ev.event_id("nova-compute:h1", "m1") != ev.event_id("nova-compute:h1", "m1", 1)


def test_registering_a_clashing_type_is_refused() -> None:
    @attrs.frozen
    class Clash:
        TYPE = "instance.created"
        x: int = 0

    with pytest.raises(ValueError, match="already registered"):
        EventTypes.builtin().register(Clash)


def test_instances_decoded_by_one_codec_share_equal_flavors() -> None:
    """A model holds one Flavor object per distinct flavor (memory per instance, issue 15)."""
    codec = Codec()
    fl = ev.Flavor("m1.small", 1, 2048, 20, extra_specs={"hw:cpu_policy": "shared"})
    blobs = [codec.encode(ev.envelope(ev.InstanceUpdated(ev.Instance(f"u{k}", k, "h", "h", "active", fl)),
                                      source="t", message_id=str(k), occurred_at=k, recorded_at=k)) for k in range(3)]
    other = ev.Flavor("m1.small", 1, 2048, 20, extra_specs={"hw:cpu_policy": "dedicated"})
    blobs.append(codec.encode(ev.envelope(ev.InstanceUpdated(ev.Instance("u9", 9, "h", "h", "active", other)),
                                          source="t", message_id="9", occurred_at=9, recorded_at=9)))
    flavors = [codec.decode(b).payload.instance.flavor for b in blobs]
    assert flavors[0] is flavors[1] is flavors[2] and flavors[0] == fl
    assert flavors[3] == other and flavors[3] is not flavors[0]  # extra specs tell them apart


def test_records_written_by_an_earlier_release_decode_and_encode_to_the_same_bytes() -> None:
    """``codec-golden-2026-12.jsonl``: three records of every built-in type, encoded by the
    codec before the payload classes declared their attributes in the class line (issue
    18). Each decodes to its class and encodes back to the very same bytes."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / "data" / "codec-golden-2026-12.jsonl").read_bytes().splitlines()
    codec = Codec()
    seen = set()
    for line in lines:
        env = codec.decode(line)
        assert type(env.payload).TYPE == env.type and not isinstance(env.payload, ev.Unknown)
        assert codec.encode(env) == line
        seen.add(type(env.payload))
    # every type of the vocabulary of that day (the storage and bare-metal types came later)
    later = {c for c in ev.BUILTIN_PAYLOADS if c.KIND in ev.STORAGE_KINDS + ev.BAREMETAL_KINDS}
    assert seen == set(ev.BUILTIN_PAYLOADS) - later and later
