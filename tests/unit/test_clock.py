"""clock.parse_time against datetime's own arithmetic, on the forms the sources meet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventmodel.clock import parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


offsets = st.one_of(st.none(), st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), offsets,
       st.sampled_from(["T", " "]), st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
       st.sampled_from(["", " ", "\t"]))
def test_parse_time_is_exact(dt: datetime, tz: timezone | None, sep: str, spec: str, pad: str) -> None:
    dt = dt.replace(tzinfo=tz)
    text = dt.isoformat(sep=sep, timespec=spec)
    if spec != "auto":
        dt = datetime.fromisoformat(text)  # the digits the text keeps
    assert parse_time(pad + text + pad) == _reference(dt)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.sampled_from(["", " "]))
def test_a_trailing_z_is_utc(dt: datetime, pad: str) -> None:
    """Nova's API form ``2026-11-25T10:00:00Z``, and with a fraction."""
    for text in (dt.isoformat(timespec="seconds") + "Z", dt.isoformat() + "Z"):
        assert parse_time(pad + text + pad) == _reference(datetime.fromisoformat(text[:-1]))


@pytest.mark.parametrize("text", ["", "Z", "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z", "yesterday",
                                  "2026-11-25T10:00:00z", "2026-02-30 10:00:00"])
def test_what_is_not_a_time_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text)
