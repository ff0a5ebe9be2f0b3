"""The declared surface (issue 18): ``__all__`` of eventmodel and projections, one error
root, ``eventmodel.testing``, and the layering rule read from the imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import eventmodel
import projections
from eventmodel import events as ev

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("kombu", "openstack", "starlette", "uvicorn", "watcher", "selenium")


def test_every_public_name_imports_in_a_fresh_interpreter_without_the_extras() -> None:
    code = (
        "import json, sys, eventmodel, projections\n"
        "missing = [n for m in (eventmodel, projections) for n in m.__all__ if not hasattr(m, n)]\n"
        "dupes = [n for m in (eventmodel, projections) for n in set(m.__all__) if m.__all__.count(n) > 1]\n"
        f"extras = [m for m in {EXTRAS!r} if m in sys.modules]\n"
        "print(json.dumps([missing, dupes, extras]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=120).stdout
    missing, dupes, extras = json.loads(out.strip().splitlines()[-1])
    assert missing == [] and dupes == [] and extras == []


def test_the_surface_holds_what_an_embedder_a_plugin_author_and_a_tester_use() -> None:
    for name in ("ModelEngine", "ClusterModel", "Projection", "fold", "ClusterState"):
        assert name in projections.__all__
    for name in ("open_log", "Position", "Error", "Envelope", "Instance", "NovaNormalizer", "PluginNormalizer",
                 "Snapshotter", "LogError"):
        assert name in eventmodel.__all__
    assert eventmodel.__getattr__("NovaNormalizer").__module__.startswith("eventmodel.sources.nova")
    with pytest.raises(AttributeError):
        eventmodel.__getattr__("NoSuchName")


def _provoked(tmp_path: Path) -> list[tuple[str, type, object]]:
    """(what, the built-in base callers relied on, a call that raises it on purpose)."""
    from eventmodel.codec import Codec
    from eventmodel.log import open_log
    from eventmodel.serve.access import load_token
    from eventmodel.sim.cloud import SimCloud
    from eventmodel.sources.nova import parse_message
    from eventmodel.sources.openstack import negotiate
    from projections.checkpoint import read_checkpoint
    from projections.export import load_snapshot
    from projections.model import ClusterModel
    from projections.state import ClusterState
    from projections.watcher.convert import xml_to_model

    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00not a checkpoint\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    log = open_log(f"sqlite:///{tmp_path}/e.db")
    return [
        ("an unknown log URL", RuntimeError, lambda: open_log("nope://x")),
        ("a position past the end", RuntimeError, lambda: list(log.read(eventmodel.Position((5,))))),
        ("bytes that are not an envelope", ValueError, lambda: Codec().decode(b"junk")),
        ("a notification that cannot be read", ValueError, lambda: parse_message(b"{", 0)),
        ("an API without microversions", RuntimeError, lambda: negotiate("compute", (None, None), ("2.1", "2.1"))),
        ("a corrupt checkpoint", ValueError, lambda: read_checkpoint(junk)),
        ("a snapshot file that is not one", ValueError, lambda: load_snapshot(junk)),
        ("an unknown instance", KeyError, lambda: ClusterModel(ClusterState.empty()).instance("nope")),
        ("a Watcher XML file that is not XML", ValueError, lambda: xml_to_model(b"<not xml")),
        ("an operation on a server that does not exist", ValueError, lambda: SimCloud(1, 0).delete("nope")),
        ("an empty token file", ValueError, lambda: load_token(empty)),
    ]


def test_every_error_raised_on_purpose_is_an_eventmodel_error_and_keeps_its_old_base(tmp_path: Path) -> None:
    for what, base, call in _provoked(tmp_path):
        with pytest.raises(eventmodel.Error) as caught:
            call()  # type: ignore[operator]
        assert isinstance(caught.value, base), (what, type(caught.value).__mro__)


def test_the_testing_module_folds_without_a_real_log() -> None:
    from eventmodel.testing import MemLog, envelopes_of, records_of

    inst = ev.Instance("u1", 1, "h", "h", "active", ev.Flavor("f", 1, 512))
    state = projections.fold(projections.ClusterState.empty(), records_of([ev.InstanceCreated(inst)]))
    assert projections.ClusterModel(state).instance("u1") == inst
    log = MemLog(3)
    log.append(envelopes_of([ev.SnapshotStarted("s", ev.KINDS), ev.InstanceCreated(inst)]))
    assert [len(p) for p in log.parts].count(2) == 1 and sum(len(p) for p in log.parts) == 4
    assert log.end().total == 4 and sum(len(b) for b in log.read()) == 4


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _under(modules: set[str], prefix: str) -> set[str]:
    return {m for m in modules if m == prefix or m.startswith(prefix + ".")}


@pytest.mark.parametrize("package", ["eventmodel", "projections"])
def test_the_layers_hold(package: str) -> None:
    """eventmodel ← projections ← the CLI (and serve, and the demo's run): the write side never imports the
    read side; the read side never imports sources, the simulator, serve or the CLI;
    the simulator imports only the vocabulary, the clock and the errors."""
    broken = []
    for path in sorted((ROOT / package).rglob("*.py")):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        imports = _imports(path)
        if package == "eventmodel" and not mod.startswith(("eventmodel.cli", "eventmodel.serve", "eventmodel.demo")):
            broken += [(mod, m) for m in _under(imports, "projections")]
        if package == "projections":
            for layer in ("eventmodel.sources", "eventmodel.sim", "eventmodel.serve", "eventmodel.cli"):
                broken += [(mod, m) for m in _under(imports, layer)]
        if mod.startswith("eventmodel.sim"):
            allowed = ("eventmodel.sim", "eventmodel.events", "eventmodel.clock", "eventmodel.errors")
            broken += [(mod, m) for m in _under(imports, "eventmodel") if not m.startswith(allowed)]
    assert broken == []
