"""Checkpoints: atomic, verified, and checkpoint + tail == replay from zero."""

from __future__ import annotations

import tempfile

import attrs as attrs_mod
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log import open_log
from eventmodel.log.base import Position
from projections.checkpoint import CheckpointError, Checkpointer, read_checkpoint, write_checkpoint
from projections.projection import Projection, catch_up
from projections.replay import start
from projections.state import ClusterState
from tests.unit.test_fold import NODES, UUIDS, inst, payload_lists


def _envelopes(payloads: list[object]) -> list[ev.Envelope]:
    return [ev.envelope(p, source="t", message_id=str(i), occurred_at=i, recorded_at=i) for i, p in enumerate(payloads)]


def _with_snapshot(payloads: list[object]) -> list[object]:
    """Payloads with a full sync in the middle, so open snapshots are checkpointed too."""
    mid = len(payloads) // 2
    return [*payloads[:mid], ev.SnapshotStarted("s", ev.KINDS, 1),
            ev.ComputeNodeObserved("s", ev.ComputeNode(NODES[0], 1, NODES[0], vcpus=8)),
            ev.InstanceObserved("s", inst(UUIDS[0], 3)), *payloads[mid:], ev.SnapshotCompleted("s", {})]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload_lists, st.data())
def test_checkpoint_plus_tail_equals_replay_from_zero(tmp_path: Path, payloads: list[object], data: st.DataObject) -> None:
    envelopes = _envelopes(_with_snapshot(payloads))
    cut = Position((data.draw(st.integers(0, len(envelopes))),))
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    log = open_log(f"sqlite:///{d}/events.db")
    log.append(envelopes)
    end = log.end()

    # a checkpoint written at a random cut point, then start-up = checkpoint + tail
    early = Projection()
    catch_up(early, log, cut)
    ckpt = Checkpointer.for_log(d / "ckpt", log)
    ckpt.write(early.state)
    resumed = start(log, ckpt)

    from_zero = Projection()
    catch_up(from_zero, log)
    assert resumed.state.position == from_zero.state.position == end
    assert resumed.state.tables == from_zero.state.tables
    assert resumed.state == from_zero.state  # every field: tombstones, index, snapshots, counters
    log.close()


@settings(max_examples=40, deadline=None)
@given(payload_lists, st.data())
def test_checkpoint_round_trip_with_several_partitions(payloads: list[object], data: st.DataObject) -> None:
    """Two partitions (keys spread by uuid), a full sync open in the middle: the state read
    back from a checkpoint equals the one written, field by field."""
    from projections.fold import fold
    from tests.unit.test_fold import records

    parts = {0: [], 1: []}
    for p in _with_snapshot(payloads):
        ent = ev.entity_of(p)
        targets = [UUIDS.index(ent.uuid) % 2] if isinstance(ent, ev.Instance) else [0, 1]
        if isinstance(p, (ev.SnapshotStarted, ev.SnapshotCompleted)):
            targets = [0, 1]
        elif not isinstance(ent, ev.Instance):
            targets = [0]
        for t in targets:
            parts[t].append(p)
    recs0, recs1 = records(parts[0], partition=0), records(parts[1], partition=1)
    cut0, cut1 = data.draw(st.integers(0, len(recs0))), data.draw(st.integers(0, len(recs1)))
    state = fold(ClusterState.empty(2), recs0[:cut0] + recs1[:cut1])
    with tempfile.TemporaryDirectory() as d:
        back = read_checkpoint(write_checkpoint(Path(d) / "c.ckpt", state))
    assert back == state


def _state() -> ClusterState:
    p = Projection()
    from projections.fold import fold
    from tests.unit.test_fold import records
    p._model = type(p.latest())(fold(ClusterState.empty(), records(
        [ev.InstanceCreated(inst(u, 1, NODES[i % 3])) for i, u in enumerate(UUIDS)])))
    return p.state


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    s = _state()
    path = write_checkpoint(tmp_path / "c.ckpt", s, log_url="sqlite:///x.db")
    back = read_checkpoint(path)
    assert back.tables == s.tables and back.by_node == s.by_node and back.position == s.position
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
def test_corrupt_checkpoint_is_detected_and_skipped(tmp_path: Path, damage: str) -> None:
    s = _state()
    ck = Checkpointer(tmp_path)
    good = ck.write(s)
    later = ck.write(s)
    raw = later.read_bytes()
    if damage == "flip":
        i = len(raw) - 10
        raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:]
    elif damage == "truncate":
        raw = raw[: len(raw) - 7]
    elif damage == "header":
        raw = b"{not json\n" + raw.split(b"\n", 1)[1]
    else:
        raw = b""
    later.write_bytes(raw)
    with pytest.raises(CheckpointError):
        read_checkpoint(later)
    loaded = ck.load(partitions=1)
    assert loaded is not None and loaded.tables == s.tables
    assert len(ck.skipped) == 1 and str(later) in ck.skipped[0]
    assert good.exists()


