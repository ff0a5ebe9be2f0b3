"""Shared by the tests of the Cinder and Ironic normalizers: a notification corpus
(``tests/data/<name>/``: wire envelopes and ``expected.json``), the check every outcome
passes, and JSON values for hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

from eventmodel.codec import Codec
from eventmodel.sources.nova import Outcome

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = 1_795_000_000_000_000

_codec = Codec()

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)


class Corpus:
    """The files of ``tests/data/<name>/`` and what each must become."""

    def __init__(self, name: str) -> None:
        self.dir = DATA / name
        self.expected: dict[str, str] = json.loads((self.dir / "expected.json").read_text())

    def raw(self, name: str) -> bytes:
        return (self.dir / f"{name}.json").read_bytes()

    def inner(self, name: str) -> dict:
        """The inner message of a file (a fresh copy)."""
        return json.loads(json.loads(self.raw(name))["oslo.message"])

    def check_file(self, name: str, normalizers: tuple) -> None:
        """``name`` becomes what ``expected.json`` says through each normalizer, never dead;
        every file of the corpus is listed there."""
        for normalizer in normalizers:
            out = check(normalizer.normalize(self.raw(name), recorded_at=RECORDED))
            assert out.status != "dead", out.reason
            assert (out.events[0].type if out.events else out.status) == self.expected[name]
        assert len(self.expected) == len(list(self.dir.glob("*.json"))) - 1  # all but expected.json


def wire(inner: dict) -> bytes:
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def check(out: Outcome) -> Outcome:
    """One event that the log stores and reads back as it is, or none and a reason."""
    assert isinstance(out, Outcome) and out.status in ("events", "irrelevant", "dead")
    if out.status == "events":
        assert len(out.events) == 1 and not out.reason
        assert _codec.decode(_codec.encode(out.events[0])) == out.events[0]
    else:
        assert out.reason and out.events == ()
    return out
