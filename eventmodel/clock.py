"""Time as integers: microseconds since the Unix epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from eventmodel.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)


def now_us() -> int:
    """The current wall-clock time in µs."""
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    """A datetime in µs; a naive one is UTC."""
    # subtracting the epoch of the same kind: datetime.replace costs more than the parse
    delta = dt - (_EPOCH_NAIVE if dt.tzinfo is None else _EPOCH)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_time(text: str) -> int:
    """Parse ISO 8601 or Nova's naive ``2026-11-25 15:31:37.996213`` (UTC) into µs.

    Raises ValueError with the offending text when it is not a time.
    """
    try:
        # the common forms (Nova's API ``...T10:00:00Z``, its notifications' naive
        # form) in one call: fromisoformat takes a trailing Z since Python 3.11
        dt = datetime.fromisoformat(text)
    except ValueError:
        s = text.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError as exc:
            raise ConfigError(f"not a time: {text!r}") from exc
    return to_us(dt)


def format_time(us: int) -> str:
    """µs → ISO 8601 UTC with a trailing Z."""
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def floor_second(us: int) -> int:
    return us - us % 1_000_000
