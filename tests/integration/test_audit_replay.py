"""An audit replayed byte for byte after its process ended, by another process with
a fresh checkpoint directory ("another machine that reads the same log")."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventmodel.cli.main import app
from eventmodel.log import open_log
from projections.audits import find_audit
from projections.checkpoint import Checkpointer
from projections.replay import model_at
from tests.integration.cloudfill import CloudFeed

ENGINE_PROCESS = textwrap.dedent("""
    import sys
    from projections.audits import export_audit, find_audit
    from projections.engine import ModelEngine

    url, ckpt, out = sys.argv[1:4]
    with ModelEngine(url, ckpt, checkpoint_every=100, ladder=100, poll=0.01) as engine:
        model = engine.latest()
        engine.record_audit("audit-7", model, digest=True)
        export_audit(model, find_audit(engine.log, "audit-7"), out)
        print(model.position)
""")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def test_an_audit_is_replayed_byte_for_byte_after_a_restart(tmp_path: Path, backend: str,
                                                            request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "kafka_url")
    log = open_log(url)
    feed = CloudFeed(log, hosts=5, instances=40)
    feed.sync()
    feed.operate(200)

    seen = tmp_path / "seen.json"
    position = _run("-c", ENGINE_PROCESS, url, str(tmp_path / "engine-ckpt"), str(seen)).stdout.strip()
    feed.operate(200)  # the log moves on after the audit; the engine process is gone
    feed.sync()

    listed = CliRunner().invoke(app, ["audits", "--log", url])
    assert listed.exit_code == 0 and "audit-7" in listed.output and f"  {position}  " in listed.output

    again = tmp_path / "again.json"
    out = _run("-m", "eventmodel", "replay", "--log", url, "--audit", "audit-7", "--export", str(again),
               "--checkpoint-dir", str(tmp_path / "fresh")).stdout
    assert "matches the digest recorded at audit time" in out
    assert again.read_bytes() == seen.read_bytes()

    # the engine's own (positional) checkpoints give the same model, starting nearer
    audit = find_audit(log, "audit-7")
    ck = Checkpointer.for_log(tmp_path / "engine-ckpt", log)
    assert model_at(log, to=audit.position, checkpointer=ck).state.tables == \
        model_at(log, to=audit.position).state.tables
    assert ck.loaded_position is not None and audit.position.covers(ck.loaded_position)

    missing = CliRunner().invoke(app, ["replay", "--log", url, "--audit", "nope"])
    assert missing.exit_code == 1 and "no audit 'nope'" in missing.stderr
    log.close()
