"""Time as integers: microseconds since the Unix epoch, UTC."""

from __future__ import annotations

import time
from datetime import datetime, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_us() -> int:
    """The current wall-clock time in µs."""
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_time(text: str) -> int:
    """Parse ISO 8601 or Nova's naive ``2026-11-25 15:31:37.996213`` (UTC) into µs.

    Raises ValueError with the offending text when it is not a time.
    """
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        return to_us(datetime.fromisoformat(s))
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r}") from exc


def format_time(us: int) -> str:
    """µs → ISO 8601 UTC with a trailing Z."""
    dt = datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def floor_second(us: int) -> int:
    return us - us % 1_000_000
