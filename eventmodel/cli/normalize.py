"""``eventmodel normalize FILE...``: show what notifications become, without a log.

Each FILE (``-`` is standard input) holds one JSON document — an oslo.messaging wire
envelope, an inner notification or a bare sample, from Nova, Cinder or Ironic (or a
plugin's service) — a JSON array of them, or JSON lines. One line is printed per typed
event (the record as the log would store it), or one line per notification that
became none::

    {"file": "x.json", "status": "irrelevant", "event_type": "aggregate.create.end", "reason": "..."}

The exit code is 0 when nothing was dead, 1 when something was, 2 for a usage error
(e.g. a missing file).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from eventmodel.clock import parse_time
from eventmodel.codec import Codec, EventTypes
from eventmodel.sources.nova import DEAD, EVENTS, Outcome
from eventmodel.sources.plugins import CompositeNormalizer, load_plugins

_encode = msgspec.json.Encoder().encode


def documents(data: bytes) -> list[tuple[int | None, Any]]:
    """Split a file's bytes into (line number or None, document) pairs.

    One JSON document (object → itself, array → its items), else JSON lines when the
    first non-blank line parses on its own, else the whole content as one (broken)
    document, so that the normalizer reports why it is not JSON.
    """
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        pass
    else:
        if isinstance(doc, list):
            return [(i + 1, item) for i, item in enumerate(doc)]
        return [(None, data)]
    lines = data.split(b"\n")
    first = next((ln for ln in lines if ln.strip()), b"")
    try:
        msgspec.json.decode(first)
    except msgspec.DecodeError:
        return [(None, data)]
    return [(n, ln) for n, ln in enumerate(lines, 1) if ln.strip()]


def _recorded_at(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return parse_time(text)


def register(app: typer.Typer) -> None:
    @app.command("normalize")
    def normalize(
        files: Annotated[
            list[str],
            typer.Argument(metavar="FILE", help="Notification files (JSON document, array or JSON lines); - for stdin."),
        ],
        recorded_at: Annotated[
            str | None,
            typer.Option("--recorded-at", help="Stamp events with this time (µs or ISO 8601) instead of now."),
        ] = None,
        plugins: Annotated[
            bool, typer.Option("--plugins/--no-plugins", help="Load eventmodel.plugins entry points (Nova, Cinder and Ironic are built in).")
        ] = True,
    ) -> None:
        """Print the typed events notifications become (one JSON line each)."""
        try:
            stamp = _recorded_at(recorded_at)
        except ValueError as exc:
            typer.echo(f"error: --recorded-at: {exc}", err=True)
            raise typer.Exit(2) from None
        missing = [f for f in files if f != "-" and not Path(f).is_file()]
        if missing:
            for f in missing:
                typer.echo(f"error: {f}: no such file" if not Path(f).exists() else f"error: {f}: not a file", err=True)
            raise typer.Exit(2)

        types = EventTypes.builtin()
        normalizer = CompositeNormalizer(load_plugins(types) if plugins else (), types=types)
        codec = Codec(types)
        out = sys.stdout
        any_dead = False
        for name in files:
            if name == "-":
                data = sys.stdin.buffer.read()
            else:
                try:
                    data = Path(name).read_bytes()
                except OSError as exc:
                    typer.echo(f"error: {name}: {exc.strerror or exc}", err=True)
                    any_dead = True
                    continue
            for line, doc in documents(data):
                outcome: Outcome = normalizer.normalize(doc, recorded_at=stamp)
                if outcome.status == EVENTS:
                    for env in outcome.events:
                        out.write(_encode(codec.to_dict(env)).decode() + "\n")
                    continue
                any_dead = any_dead or outcome.status == DEAD
                record: dict[str, Any] = {"file": name}
                if line is not None:
                    record["line"] = line
                record["status"] = outcome.status
                if outcome.event_type:
                    record["event_type"] = outcome.event_type
                record["reason"] = outcome.reason
                out.write(_encode(record).decode() + "\n")
        out.flush()
        if any_dead:
            raise typer.Exit(1)
