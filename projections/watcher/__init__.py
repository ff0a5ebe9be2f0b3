"""Watcher on the projection: a ModelRoot-compatible view and exact conversions (ADR 0013).

Nothing here imports Watcher until it is used; without python-watcher installed the
first use raises :class:`~projections.watcher.view.WatcherMissing` with the install hint.
"""

from projections.watcher.view import INSTALL_HINT, WatcherMissing, WatcherView

__all__ = ["INSTALL_HINT", "WatcherMissing", "WatcherView"]
