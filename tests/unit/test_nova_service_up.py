"""A compute service's ``up`` from a service notification, as Nova's servicegroup DB
driver decides it: not forced down and ``abs(timestamp - last_seen_up) <=
service_down_time``, the notification's own timestamp standing for "now"; without a
timestamp or a heartbeat, ``not forced_down``. And a null or '' zone is None (not known)."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eventmodel import events as ev
from eventmodel.clock import parse_time
from eventmodel.sources.amqp import default_normalizer
from eventmodel.sources.nova import NovaNormalizer, nova_time
from eventmodel.sources.plugins import CompositeNormalizer

SECOND = 1_000_000
RECORDED = 1_795_000_000_000_000
#: the notification's timestamp (Nova's clock) in the tests below
NOW = parse_time("2026-11-25 15:31:37.996213")

_ROOT = Path(__file__).resolve().parent.parent
_SAMPLES = _ROOT / "data" / "nova-notification-samples"


def _sample(name: str = "service-update.json") -> dict:
    return json.loads((_SAMPLES / name).read_bytes())


UPDATE = _sample()
CREATE = _sample("service-create.json")


def _iso(us: int) -> str:
    """µs → the ISO form Nova's DateTimeField serializes last_seen_up in."""
    return datetime.fromtimestamp(us / SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _message(sample: dict, *, timestamp: int | None = NOW, **fields: object) -> dict:
    """``sample`` as the inner oslo message, its payload fields changed by ``fields``."""
    msg = copy.deepcopy(sample)
    msg["payload"]["nova_object.data"].update(fields)
    msg["message_id"] = "5c7e9d2a-3b1f-4e8a-9c6d-0f1e2d3c4b5a"
    if timestamp is not None:
        msg["timestamp"] = nova_time(timestamp)
    return msg


def _service(msg: dict, normalizer: NovaNormalizer | None = None, recorded_at: int = RECORDED) -> ev.ComputeService:
    out = (normalizer or NovaNormalizer()).normalize(msg, recorded_at=recorded_at)
    assert out.status == "events", out.reason
    return out.events[0].payload.service


def _rule(forced_down: bool, now: int, heartbeat: int, down_time: float) -> bool:
    return not forced_down and abs(now - heartbeat) <= round(down_time * SECOND)


down_times = st.integers(1, 600) | st.floats(0.001, 600, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    forced_down=st.booleans(),
    disabled=st.booleans(),
    offset=st.integers(-1000 * SECOND, 1000 * SECOND),
    down_time=down_times,
    name=st.sampled_from(["service-update.json", "service-create.json"]),
)
def test_up_follows_novas_rule(forced_down: bool, disabled: bool, offset: int, down_time: float, name: str) -> None:
    """last_seen_up ``offset`` µs before the notification's timestamp (after it when
    negative: Nova counts a heartbeat from the future by its distance too)."""
    heartbeat = NOW - offset
    msg = _message(UPDATE if name == "service-update.json" else CREATE,
                   forced_down=forced_down, disabled=disabled, last_seen_up=_iso(heartbeat))
    svc = _service(msg, NovaNormalizer(service_down_time=down_time))
    assert svc.forced_down is forced_down and svc.disabled is disabled
    assert svc.up is _rule(forced_down, NOW, heartbeat, down_time)
    assert svc.version == heartbeat - heartbeat % SECOND  # the version is still the heartbeat, floored


@pytest.mark.parametrize(
    ("offset", "up"),
    [
        (0, True),
        (60 * SECOND, True),  # exactly service_down_time: still up (Nova's <=)
        (60 * SECOND + 1, False),
        (-60 * SECOND, True),  # a heartbeat from the future (skew) within the time: up
        (-60 * SECOND - 1, False),  # ... beyond it: down, as abs(elapsed) in Nova
        (3600 * SECOND, False),
    ],
)
def test_boundaries_at_the_default_60_s(offset: int, up: bool) -> None:
    assert _service(_message(UPDATE, last_seen_up=_iso(NOW - offset))).up is up


@settings(max_examples=100, deadline=None)
@given(forced_down=st.booleans(), now=st.integers(0, 4_000_000_000 * SECOND), down_time=down_times)
def test_null_last_seen_up_is_not_forced_down(forced_down: bool, now: int, down_time: float) -> None:
    svc = _service(_message(UPDATE, timestamp=now, forced_down=forced_down, last_seen_up=None),
                   NovaNormalizer(service_down_time=down_time))
    assert svc.up is (not forced_down)
    assert svc.version == ev.LOWEST_VERSION


@settings(max_examples=100, deadline=None)
@given(forced_down=st.booleans(), offset=st.integers(-10**6 * SECOND, 10**6 * SECOND),
       recorded_at=st.integers(0, 4_000_000_000 * SECOND))
def test_no_timestamp_is_not_forced_down(forced_down: bool, offset: int, recorded_at: int) -> None:
    """A notification without a timestamp (a bare sample): our clock never decides up."""
    msg = _message(UPDATE, timestamp=None, forced_down=forced_down, last_seen_up=_iso(recorded_at - offset))
    assert "timestamp" not in msg
    assert _service(msg, recorded_at=recorded_at).up is (not forced_down)


def test_the_bare_sample_is_up() -> None:
    """The sample itself: no timestamp, forced_down false (its last_seen_up is of 2012)."""
    assert _service(copy.deepcopy(UPDATE)).up is True


def test_recorded_at_does_not_change_up() -> None:
    """Replaying the same notification later gives the same up: only Nova's times count."""
    msg = _message(UPDATE, last_seen_up=_iso(NOW - 10 * SECOND))
    stale = _message(UPDATE, last_seen_up=_iso(NOW - 600 * SECOND))
    for recorded_at in (NOW, NOW + 3600 * SECOND, NOW + 365 * 86400 * SECOND):
        assert _service(msg, recorded_at=recorded_at).up is True
        assert _service(stale, recorded_at=recorded_at).up is False


def test_service_comes_back_up_when_forced_down_is_cleared() -> None:
    """``service.update`` forcing the service down, then one clearing forced_down with a
    last_seen_up within 60 s of its timestamp: the second says up again."""
    down = _message(UPDATE, forced_down=True, last_seen_up=_iso(NOW - 5 * SECOND))
    out = NovaNormalizer().normalize(down, recorded_at=RECORDED)
    assert out.events[0].payload.change == "forced_down"
    assert out.events[0].payload.service.up is False
    later = NOW + 30 * SECOND
    back = _message(UPDATE, timestamp=later, forced_down=False, last_seen_up=_iso(later - 20 * SECOND))
    out = NovaNormalizer().normalize(back, recorded_at=RECORDED)
    assert out.events[0].payload.change == "enabled"
    svc = out.events[0].payload.service
    assert (svc.forced_down, svc.up) == (False, True)


@pytest.mark.parametrize("zone", [None, ""])
@pytest.mark.parametrize("name", ["service-update.json", "service-create.json", "service-delete.json"])
def test_null_or_empty_zone_is_none(name: str, zone: str | None) -> None:
    out = NovaNormalizer().normalize(_message(_sample(name), availability_zone=zone), recorded_at=RECORDED)
    assert out.status == "events", out.reason
    assert out.events[0].payload.service.availability_zone is None


def test_a_zone_is_kept() -> None:
    assert _service(_message(UPDATE, availability_zone="az1")).availability_zone == "az1"


def test_heartbeat_falls_back_to_updated_at_then_created_at() -> None:
    """As Nova's is_up: last_seen_up, else updated_at, else created_at (a payload
    version that carries them; ServiceStatusPayload 1.1 does not)."""
    fresh, stale = _iso(NOW - 10 * SECOND), _iso(NOW - 600 * SECOND)
    assert _service(_message(UPDATE, last_seen_up=None, updated_at=fresh, created_at=stale)).up is True
    assert _service(_message(UPDATE, last_seen_up=None, updated_at=stale, created_at=fresh)).up is False
    assert _service(_message(UPDATE, last_seen_up=None, updated_at=None, created_at=stale)).up is False
    assert _service(_message(UPDATE, last_seen_up=fresh, updated_at=stale)).up is True


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.nan, math.inf, -math.inf, "60", None, True])
def test_service_down_time_must_be_positive_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="service_down_time"):
        NovaNormalizer(service_down_time=bad)  # type: ignore[arg-type]


def test_service_down_time_defaults_to_60_and_reaches_every_builder() -> None:
    assert NovaNormalizer().service_down_time == 60
    msg = _message(UPDATE, last_seen_up=_iso(NOW - 90 * SECOND))
    assert _service(msg).up is False
    assert _service(msg, NovaNormalizer(service_down_time=120)).up is True
    composite = CompositeNormalizer.from_entry_points(service_down_time=120)
    assert composite.nova.service_down_time == 120
    assert composite.normalize(msg, recorded_at=RECORDED).events[0].payload.service.up is True
    built = default_normalizer(service_down_time=120)
    assert built.normalize(msg, recorded_at=RECORDED).events[0].payload.service.up is True
    with pytest.raises(ValueError, match="service_down_time"):
        default_normalizer(service_down_time=0)


def test_bridge_cli_has_the_option() -> None:
    from eventmodel.cli.main import app

    result = CliRunner().invoke(app, ["bridge", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--service-down-time" in result.output and "EVENTMODEL_SERVICE_DOWN_TIME" in result.output
    result = CliRunner().invoke(app, ["bridge", "--service-down-time", "0"])
    assert result.exit_code == 2  # refused before anything is opened
