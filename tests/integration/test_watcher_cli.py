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

from projections.watcher.convert import model_to_xml, to_model_root
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
