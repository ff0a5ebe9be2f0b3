"""Positional checkpoints: replay to any point from the nearest checkpoint at or before
it equals replay from zero to that point; the set kept stays bounded."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventmodel import events as ev
from eventmodel.log import open_log
from eventmodel.log.base import Position
from projections.checkpoint import Checkpointer, _total_of
from projections.projection import Projection, catch_up
from projections.replay import model_at
from tests.unit.test_checkpoint import _envelopes, _with_snapshot
from tests.unit.test_fold import payload_lists


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload_lists, st.data())
def test_replay_to_any_point_from_positional_checkpoints_equals_replay_from_zero(
        tmp_path: Path, payloads: list[object], data: st.DataObject) -> None:
    envelopes = _envelopes(_with_snapshot(payloads))
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    log = open_log(f"sqlite:///{d}/events.db")
    log.append(envelopes)
    n = len(envelopes)
    ladder = data.draw(st.integers(1, 6), label="ladder")
    ck = Checkpointer.for_log(d / "ckpt", log, keep=1, ladder=ladder, ladder_keep=3)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=8), label="checkpoints"))
    for cut in cuts:  # a follower writes them in log order
        p = Projection()
        catch_up(p, log, Position((cut,)))
        ck.write(p.state)
    kept = sorted(_total_of(f) for f in ck.files())
    assert len(kept) <= 1 + 3  # keep + ladder_keep
    assert len({t // ladder for t in kept[:-1]}) == len(kept[:-1])  # one per stretch besides the newest

    target = Position((data.draw(st.integers(0, n), label="target"),))
    replayed = model_at(log, to=target, checkpointer=ck)
    # it started from the nearest kept checkpoint at or before the target
    before = [t for t in kept if t <= target.total]
    assert ck.loaded_position == (Position((max(before),)) if before else None)

    zero = Projection()
    catch_up(zero, log, target)
    assert replayed.state == zero.state  # every field: entities, tombstones, index, snapshots, counters
    log.close()


def test_ladder_keeps_the_first_of_each_stretch_and_drops_the_oldest_over_the_bound(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path}/events.db")
    log.append(_envelopes([ev.SnapshotAborted(str(i)) for i in range(100)]))
    ck = Checkpointer.for_log(tmp_path / "ckpt", log, keep=2, ladder=10, ladder_keep=4)
    for cut in range(0, 101, 5):
        p = Projection()
        catch_up(p, log, Position((cut,)))
        ck.write(p.state)
    kept = sorted(_total_of(f) for f in ck.files())
    # the newest two, plus the first written in each of the four newest other stretches
    assert kept == [60, 70, 80, 90, 95, 100]
    assert [p.total for p in ck.positions()] == sorted(kept, reverse=True)
    log.close()
