"""What a demo run says as it goes (:class:`DemoWatch`): the CLI prints it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from eventmodel.demo.report import SyncRound


class DemoWatch:
    """Told the run's progress; this one says nothing (the CLI's prints)."""

    def cloud_ready(self, built_s: float, url: str) -> None:
        """The cloud was built in ``built_s`` seconds and its APIs are served at ``url``."""

    def synced(self, sync: SyncRound) -> None:
        """A full sync ended."""

    @contextlib.contextmanager
    def operating(self) -> Iterator[Callable[[int, int, float], None]]:
        """Around the timed operations; yields ``update(operations, events, seconds)``."""
        yield lambda ops, events, elapsed: None
