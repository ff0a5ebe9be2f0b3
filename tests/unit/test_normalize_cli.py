"""``eventmodel normalize`` on real samples, JSON lines, stdin and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from eventmodel.cli.main import app
from eventmodel.codec import Codec

RECORDED = "1795000000000000"


def _run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(app, ["normalize", "--no-plugins", "--recorded-at", RECORDED, *args], input=input)


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_samples(samples_dir: Path) -> None:
    post_dest = samples_dir / "instance-live_migration_post_dest-end.json"
    aggregate = samples_dir / "aggregate-create-start.json"
    result = _run(str(post_dest), str(aggregate))
    assert result.exit_code == 0, result.output
    event, skipped = _lines(result.stdout)
    env = Codec().from_dict(event)
    assert env.type == "instance.migrated" and env.payload.method == "live"
    assert env.payload.instance.host == json.loads(post_dest.read_bytes())["payload"]["nova_object.data"]["host"]
    assert env.recorded_at == int(RECORDED)
    assert skipped == {
        "file": str(aggregate),
        "status": "irrelevant",
        "event_type": "aggregate.create.start",
        "reason": skipped["reason"],
    } and skipped["reason"]
    # deterministic: the same input gives the same output
    assert _run(str(post_dest), str(aggregate)).stdout == result.stdout


def test_json_lines_and_wire_envelopes_from_stdin(samples_dir: Path) -> None:
    lines = []
    for i, name in enumerate(["service-update.json", "instance-lock.json", "keypair-create-end.json"]):
        inner = json.loads((samples_dir / name).read_bytes())
        inner.update(message_id=f"m-{i}", timestamp="2026-11-25 15:31:37.996213")
        lines.append(json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}))
    result = _run("-", input=("\n".join(lines) + "\n\n").encode())
    assert result.exit_code == 0, result.output
    out = _lines(result.stdout)
    assert [o.get("type") or o["status"] for o in out] == ["compute_service.changed", "instance.lock_changed", "irrelevant"]
    assert out[2]["line"] == 3 and out[2]["file"] == "-"


def test_array_of_documents(samples_dir: Path, tmp_path: Path) -> None:
    docs = [json.loads((samples_dir / n).read_bytes()) for n in ("instance-pause-end.json", "instance-unpause-end.json")]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(docs))
    result = _run(str(path))
    assert result.exit_code == 0
    assert [o["payload"]["action"] for o in _lines(result.stdout)] == ["pause", "unpause"]


def test_malformed_file_is_dead_with_exit_1(samples_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_bytes((samples_dir / "instance-update.json").read_bytes()[:300])
    missing_field = tmp_path / "nouuid.json"
    sample = json.loads((samples_dir / "instance-update.json").read_bytes())
    del sample["payload"]["nova_object.data"]["uuid"]
    missing_field.write_text(json.dumps(sample))
    good = samples_dir / "instance-power_on-end.json"
    result = _run(str(broken), str(good), str(missing_field))
    assert result.exit_code == 1
    out = _lines(result.stdout)
    assert len(out) == 3
    assert out[0]["file"] == str(broken) and out[0]["status"] == "dead" and "JSON" in out[0]["reason"]
    assert out[1]["type"] == "instance.state_changed"
    assert out[2]["status"] == "dead" and "'uuid'" in out[2]["reason"] and out[2]["event_type"] == "instance.update"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "nope.json: no such file" in result.stderr
    assert result.stdout == ""


def test_bad_recorded_at(samples_dir: Path) -> None:
    result = CliRunner().invoke(app, ["normalize", "--recorded-at", "soon", str(samples_dir / "service-update.json")])
    assert result.exit_code == 2 and "--recorded-at" in result.stderr
