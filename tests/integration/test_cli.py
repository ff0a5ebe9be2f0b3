"""The command line as a user runs it: real processes, a real SQLite log."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventmodel.log import open_log
from projections.checkpoint import Checkpointer
from projections.export import load_snapshot
from projections.replay import model_at

CLI = [sys.executable, "-m", "eventmodel"]


def _row(table: str, name: str) -> str:
    """The value of one row of a summary table."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in:\n{table}")


def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"eventmodel {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("demo") / "events.db"
    url = f"sqlite:///{path}"
    out = run("demo", "--hosts", "8", "--instances", "60", "--duration", "2", "--log", url,
              "--drop", "0.05", "--seed", "7").stdout
    return url, out


def test_demo_reports_equality_with_ground_truth(demo_log: tuple[str, str]) -> None:
    url, out = demo_log
    assert "projection equals ground truth" in out
    line = next(x for x in out.splitlines() if "projection equals ground truth" in x)
    assert "YES" in line
    assert "drift found by final sync" in out
    assert "same model: yes" in out
    assert open_log(url).end().total > 100
    # the full syncs went over HTTP through openstacksdk: one line each with its requests
    syncs = [x for x in out.splitlines() if " full sync: " in x]
    assert [x.split(":")[0].strip() for x in syncs] == ["initial full sync", "final full sync",
                                                        "quiescent full sync"]
    for line in syncs:
        # Nova, Placement and (the demo's cloud has volumes) Cinder
        assert re.search(r"requests \(block-storage \d+, compute ", line) and "placement " in line
        assert re.search(r"\) in \d+\.\d\ds", line) and "'volume': " in line
    assert "yes" in _row(out, "storage equals ground truth") and "yes" in _row(out, "compute equals ground truth")
    assert _row(out, "full syncs over HTTP").startswith("3 through openstacksdk: ")
    # the held-back notifications reached the log while the quiescent sync read
    quiet = syncs[-1]
    late = _row(out, "held back until the last sync")
    assert "delivered while the quiescent sync read" in late
    live = int(re.search(r"\(([\d,]+) changing a compute entity\)", late).group(1).replace(",", ""))
    if live:  # a late record that changed an entity is re-read in a follow-up round
        assert "follow-up round" in quiet and "still contested" not in quiet


def test_replay_history_export_and_diff(demo_log: tuple[str, str], tmp_path: Path) -> None:
    url, _ = demo_log
    log = open_log(url)
    end = log.end().total
    mid = end // 2

    out = run("replay", "--log", url, "--to", str(mid), "--nodes", "3").stdout
    assert _row(out, "position") == str(mid)
    expected = model_at(log, to=log.end().__class__((mid,)))
    assert _row(out, "instances") == f"{len(expected.instances()):,}"
    assert "fullest nodes" in out

    snap = tmp_path / "snap.json"
    out = run("export", "--log", url, "-o", str(snap)).stdout
    assert "wrote" in out
    model = load_snapshot(snap)
    now = model_at(log)
    assert dict(model.instances()) == dict(now.instances())
    doc = json.loads(snap.read_text())
    assert doc["format"] == "eventmodel.snapshot" and doc["version"] == 2
    assert dict(model.aggregates()) == dict(now.aggregates()) and len(doc["aggregates"]) == len(now.aggregates())

    uuid = next(iter(now.instances()))
    out = run("history", "--log", url, uuid, "--json").stdout
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert lines and all(x["key"] == uuid for x in lines)
    assert [x["offset"] for x in lines] == sorted(x["offset"] for x in lines)

    out = run("diff", "--log", url, "--from", str(mid)).stdout
    assert "changes from position" in out


def test_replay_at_a_time_before_anything_is_empty(demo_log: tuple[str, str]) -> None:
    url, _ = demo_log
    out = run("replay", "--log", url, "--at", "2000-01-01T00:00:00Z").stdout
    assert _row(out, "records folded") == "0"
    assert _row(out, "position") == "0"


def test_clear_errors(tmp_path: Path) -> None:
    missing = run("replay", "--log", f"sqlite:///{tmp_path}/nope.db", check=False)
    assert missing.returncode == 2 and "no such log file" in missing.stderr
    bad = run("replay", "--log", "ftp://x", check=False)
    assert bad.returncode == 2 and "unknown log backend" in bad.stderr
    pos = run("replay", "--log", f"sqlite:///{tmp_path}/nope.db", "--to", "x:y", check=False)
    assert pos.returncode == 2


