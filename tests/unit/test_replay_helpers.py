"""What ``eventmodel replay --nodes`` and ``eventmodel follow`` use from the read side:
the fullest nodes, and a follower started from a checkpoint."""

from __future__ import annotations

from pathlib import Path

from eventmodel import events as ev
from eventmodel.log import EventLog, open_log
from eventmodel.testing import envelopes_of
from projections.checkpoint import Checkpointer
from projections.replay import following, fullest_nodes, model_at


def _log(path: Path) -> EventLog:
    log = open_log(f"sqlite:///{path}/e.db")
    nodes = [ev.ComputeNode(f"n{k}", 1, f"n{k}", vcpus=8, memory_mb=4096, disk_gb=100) for k in range(4)]
    flavor = ev.Flavor("f", 2, 512, root_gb=10)
    # n0 empty, n1 one instance, n2 three, n3 two
    placed = [(f"u{k}", node) for k, node in enumerate(["n1", "n2", "n2", "n2", "n3", "n3"])]
    log.append(envelopes_of([ev.SnapshotStarted("s", ev.KINDS)]
                            + [ev.ComputeNodeObserved("s", n) for n in nodes]
                            + [ev.InstanceObserved("s", ev.Instance(u, 1, node, node, "active", flavor))
                               for u, node in placed]
                            + [ev.SnapshotCompleted("s", {}, 0)]))
    return log


def test_the_fullest_nodes_come_first_with_what_they_use_and_hold(tmp_path: Path) -> None:
    model = model_at(_log(tmp_path))
    rows = fullest_nodes(model, 3)
    assert [name for name, _, _ in rows] == ["n2", "n3", "n1"]
    name, used, cap = rows[0]
    assert (used.vcpus, used.memory_mb, used.disk_gb) == (6, 1536, 30) and cap.vcpus == 8
    assert fullest_nodes(model, 0) == [] and len(fullest_nodes(model, 9)) == 4


def test_following_starts_from_the_checkpoint_and_knows_it(tmp_path: Path) -> None:
    log = _log(tmp_path)
    ck = Checkpointer.for_log(tmp_path / "ck", log)
    ck.write(model_at(log).state)
    ck = Checkpointer.for_log(tmp_path / "ck", log)
    projection, follower = following(log, ck, 100)
    assert projection.latest().position == log.end()
    assert follower.checkpointed == ck.loaded_position == log.end()
    assert follower.checkpoint_every == 100 and not follower.running
