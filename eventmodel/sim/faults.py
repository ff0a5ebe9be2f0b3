"""What goes wrong between the simulated Nova and its readers, and the delivery that applies it.

``Faults`` holds every rate: delivery faults (drop, duplicate, delay, reorder, far
redelivery), payload quirks (``updated_at`` null on a new instance's first
notifications, per-host clock skew) and API-read faults (a listing that omits a
server, minimal records for a down cell, ``''`` for "no availability zone").
``Faults()`` is a kind cloud (nothing goes wrong); ``Faults.nova_like()`` is as
unkind as real Nova, and is what the tests and the demo use.

``Delivery`` turns the notifications an operation emitted into what reaches the
bus, from its own RNG stream, so that the ground truth never depends on faults.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from eventmodel.errors import SimConfigError

#: counters a Delivery keeps in the sim's ``counters``
NOTIFICATION_COUNTERS = ("notifications", "emitted", "dropped", "duplicated", "delayed", "reordered", "redelivered")


def _probability(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise SimConfigError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _distance(_inst: Any, attribute: attrs.Attribute, value: tuple[int, int]) -> None:
    lo, hi = value
    if not 1 <= lo <= hi:
        raise SimConfigError(f"{attribute.name} must be (lo, hi) with 1 <= lo <= hi, got {value!r}")


def non_negative(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    """attrs validator: ``value >= 0``."""
    if value < 0:
        raise SimConfigError(f"{attribute.name} must be >= 0, got {value!r}")


def positive(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    """attrs validator: ``value >= 1``."""
    if value < 1:
        raise SimConfigError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.define
class Faults:
    """Rates of everything that goes wrong; all off by default (a kind cloud).

    Delivery, per notification: ``drop`` lost; ``duplicate`` delivered twice in a
    row (same bytes, same message_id); ``delay`` held back and released after
    1..``max_delay`` later notifications (or by ``flush()``); ``reorder`` swapped
    with the next notification (which is then not itself reordered);
    ``redeliver`` delivered once more far later, after ``redeliver_distance``
    (lo, hi) later notifications (a bridge that restarted before its ack).

    Payloads: ``null_updated_at`` is the share of boots whose notifications up to
    ``instance.create.start`` carry ``updated_at`` null (``created_at`` set), as
    Nova's do before the instance's first save. ``clock_skew`` is the share of
    compute hosts whose clock is off by a whole number of seconds within
    ±``max_skew_s`` (never 0); their saves' ``updated_at`` and their notification
    timestamps use it. API and conductor saves are on time. The skew of each host
    is fixed when the SimCloud is built.

    API reads, per full listing of servers: ``omit`` is the probability that a
    server is left out; ``down_cell`` the probability that one of ``cells`` cells
    (hosts ``i % cells``) is down, its servers then listed as minimal records
    (``PartialInstance``, status UNKNOWN). ``empty_az``: the API shows ``''`` for
    an instance without availability zone (shelve-offloaded) where notifications
    say null.
    """

    drop: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    delay: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)
    max_delay: int = attrs.field(default=5, validator=non_negative)
    redeliver: float = attrs.field(default=0.0, validator=_probability)
    redeliver_distance: tuple[int, int] = attrs.field(default=(100, 1000), converter=tuple, validator=_distance)
    null_updated_at: float = attrs.field(default=0.0, validator=_probability)
    clock_skew: float = attrs.field(default=0.0, validator=_probability)
    max_skew_s: int = attrs.field(default=2, validator=non_negative)
    omit: float = attrs.field(default=0.0, validator=_probability)
    down_cell: float = attrs.field(default=0.0, validator=_probability)
    cells: int = attrs.field(default=4, validator=positive)
    empty_az: bool = False

    @property
    def any(self) -> bool:
        """Whether any delivery fault is on (payload and API quirks do not count)."""
        return bool(self.drop or self.duplicate or self.delay or self.reorder or self.redeliver)

    @classmethod
    def kind(cls) -> Faults:
        """Nothing goes wrong: every notification arrives once, in order, every listing is whole."""
        return cls()

    @classmethod
    def nova_like(cls, **overrides: Any) -> Faults:
        """As unkind as real Nova, every quirk on; ``overrides`` set single rates.

        Lost, doubled, late and swapped notifications (a few in a hundred), far
        redeliveries, ``updated_at`` null on every boot's first notifications, every
        other compute host's clock off by up to 2 s, one server in a thousand
        missing from a listing, a down cell in one listing out of five, and ``''``
        for "no zone" in the API.
        """
        preset: dict[str, Any] = {
            "drop": 0.02,
            "duplicate": 0.01,
            "delay": 0.01,
            "reorder": 0.01,
            "redeliver": 0.005,
            "null_updated_at": 1.0,
            "clock_skew": 0.5,
            "max_skew_s": 2,
            "omit": 0.001,
            "down_cell": 0.2,
            "empty_az": True,
        }
        preset.update(overrides)
        return cls(**preset)

    def quiet_listing(self) -> Faults:
        """The same faults without the listing ones (omissions, down cells)."""
        return attrs.evolve(self, omit=0.0, down_cell=0.0)


class Delivery:
    """Applies the delivery faults to the notifications on their way to the bus.

    Held notifications (delayed, reordered, redelivered) carry a countdown of
    notifications that must go out before them; ``flush()`` releases them all,
    ``release(n)`` the first ``n`` held.
    """

    __slots__ = ("counters", "_held", "_rng", "_swap_pending")

    def __init__(self, rng: random.Random, counters: dict[str, int]) -> None:
        self._rng = rng
        self.counters = counters
        self._held: list[list] = []  # [countdown, bytes]
        self._swap_pending = False
        for name in NOTIFICATION_COUNTERS:
            counters.setdefault(name, 0)

    @property
    def held(self) -> int:
        """How many notifications are held back right now."""
        return len(self._held)

    def deliver(self, raw: list[bytes], fl: Faults) -> list[bytes]:
        """What reaches the bus of ``raw`` (in emission order) and of what was held."""
        c = self.counters
        c["notifications"] += len(raw)
        if not fl.any and not self._held:
            c["emitted"] += len(raw)
            return raw
        r = self._rng.random
        out: list[bytes] = []
        lo, hi = fl.redeliver_distance
        for m in raw:
            if fl.drop and r() < fl.drop:
                c["dropped"] += 1
                continue
            if fl.redeliver and r() < fl.redeliver:
                # counted down like the others, released after lo..hi later notifications
                self._held.append([lo + int(r() * (hi - lo + 1)), m])
                c["redelivered"] += 1
            copies = 1
            if fl.duplicate and r() < fl.duplicate:
                copies = 2
                c["duplicated"] += 1
            for _ in range(copies):
                if fl.delay and r() < fl.delay:
                    self._held.append([1 + int(r() * max(1, fl.max_delay)), m])
                    c["delayed"] += 1
                elif fl.reorder and not self._swap_pending and r() < fl.reorder:
                    # held until the next notification goes out, which is not itself reordered
                    self._held.append([1, m])
                    self._swap_pending = True
                    c["reordered"] += 1
                else:
                    self._out(out, m)
        c["emitted"] += len(out)
        return out

    def flush(self) -> list[bytes]:
        """Release every held notification, in the order they were held."""
        out = [m for _, m in self._held]
        self._held = []
        self._swap_pending = False
        self.counters["emitted"] += len(out)
        return out

    def release(self, n: int | None = None) -> list[bytes]:
        """Release up to ``n`` held notifications (every one when None, as :meth:`flush`),
        in the order they were held; the others stay held, counting down as before."""
        if n is None:
            return self.flush()
        if n < 0:
            raise ValueError("n must be >= 0")
        out = [m for _, m in self._held[:n]]
        self._held = self._held[n:]
        if not self._held:
            self._swap_pending = False
        self.counters["emitted"] += len(out)
        return out

    def _out(self, out: list[bytes], m: bytes) -> None:
        out.append(m)
        self._swap_pending = False
        if self._held:
            keep = []
            for h in self._held:
                h[0] -= 1
                if h[0] <= 0:
                    out.append(h[1])
                else:
                    keep.append(h)
            self._held = keep