def test_follow_writes_a_checkpoint_and_restarts_from_it(demo_log: tuple[str, str], tmp_path: Path) -> None:
    url, _ = demo_log
    ck = tmp_path / "ckpt"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*CLI, "follow", "--log", url, "--checkpoint-dir", str(ck), "--status-every", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if "position" in line and "following" not in line:
                break
        assert "position" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "checkpoint written" in out
    state = Checkpointer(ck).load(partitions=1)
    assert state is not None and state.position == open_log(url).end()
    # a corrupt newest checkpoint is reported and skipped by the next start
    newest = Checkpointer(ck).files()[0]
    newest.write_bytes(newest.read_bytes()[:-3])
    out = run("replay", "--log", url, "--checkpoint-dir", str(ck))
    assert "skipped checkpoint" in out.stderr


def test_demo_through_rabbitmq_and_the_bridge(rabbitmq_url: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bus.db"
    out = run("demo", "--hosts", "5", "--instances", "40", "--duration", "2", "--log", url,
              "--bus", rabbitmq_url, "--seed", "3").stdout
    line = next(x for x in out.splitlines() if "projection equals ground truth" in x)
    assert "YES" in line
    events = next(x for x in out.splitlines() if "events appended" in x)
    assert int(events.split("│")[2].split()[0].replace(",", "")) > 0


def test_demo_replay_history_export_on_kafka(kafka_url: str, tmp_path: Path) -> None:
    out = run("demo", "--hosts", "6", "--instances", "50", "--duration", "2", "--log", kafka_url,
              "--seed", "5").stdout
    assert "YES" in next(x for x in out.splitlines() if "projection equals ground truth" in x)
    log = open_log(kafka_url)
    assert log.partitions() == 3
    end = log.end()
    half = ",".join(f"{p}:{o // 2}" for p, o in enumerate(end.offsets))
    out = run("replay", "--log", kafka_url, "--to", half).stdout
    assert _row(out, "records folded") == f"{sum(o // 2 for o in end.offsets):,}"
    expected = model_at(log, to=type(end)(tuple(o // 2 for o in end.offsets)))
    assert _row(out, "instances") == f"{len(expected.instances()):,}"
    snap = tmp_path / "k.json"
    run("export", "--log", kafka_url, "-o", str(snap))
    exported = load_snapshot(snap)
    assert dict(exported.instances()) == dict(model_at(log).instances())
    uuid = next(iter(exported.instances()))
    lines = [json.loads(x) for x in run("history", "--log", kafka_url, uuid, "--json").stdout.splitlines() if x]
    assert lines and {x["key"] for x in lines} == {uuid}
    assert len({x["partition"] for x in lines}) == 1  # one key, one partition


def test_position_past_the_end_and_foreign_files_are_refused(demo_log: tuple[str, str], tmp_path: Path) -> None:
    url, _ = demo_log
    past = run("replay", "--log", url, "--to", "99999999", check=False)
    assert past.returncode == 2 and "past the end" in past.stderr
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE t(x)")
    out = run("replay", "--log", f"sqlite:///{foreign}", check=False)
    assert out.returncode == 2 and "not an eventmodel log" in out.stderr
    with sqlite3.connect(foreign) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"t"}  # left untouched


def test_the_demo_twice_in_one_folder_says_yes_both_times(tmp_path: Path) -> None:
    """The second run's cloud starts now, with versions older than what the first run
    left on the log: its full syncs must still make the model equal its cloud."""
    url = f"sqlite:///{tmp_path}/eventmodel-demo.db"
    for n in (1, 2):
        out = run("demo", "--hosts", "8", "--instances", "80", "--duration", "2", "--log", url, "--seed", "3").stdout
        assert "YES" in _row(out, "projection equals ground truth"), f"run {n}:\n{out}"
        if n == 2:
            assert "the log already holds" in out
    assert open_log(url).end().total > 200


def test_the_demo_without_the_sim_extra_says_what_to_install(tmp_path: Path) -> None:
    """A core install (no openstacksdk): one line naming the extra, no traceback, no log."""
    hide = "import sys; sys.modules['openstack'] = None; import runpy; runpy.run_module('eventmodel', " \
           "run_name='__main__')"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", hide, "demo", "--log", f"sqlite:///{tmp_path}/d.db"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: eventmodel demo needs the sim extra (missing: openstack): pip install 'eventmodel[sim]'"]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "d.db").exists()