def test_checkpoint_past_the_log_end_is_refused(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.write(_state())
    assert ck.load(partitions=1, log_end=Position((2,))) is None
    assert "past the log's end" in ck.skipped[0]
    assert ck.load(partitions=3) is None and "partitions" in ck.skipped[0]


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, keep=2)
    for _ in range(4):
        ck.write(_state())
    assert len(ck.files()) == 2


def test_checkpoints_of_another_log_are_neither_used_nor_evicted(tmp_path: Path) -> None:
    mine = Checkpointer(tmp_path, log_id="sqlite:mine", keep=2)
    other = Checkpointer(tmp_path, log_id="sqlite:other", keep=2)
    theirs = other.write(_state())
    assert mine.load(partitions=1) is None and "another log" in mine.skipped[0]
    written = [mine.write(_state()) for _ in range(3)]
    assert theirs.exists()  # not ours to delete
    assert [p.exists() for p in written] == [False, True, True]
    assert mine.load(partitions=1) is not None and mine.loaded_position is not None


def test_the_checkpoint_just_written_is_never_evicted(tmp_path: Path) -> None:
    big = _state()
    import attrs as _attrs

    ahead = _attrs.evolve(big, position=Position((10**9,)))
    ck = Checkpointer(tmp_path, keep=1)
    ck.write(ahead)  # e.g. left from a longer log at a higher position
    new = ck.write(big)
    assert new.exists()


@attrs_mod.frozen
class Volume:
    """A plugin's entity with a tuple and a nested attrs value."""

    id: str
    version: int
    attachments: tuple[str, ...] = ()
    flavor: ev.Flavor | None = None

    @property
    def key(self) -> str:
        return self.id


@attrs_mod.frozen
class VolumeChanged:
    """The plugin's event type that carries a Volume (registers the entity class)."""

    TYPE = "test.volume.changed"
    VERSION = 1
    KIND = "volume"
    ENTITY = "volume"
    EFFECT = "upsert"
    volume: Volume


def _plugin_types():
    from eventmodel.codec import EventTypes

    types = EventTypes.builtin()
    types.register(VolumeChanged)
    return types


def test_a_plugin_entity_keeps_its_types_through_a_checkpoint(tmp_path: Path) -> None:
    import immutables

    s = _state()
    vol = Volume("v1", 5, ("i1", "i2"), ev.Flavor("disk", 0, 0, 10))
    s = attrs_mod.evolve(s, tables=s.tables.set("volume", immutables.Map({"v1": vol})))
    path = write_checkpoint(tmp_path / "c.ckpt", s)
    back = read_checkpoint(path, _plugin_types())
    assert back.tables["volume"]["v1"] == vol
    assert back == s
    # Without the plugin's event types the class is not loadable: a clear error, no import.
    with pytest.raises(CheckpointError, match="not a registered entity type"):
        read_checkpoint(path)


def test_a_crafted_checkpoint_cannot_import_a_module(tmp_path: Path) -> None:
    """A file naming any installed class is refused before anything is imported."""
    import hashlib
    import json
    import sys

    import msgspec

    victim = "xml.dom.pulldom"  # a stdlib module nothing here imports
    sys.modules.pop(victim, None)
    body = msgspec.msgpack.encode({
        "flavors": [], "tombstones": {}, "open_snapshots": [], "recent_snapshots": [],
        "last_snapshot": None, "recorded_at": 0, "applied": 0,
        "kinds": {"evil": {"class": f"{victim}:PullDOM", "dicts": [{"x": 1}]}},
    })
    header = {"format": "eventmodel.checkpoint", "schema": 1, "position": [0], "body_bytes": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    path = tmp_path / "evil.ckpt"
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)
    with pytest.raises(CheckpointError, match="not a registered entity type"):
        read_checkpoint(path)
    assert victim not in sys.modules
