"""One error tree: every exception class the two packages define derives from
``eventmodel.Error`` and is drawn in :mod:`eventmodel.errors`; the operator's own mistakes
(a bad URL, time, target or fault spec) are ``ConfigError`` and still ``ValueError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest

import eventmodel
import projections
from eventmodel import errors
from eventmodel.clock import parse_time
from eventmodel.sim.faults import Faults
from eventmodel.sim.http_faults import HttpFault
from eventmodel.sources.amqp.config import BridgeConfig, Target
from eventmodel.sources.nova import check_service_down_time

#: (what is provoked, how, the class expected, the built-in base callers relied on)
CASES: list[tuple[str, Callable[[Path], object], type[Exception], type[Exception]]] = [
    ("a log URL without a scheme", lambda t: eventmodel.open_log("events.db"), eventmodel.LogUrlError,
     RuntimeError),
    ("an unknown SQLite URL option", lambda t: eventmodel.open_log(f"sqlite:///{t}/x.db?colour=red"),
     eventmodel.LogUrlError, RuntimeError),
    ("an unknown Kafka URL option", lambda t: eventmodel.open_log("kafka://127.0.0.1:1/t?colour=red"),
     eventmodel.LogUrlError, RuntimeError),
    ("a Kafka URL without a topic", lambda t: eventmodel.open_log("kafka://127.0.0.1:1/"), eventmodel.LogUrlError,
     RuntimeError),
    ("a missing log file", lambda t: eventmodel.open_log(f"sqlite:///{t}/none.db", create=False),
     eventmodel.LogError, RuntimeError),
    ("a malformed position", lambda t: eventmodel.Position.parse("0:1,x"), eventmodel.ConfigError, ValueError),
    ("a position of missing partitions", lambda t: eventmodel.Position.parse("1:5"), eventmodel.ConfigError,
     ValueError),
    ("a service_down_time of zero", lambda t: check_service_down_time(0), eventmodel.ConfigError, ValueError),
    ("a malformed time", lambda t: parse_time("yesterday"), eventmodel.ConfigError, ValueError),
    ("a bad AMQP target", lambda t: Target.parse("nova"), eventmodel.ConfigError, ValueError),
    ("a bridge without targets", lambda t: BridgeConfig(targets=()), eventmodel.ConfigError,
     ValueError),
    ("a bad sim HTTP fault kind", lambda t: HttpFault.parse("melt:service=compute"), eventmodel.SimConfigError,
     ValueError),
    ("a sim HTTP fault option that is not a number", lambda t: HttpFault.parse("stall:stall_s=long"),
     eventmodel.SimConfigError, ValueError),
    ("a sim fault rate above 1", lambda t: Faults(drop=2.0), eventmodel.SimConfigError, ValueError),
]


@pytest.mark.parametrize(("what", "provoke", "cls", "builtin"), CASES, ids=[c[0] for c in CASES])
def test_a_config_mistake_is_caught_by_the_root_by_its_area_and_by_its_old_base(
        tmp_path: Path, what: str, provoke: Callable[[Path], object], cls: type[Exception],
        builtin: type[Exception]) -> None:
    with pytest.raises(eventmodel.Error) as caught:
        provoke(tmp_path)
    assert isinstance(caught.value, cls), f"{what}: {type(caught.value).__mro__}"
    assert isinstance(caught.value, builtin), f"{what}: no longer a {builtin.__name__}"
    assert str(caught.value), f"{what}: no message"


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in the two packages, private names aside (the
    Watcher adapter's modules need python-watcher, which the test environment has)."""
    found = []
    for pkg in (eventmodel, projections):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith("__main__") or ".page" in info.name:
                continue
            module = importlib.import_module(info.name)
            found += [c for n, c in vars(module).items() if inspect.isclass(c) and issubclass(c, BaseException)
                      and c.__module__ == info.name and not n.startswith("_")]
    return found


def test_every_exception_class_of_the_project_derives_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) > 25, [c.__name__ for c in classes]
    assert [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, errors.Error)] == []


def test_every_exception_class_is_drawn_in_the_errors_module() -> None:
    doc = errors.__doc__ or ""
    assert [c.__name__ for c in _exception_classes() if c.__name__ not in doc] == []
    assert eventmodel.Error is errors.Error
