"""``eventmodel export --format watcher-xml`` and ``eventmodel import-watcher-xml`` as a user
runs them: real processes, a real SQLite log written by the demo, Watcher's own reader."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from eventmodel.log import open_log
from projections.export import load_snapshot
from projections.replay import model_at

warnings.filterwarnings("ignore", category=DeprecationWarning)

from watcher.decision_engine.model.model_root import ModelRoot

import copy
from typing import Any

from projections.watcher.convert import model_to_xml, to_model_root
from projections.watcher.view import WatcherView
from tests.fixtures.watcher import FixedMetrics, run_strategy
from tests.integration.test_watcher_strategies import CASES, _maintenance_params, _shuffled
from tests.unit.test_watcher_view import seen

CLI = [sys.executable, "-m", "eventmodel"]
SCENARIO = Path(__file__).resolve().parents[1] / "data" / "watcher-scenarios" / "scenario_1.xml"


def run(*args: str, prefix: list[str] = CLI) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([*prefix, *args], check=False, capture_output=True, text=True, timeout=300, env=env)


def test_export_watcher_xml_from_a_log_and_import_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    demo = run("demo", "--hosts", "5", "--instances", "40", "--duration", "1", "--seed", "3", "--log", url)
    assert demo.returncode == 0, demo.stderr
    xml = tmp_path / "model.xml"
    out = run("export", "--log", url, "--format", "watcher-xml", "-o", str(xml))
    assert out.returncode == 0, out.stderr
    model = model_at(open_log(url))
    # Watcher's own reader sees what Watcher's ModelRoot built from the same model holds
    theirs = ModelRoot.from_xml(xml.read_text())
    ours = to_model_root(model, order="uuid", unplaced=True, extended=True)
    assert seen(theirs, drop_none=True) == seen(ours, drop_none=True)
    assert len(theirs.get_all_compute_nodes()) == 5

    snap = tmp_path / "snap.json"
    imported = run("import-watcher-xml", str(xml), "--out", str(snap))
    assert imported.returncode == 0, imported.stderr
    assert "5 compute nodes" in imported.stdout
    assert model_to_xml(load_snapshot(snap)) == xml.read_text()
    # the imported snapshot lists nodes and instances as Watcher reads the exported file,
    # so strategies decide alike
    _decides_as_watcher_reads(load_snapshot(snap), theirs)


def _decides_as_watcher_reads(model: Any, root: Any) -> None:
    """A view of ``model`` lists what ``root`` (``ModelRoot.from_xml``) lists, in its
    order, and Watcher's strategies decide the same on both."""
    view = WatcherView(model)
    assert list(view.get_all_compute_nodes()) == list(root.get_all_compute_nodes())
    assert list(view.get_all_instances()) == list(root.get_all_instances())
    for u, node in root.get_all_compute_nodes().items():
        assert [i.uuid for i in view.get_node_instances(view.get_node_by_uuid(u))] == \
            [i.uuid for i in root.get_node_instances(node)]
    for node in root.get_all_compute_nodes().values():
        if not node.obj_attr_is_set("disabled_reason"):
            node.disabled_reason = None  # what the view says for a reason the file does not give
    decided = 0
    for name, params in CASES:
        for p in _maintenance_params(model) if params is None else [params]:
            on_view = run_strategy(name, WatcherView(model), p, FixedMetrics())
            assert on_view == run_strategy(name, copy.deepcopy(root), p, FixedMetrics()), (name, p)
            decided += bool(on_view.actions)
    assert decided  # some strategy had something to do


def test_an_imported_scenario_in_any_order_lists_as_watcher_reads_it(tmp_path: Path) -> None:
    """import-watcher-xml of a Watcher scenario, its nodes and instances shuffled: the
    snapshot keeps the file's order (``watcher_layout``) and its unplaced instances, so
    strategies decide on it as on ``ModelRoot.from_xml`` of the file; so does the file
    exported from it and imported again."""
    for seed in (None, 3):
        scenario = SCENARIO.with_name("scenario_10.xml").read_bytes()
        text = scenario if seed is None else _shuffled(scenario, seed)
        path = tmp_path / f"scenario-{seed}.xml"
        path.write_bytes(text)
        snap = tmp_path / f"scenario-{seed}.json"
        done = run("import-watcher-xml", str(path), "--out", str(snap))
        assert done.returncode == 0, done.stderr
        root = ModelRoot.from_xml(text)
        _decides_as_watcher_reads(load_snapshot(snap), root)
        # exported again and imported again: as Watcher reads that export
        exported = tmp_path / f"exported-{seed}.xml"
        exported.write_text(model_to_xml(load_snapshot(snap)))
        back = tmp_path / f"back-{seed}.json"
        assert run("import-watcher-xml", str(exported), "--out", str(back)).returncode == 0
        _decides_as_watcher_reads(load_snapshot(back), ModelRoot.from_xml(exported.read_text()))


def test_import_says_when_watcher_itself_fails_on_the_file(tmp_path: Path) -> None:
    """A scenario whose nodes lack the reserved/ratio fields: Watcher's strategies fail
    on it (``Cannot load 'vcpu_reserved'``); the import says so and which fields."""
    path = SCENARIO.with_name("scenario_1_with_1_node_unavailable.xml")
    done = run("import-watcher-xml", str(path), "--out", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "6 node(s) lack" in said and "vcpu_reserved" in said and "Watcher's strategies fail on this file" in said
    clean = run("import-watcher-xml", str(SCENARIO), "--out", str(tmp_path / "t.json"))
    assert "lack" not in clean.stderr


def test_import_a_watcher_scenario_and_export_errors(tmp_path: Path) -> None:
    snap = tmp_path / "s1.json"
    done = run("import-watcher-xml", str(SCENARIO), "--out", str(snap))
    assert done.returncode == 0, done.stderr
    assert load_snapshot(snap).counts()["instance"] == 35
    bad = run("import-watcher-xml", str(SCENARIO.with_name("storage_scenario_1.xml")), "--out", str(snap))
    assert bad.returncode == 2 and "only compute scenarios" in bad.stderr
    fmt = run("export", "--log", f"sqlite:///{tmp_path / 'none.db'}", "--format", "yaml", "-o", "x")
    assert fmt.returncode == 2 and "--format must be one of snapshot, watcher-xml" in fmt.stderr


def test_without_watcher_the_commands_say_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['watcher'] = None; sys.argv[0] = 'eventmodel'; "
            "from eventmodel.cli.main import app; app()")
    blocked = [sys.executable, "-c", code]
    proc = run("import-watcher-xml", str(SCENARIO), "--out", str(tmp_path / "s.json"), prefix=blocked)
    assert proc.returncode == 2
    assert "pip install 'eventmodel[watcher]'" in proc.stderr.replace("\n", "")
    assert not (tmp_path / "s.json").exists()
