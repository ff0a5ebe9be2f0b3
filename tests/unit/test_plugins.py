"""Plugins through real entry points: a tiny distribution is built and pip-installed.

It is installed with ``pip install --target`` into a directory of its own that the
test puts on ``sys.path``: the running interpreter finds its entry points exactly as
those of a site-packages install, while other processes (parallel test runs, the
user's own ``eventmodel``) never see it, and nothing is left behind if the test dies.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import attrs
import msgspec
import pytest

from eventmodel import events as ev
from eventmodel.codec import Codec, EventTypes
from eventmodel.log import open_log
from eventmodel.sources.nova import Outcome
from eventmodel.sources.plugins import CompositeNormalizer, Plugin, PluginFailure, load_plugins

DIST = "eventmodel-testplugin-cinder"
MODULE = "em_testplugin_cinder"
RECORDED = 1_795_000_000_000_000

PLUGIN_SOURCE = '''
"""A Cinder plugin for eventmodel (test fixture)."""
import attrs

from eventmodel import events as ev
from eventmodel.sources.nova import Outcome
from eventmodel.sources.plugins import occurred_at


@attrs.frozen(slots=True)
class VolumeAttached:
    TYPE = "volume.attached"
    VERSION = 2
    KIND = "volume"
    EFFECT = "upsert"

    volume_id: str
    instance_uuid: str
    size_gb: int
    host: str | None = None
    mode: str = "rw"


def _v1_to_v2(data):
    data = dict(data)
    data.setdefault("mode", "ro" if data.pop("read_only", False) else "rw")
    return data


class AttachNormalizer:
    def accepts(self, message):
        return message["event_type"] == "volume.attach.end" and message["publisher_id"].startswith("volume.")

    def normalize(self, message, *, recorded_at):
        p = message["payload"]
        events = []
        for i, att in enumerate(p.get("volume_attachment") or ()):
            payload = VolumeAttached(p["volume_id"], att["instance_uuid"], p["size"], p.get("host"),
                                     att.get("attach_mode", "rw"))
            events.append(ev.envelope(payload, source=message["publisher_id"], message_id=message["message_id"],
                                      occurred_at=occurred_at(message), recorded_at=recorded_at, index=i,
                                      key=p["volume_id"]))
        if not events:
            return Outcome("irrelevant", (), "attached to nothing", message["event_type"])
        return Outcome("events", tuple(events), "", message["event_type"])


class CinderPlugin:
    name = "cinder"
    event_types = [VolumeAttached]
    normalizers = [AttachNormalizer()]
    upcasters = {"volume.attached": {1: _v1_to_v2}}


plugin = CinderPlugin()


@attrs.frozen(slots=True)
class Clash:
    TYPE = "instance.created"


class ClashingPlugin:
    name = "clash"
    event_types = [Clash]
    normalizers = []
'''

PYPROJECT = f'''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "0.1.0"
requires-python = ">=3.11"

[project.entry-points."eventmodel.plugins"]
cinder = "{MODULE}:plugin"
clash = "{MODULE}:ClashingPlugin"
missing = "{MODULE}:no_such_thing"
unimportable = "em_testplugin_no_such_module:plugin"

[tool.setuptools]
py-modules = ["{MODULE}"]
'''


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)


def _ensure_build_tools() -> None:
    """--no-build-isolation builds with this interpreter's setuptools (and wheel before setuptools 70.1)."""
    need = []
    try:
        import setuptools
        version = tuple(int(x) for x in setuptools.__version__.split(".")[:2])
    except ImportError:
        need.append("setuptools>=61")
        version = (0, 0)
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        need.append("wheel")
    if need:
        done = _pip("install", *need)
        assert done.returncode == 0, f"cannot install build tools {need}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / f"{MODULE}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    site = root / "site"
    _ensure_build_tools()
    done = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(src))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()


