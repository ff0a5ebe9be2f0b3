"""clock.parse_time on the forms the sources meet, beside what it replaced, in one run
(these machines are noisy: interleaved rounds, the best of each).

    python -m tests.bench.bench_clock

- ``parse_time``: one ``fromisoformat`` call, then the epoch of the same kind
  subtracted;
- ``before``: the previous parse_time (strip, Z rewritten as +00:00, a naive time
  given UTC with ``datetime.replace``);
- ``hour cache``: the per-hour cache the server converter kept for Nova's API form
  (``...T10:00:00Z`` only).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from eventmodel.clock import parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FORMS = {
    "API    2026-11-25T10:37:12Z": "2026-11-25T10:37:12Z",
    "notif. 2026-11-25 15:31:37.996213": "2026-11-25 15:31:37.996213",
    "offset 2026-11-25T10:37:12.5+02:00": "2026-11-25T10:37:12.5+02:00",
}


def before(text: str) -> int:
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    d = dt - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def hour_cache() -> Callable[[str], int]:
    hours: dict[str, int] = {}

    def time(text: str) -> int:
        if len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[13] == ":" and text[16] == ":":
            hour = text[:13]
            base = hours.get(hour)
            if base is None:
                base = hours[hour] = before(hour + ":00:00Z")
            minutes, seconds = text[14:16], text[17:19]
            if minutes.isdigit() and seconds.isdigit():
                return base + (int(minutes) * 60 + int(seconds)) * 1_000_000
        return before(text)

    return time


def main() -> None:
    cached = hour_cache()
    ways: dict[str, Callable[[str], int]] = {"parse_time": parse_time, "before": before, "hour cache": cached}
    best: dict[tuple[str, str], float] = {}
    number = 5000
    for _ in range(30):
        for form, text in FORMS.items():
            for name, f in ways.items():
                assert f(text) == before(text)
                t = timeit.timeit(lambda f=f, text=text: f(text), number=number) / number
                best[form, name] = min(best.get((form, name), t), t)
    print(f"{'ns per call':36s}" + "".join(f"{name:>12s}" for name in ways))
    for form in FORMS:
        print(f"{form:36s}" + "".join(f"{best[form, name] * 1e9:12.0f}" for name in ways))


if __name__ == "__main__":
    main()
