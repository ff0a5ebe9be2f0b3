"""Helpers shared by the command modules: opening logs with clear errors, progress bars."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eventmodel.clock import parse_time
from eventmodel.codec import Codec
from eventmodel.log import EventLog, LogError, Position, open_log

console = Console()
err = Console(stderr=True)

LOG_ENV = "EVENTMODEL_LOG"


def log_option(default: str | None = None) -> object:
    return typer.Option(default, "--log", envvar=LOG_ENV,
                        help="Log URL: sqlite:///file.db (embedded) or kafka://host:9092/topic.")


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module already imported without a spec (a test's stand-in)
        return sys.modules.get(module) is not None


def require_extra(extra: str, *modules: str, what: str) -> None:
    """Exit with one clear line when an optional integration is not installed (ADR 0015)."""
    missing = [m for m in modules if not _importable(m)]
    if missing:
        raise fail(f"{what} needs the {extra} extra (missing: {', '.join(missing)}): "
                   f"pip install 'eventmodel[{extra}]'")


def open_or_fail(url: str | None, *, create: bool = False, codec: Codec | None = None) -> EventLog:
    """Open a log for a command; a clear error instead of a traceback. Reading commands
    never create an embedded log file; writing ones (bridge, sync) pass ``create``."""
    if not url:
        raise fail(f"no log given: pass --log URL or set {LOG_ENV}")
    try:
        return open_log(url, codec, create=create)
    except LogError as exc:
        raise fail(str(exc)) from None


def parse_position(text: str | None) -> Position | None:
    if text is None:
        return None
    try:
        return Position.parse(text)
    except ValueError as exc:
        raise fail(str(exc)) from None


def parse_when(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise fail(f"{exc} (use ISO 8601, e.g. 2026-11-25T15:31:37Z)") from None


class Advance:
    """What :func:`progress` yields: call it with a count; ``set_total`` when known."""

    def __init__(self, bar: Progress | None = None, task: object = None) -> None:
        self.bar, self.task = bar, task

    def __call__(self, n: int) -> None:
        if self.bar is None:
            return
        self.bar.update(self.task, advance=n)
        t = self.bar.tasks[0]
        if t.elapsed:
            self.bar.update(self.task, rate=f"{t.completed / t.elapsed:,.0f}/s")

    def set_total(self, total: int | None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=total)


@contextlib.contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Advance]:
    """A progress bar on stderr (transient); yields an :class:`Advance`."""
    if not enabled:
        yield Advance()
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=True,
    ) as bar:
        yield Advance(bar, bar.add_task(description, total=total, rate=""))
