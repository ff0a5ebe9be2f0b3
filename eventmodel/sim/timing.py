"""Simulated time: operations in phases of whole seconds, and the compute hosts' clocks.

An operation starts in a new whole second (:meth:`PhaseClock.begin`), more than one
second after the previous one ended; each later save in it is a new *phase*, lo..hi
whole seconds later (:meth:`PhaseClock.phase`). Every save in a phase stamps the
instance with the phase's second (Nova's ``updated_at`` has one-second resolution)
on the saver's clock: a compute host's may be off by a fixed number of whole seconds
(``Faults.clock_skew``), API and conductor clocks are not. ``now`` is the µs of the
latest notification, which :meth:`PhaseClock.tick` moves on within the phase's second.
"""

from __future__ import annotations

import random

from eventmodel.sim.faults import Faults
from eventmodel.sim.truth import GroundTruth, S


class PhaseClock:
    """The sim's clock (``truth.clock_us`` is where the last operation ended)."""

    __slots__ = ("now", "rng", "sec", "skew", "skew_pub", "truth")

    def __init__(self, truth: GroundTruth, rng: random.Random, skew: dict[str, int]) -> None:
        self.truth = truth
        self.rng = rng
        self.sec = truth.clock_us
        self.now = truth.clock_us
        #: host -> offset of its clock in µs (whole seconds)
        self.skew = skew
        self.skew_pub = {"nova-compute:" + h: v for h, v in skew.items() if v}

    @staticmethod
    def draw_skew(hosts: list[str], faults: Faults, seed: int) -> dict[str, int]:
        """Each compute host's clock offset (µs): 0 for most, ±1..max_skew_s s for a share."""
        srng = random.Random(f"eventmodel-sim:{seed}:clocks")
        out: dict[str, int] = {}
        for h in hosts:
            skewed, r = srng.random(), srng.random()
            off = 0
            if faults.max_skew_s and skewed < faults.clock_skew:
                off = 1 + int(r * faults.max_skew_s)  # 1..max
                off = off if srng.random() < 0.5 else -off
            out[h] = off * S
        return out

    def begin(self) -> int:
        """Start an operation in a new second, more than one second after the previous one ended."""
        rng = self.rng
        self.sec = self.truth.clock_us // S * S + (2 + int(rng.random() * 3)) * S
        self.now = self.sec + 1_000 + int(rng.random() * 150_000)
        return self.sec

    def phase(self, lo: int, hi: int) -> int:
        """A later save in the same operation: lo..hi whole seconds later."""
        rng = self.rng
        self.sec = self.now // S * S + (lo + int(rng.random() * (hi - lo + 1))) * S
        self.now = self.sec + 1_000 + int(rng.random() * 150_000)
        return self.sec

    def end(self) -> None:
        """The operation is over: the sim's time moves to its last notification."""
        self.truth.clock_us = self.now

    def at(self, pub: str) -> int:
        """``updated_at`` of a save by ``pub`` in the current phase: the phase's second on
        the saver's clock (a compute host's may be skewed; API and conductor are not)."""
        return self.sec + self.skew_pub.get(pub, 0)

    def tick(self) -> int:
        """The time of the next notification in this phase (stays within its second)."""
        self.now = min(self.now + 300 + int(self.rng.random() * 40_000), self.sec + 999_999)
        return self.now

    def stamp(self, pub: str) -> int:
        """A notification's ``timestamp``: now on the publisher's clock."""
        return self.now + self.skew_pub.get(pub, 0)
