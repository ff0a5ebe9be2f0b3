"""The in-memory log the pure fold tests use: :mod:`eventmodel.testing`'s, re-exported."""

from eventmodel.testing import MemLog, interleave

__all__ = ["MemLog", "interleave"]