def _cinder_message(volume_id: str = "2f1bd4a0-9c55-4b0a-b1bb-6f9b8c1c5e11") -> dict:
    inner = {
        "message_id": "9d0b5ab4-2f3e-4c57-a1a4-7f7ff0c3f9d2",
        "publisher_id": "volume.host1",
        "event_type": "volume.attach.end",
        "priority": "INFO",
        "timestamp": "2026-11-25 15:31:37.996213",
        "payload": {
            "volume_id": volume_id,
            "size": 10,
            "host": "host1@lvm#lvm",
            "status": "in-use",
            "tenant_id": "6f70656e737461636b20342065766572",
            "volume_attachment": [
                {"instance_uuid": "178b0921-8f85-4257-88b6-2e743b5a975c", "attach_mode": "rw"},
            ],
        },
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


def test_installed_plugin_is_loaded_and_its_events_go_through_the_log(
    installed_plugin: Path, tmp_path: Path, samples_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dists = {d.metadata["Name"] for d in metadata.distributions(path=[str(installed_plugin)])}
    assert DIST in dists

    types = EventTypes.builtin()
    failures: list[PluginFailure] = []
    with caplog.at_level(logging.ERROR, logger="eventmodel.sources.plugins"):
        plugins = load_plugins(types, failures=failures)
    ours = [p for p in plugins if p.entry_point.startswith("cinder =")]
    assert len(ours) == 1 and ours[0].name == "cinder" and ours[0].distribution == f"{DIST} 0.1.0"
    assert types.get("volume.attached") is ours[0].event_types[0]
    # the broken ones are reported by entry point name, and skipped
    failed = {f.entry_point.split(" =")[0]: f.reason for f in failures}
    assert {"clash", "missing", "unimportable"} <= set(failed)
    assert "already registered" in failed["clash"]
    assert types.get("instance.created") is ev.InstanceCreated
    for name in ("clash", "missing", "unimportable"):
        assert any(name in r.getMessage() for r in caplog.records)

    normalizer = CompositeNormalizer(plugins, types=types)
    out = normalizer.normalize(json.dumps(_cinder_message()).encode(), recorded_at=RECORDED)
    assert out.status == "events", out.reason
    (env,) = out.events
    assert env.type == "volume.attached" and env.key == "2f1bd4a0-9c55-4b0a-b1bb-6f9b8c1c5e11"
    assert env.payload.instance_uuid == "178b0921-8f85-4257-88b6-2e743b5a975c"
    # the same message again: the same event id
    again = normalizer.normalize(_cinder_message(), recorded_at=RECORDED + 1)
    assert again.events[0].event_id == env.event_id

    # Nova still goes to Nova; what nobody knows is irrelevant
    nova_out = normalizer.normalize((samples_dir / "instance-power_off-end.json").read_bytes(), recorded_at=RECORDED)
    assert nova_out.events[0].type == "instance.state_changed"
    other = json.loads(json.loads(json.dumps(_cinder_message()))["oslo.message"])
    other["event_type"] = "volume.detach.start"
    assert normalizer.normalize(other, recorded_at=RECORDED).status == "irrelevant"

    codec = Codec(types)
    log = open_log(f"sqlite:///{tmp_path}/x.db", codec)
    try:
        log.append([env, *nova_out.events])
        records = [r for batch in log.read() for r in batch]
    finally:
        log.close()
    assert [r.envelope for r in records] == [env, *nova_out.events]
    assert type(records[0].envelope.payload).__name__ == "VolumeAttached"

    # an old record (schema 1) is upcast by the plugin's upcaster
    old = codec.to_dict(env)
    old["schema"] = 1
    del old["payload"]["mode"]
    old["payload"]["read_only"] = True
    assert codec.from_dict(old).payload.mode == "ro"

    # a process without the plugin still reads the log: the record is Unknown, not an error
    plain = open_log(f"sqlite:///{tmp_path}/x.db", Codec())
    try:
        first = next(iter(plain.read()))[0].envelope
    finally:
        plain.close()
    assert isinstance(first.payload, ev.Unknown) and first.type == "volume.attached"


def test_cli_normalize_uses_installed_plugins(installed_plugin: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eventmodel.cli.main import app

    path = tmp_path / "cinder.json"
    path.write_text(json.dumps(_cinder_message()))
    result = CliRunner().invoke(app, ["normalize", str(path)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[0])
    assert line["type"] == "volume.attached" and line["payload"]["size_gb"] == 10
    # without plugins the built-in Cinder normalizer has it
    result = CliRunner().invoke(app, ["normalize", "--no-plugins", str(path)])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["type"] == "volume.changed" and line["payload"]["volume"]["size_gb"] == 10
    assert line["payload"]["volume"]["attachments"][0]["server_id"] == "178b0921-8f85-4257-88b6-2e743b5a975c"


# ---------------------------------------------------------------------------
# Plugins given directly (no install): misbehaving normalizers
# ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Thing:
    TYPE = "test.thing"
    KIND = "thing"
    name: str


class _Accepting:
    def __init__(self, result: object = None, raise_in: str = "") -> None:
        self.result, self.raise_in = result, raise_in

    def accepts(self, message: dict) -> bool:
        if self.raise_in == "accepts":
            raise RuntimeError("boom in accepts")
        return message["event_type"].startswith("thing.")

    def normalize(self, message: dict, *, recorded_at: int) -> object:
        if self.raise_in == "normalize":
            raise KeyError("payload")
        return self.result


def _thing_env(type_name: str = "test.thing") -> ev.Envelope:
    env = ev.envelope(Thing("x"), source="thing.h", message_id="m", occurred_at=1, recorded_at=1, key="x")
    return msgspec.structs.replace(env, type=type_name)


def _composite(normalizer: object) -> CompositeNormalizer:
    types = EventTypes.builtin()
    types.register(Thing)
    return CompositeNormalizer([Plugin("things", (Thing,), (normalizer,))], types=types)


THING = {"event_type": "thing.made", "publisher_id": "thing.h", "payload": {}}


@pytest.mark.parametrize(
    ("normalizer", "status", "words"),
    [
        (_Accepting(raise_in="accepts"), "dead", "accepts() failed"),
        (_Accepting(raise_in="normalize"), "dead", "normalize() failed"),
        (_Accepting(result={"status": "events"}), "dead", "not an Outcome"),
        (_Accepting(result=Outcome("maybe")), "dead", "status 'maybe'"),
        (_Accepting(result=Outcome("events", ("not an envelope",))), "dead", "not an Envelope"),
        (_Accepting(result=Outcome("events", (_thing_env("test.unregistered"),))), "dead", "unregistered"),
        (_Accepting(result=Outcome("events", ())), "irrelevant", "no events"),
        (_Accepting(result=Outcome("irrelevant")), "irrelevant", "gave no reason"),
        (_Accepting(result=Outcome("events", (_thing_env(),))), "events", ""),
    ],
)
def test_misbehaving_plugin_normalizers(normalizer: object, status: str, words: str) -> None:
    out = _composite(normalizer).normalize(THING, recorded_at=RECORDED)
    assert out.status == status and words in out.reason
    assert out.event_type == "thing.made"


def test_nova_messages_never_reach_plugins(samples_dir: Path) -> None:
    class Greedy(_Accepting):
        def accepts(self, message: dict) -> bool:
            return True

    composite = _composite(Greedy(raise_in="normalize"))
    for name in ("instance-update.json", "aggregate-create-end.json", "service-update.json"):
        out = composite.normalize((samples_dir / name).read_bytes(), recorded_at=RECORDED)
        assert out.status != "dead", out.reason


def test_bad_input_is_dead_before_plugins() -> None:
    composite = _composite(_Accepting())
    assert composite.normalize(b"\xff\x00", recorded_at=RECORDED).status == "dead"
    letter = composite.dead_letter(b"\xff\x00", composite.normalize(b"\xff\x00"), source="amqp")
    assert letter.raw == b"\xff\x00" and letter.reason


class _EP:
    """A stand-in entry point."""

    def __init__(self, name: str, obj: object = None, exc: Exception | None = None) -> None:
        self.name, self.value, self.group, self._obj, self._exc = name, f"fake:{name}", "eventmodel.plugins", obj, exc

    def load(self) -> object:
        if self._exc is not None:
            raise self._exc
        return self._obj


def test_load_plugins_skips_broken_ones() -> None:
    class Good:
        name = "good"
        event_types = [Thing]
        normalizers = [_Accepting()]

    class Twice:
        event_types = [Thing, Thing]
        normalizers = []

    def factory() -> Good:
        return Good()

    types = EventTypes.builtin()
    failures: list[PluginFailure] = []
    eps = [
        _EP("import-error", exc=ImportError("no module named x")),
        _EP("empty", object()),
        _EP("bad-types", type("P", (), {"event_types": [int], "normalizers": []})),
        _EP("bad-normalizer", type("P", (), {"event_types": [], "normalizers": [object()]})),
        _EP("twice", Twice),
        _EP("factory", factory),
        _EP("factory", factory),  # the same name twice
        _EP("bad-upcasters", type("P", (), {"event_types": [], "normalizers": [_Accepting()], "upcasters": {"x": {}}})),
    ]
    plugins = load_plugins(types, entry_points=eps, failures=failures)  # type: ignore[arg-type]
    assert [p.name for p in plugins] == ["good"]
    assert types.get("test.thing") is Thing
    assert [f.entry_point.split(" =")[0] for f in failures] == [
        "import-error", "empty", "bad-types", "bad-normalizer", "twice", "factory", "bad-upcasters",
    ]
    assert all(f.reason for f in failures)
