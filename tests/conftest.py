"""Fixtures shared by every test. Service fixtures live in tests/fixtures/ (one module each)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventmodel.codec import Codec

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.rabbitmq"]

ROOT = Path(__file__).resolve().parent.parent
#: Nova's notification samples travel with the project (tests/data/…/ORIGIN.md)
SAMPLES = Path(os.environ.get("EVENTMODEL_SAMPLES", ROOT / "tests" / "data" / "nova-notification-samples"))


@pytest.fixture
def codec() -> Codec:
    return Codec()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/events.db"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        raise RuntimeError(f"Nova notification samples not found at {SAMPLES} (set EVENTMODEL_SAMPLES)")
    return SAMPLES
