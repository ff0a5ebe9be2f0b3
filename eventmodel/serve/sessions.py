"""Browser sessions and the guess throttle of ``eventmodel serve``'s token gate.

- :class:`Sessions`: server-side sessions for the page. ``POST /login`` with the right
  token makes one: a random id (the cookie holds only that id, never the token), valid
  for a fixed time (the cookie's ``Max-Age`` says the same) and revoked at once by
  ``POST /logout``. The table is bounded; a restart forgets every session.
- :class:`Throttle`: a token bucket per client address for credential guesses (the
  login form and wrong bearer tokens or cookies): ``burst`` at once, then one per
  ``1/rate`` seconds; past it, 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

import attrs


@attrs.define
class Sessions:
    """Session id → expiry (monotonic seconds); at most ``limit`` live (oldest dropped)."""

    seconds: float
    limit: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _live: OrderedDict[str, float] = attrs.field(factory=OrderedDict)

    def open(self) -> str:
        """A new session id, valid for :attr:`seconds`."""
        self._prune()
        sid = secrets.token_urlsafe(32)
        self._live[sid] = self.clock() + self.seconds
        while len(self._live) > self.limit:
            self._live.popitem(last=False)
        return sid

    def valid(self, sid: str) -> bool:
        """Whether ``sid`` names a live session (an expired one is forgotten)."""
        until = self._live.get(sid)
        if until is None:
            return False
        if until <= self.clock():
            self._live.pop(sid, None)
            return False
        return True

    def close(self, sid: str) -> bool:
        """Revoke ``sid``; whether it was live."""
        return self._live.pop(sid, None) is not None

    def _prune(self) -> None:
        now = self.clock()
        while self._live:
            sid, until = next(iter(self._live.items()))
            if until > now:
                break
            self._live.popitem(last=False)


@attrs.define
class Throttle:
    """A token bucket per client: ``burst`` attempts at once, refilled at ``rate`` per second.
    At most ``clients`` buckets are kept (the least recently used dropped)."""

    rate: float = 0.2
    burst: int = 10
    clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, tuple[float, float]] = attrs.field(factory=OrderedDict)

    def wait(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now); spends nothing."""
        level, at = self._buckets.get(client, (float(self.burst), self.clock()))
        level = min(float(self.burst), level + (self.clock() - at) * self.rate)
        return 0.0 if level >= 1.0 else max(0.001, (1.0 - level) / self.rate)

    def take(self, client: str) -> float:
        """Spend one attempt of ``client``: 0 if allowed, else the seconds until the next one."""
        now = self.clock()
        level, at = self._buckets.pop(client, (float(self.burst), now))
        level = min(float(self.burst), level + (now - at) * self.rate)
        if level < 1.0:
            self._buckets[client] = (level, now)
            return max(0.001, (1.0 - level) / self.rate)
        self._buckets[client] = (level - 1.0, now)
        while len(self._buckets) > self.clients:
            self._buckets.popitem(last=False)
        return 0.0


def retry_after(seconds: float) -> bytes:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))).encode()
