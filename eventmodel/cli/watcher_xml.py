"""``eventmodel import-watcher-xml``, and the writer behind ``export --format watcher-xml``:
Watcher's XML scenario format (``ModelRoot.to_xml``/``from_xml``) to and from snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from eventmodel.cli.common import console, fail

FORMATS = ("snapshot", "watcher-xml")


def _watcher() -> Any:
    """projections.watcher.convert, or a clear error when python-watcher is missing."""
    from projections.watcher.view import WatcherMissing, load_elements

    try:
        load_elements()
    except WatcherMissing as exc:
        raise fail(str(exc)) from None
    from projections.watcher import convert

    return convert


def write_watcher_xml(model: Any, output: Path) -> None:
    """Write ``model`` as a Watcher scenario file that ``ModelRoot.from_xml`` reads back."""
    convert = _watcher()
    try:
        output.write_text(convert.model_to_xml(model), encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    @app.command("import-watcher-xml")
    def import_watcher_xml(
        path: Path = typer.Argument(..., help="A Watcher compute scenario (ModelRoot.to_xml layout)."),
        out: Path = typer.Option(..., "--out", "-o", help="Snapshot file to write (eventmodel.snapshot JSON)."),
    ) -> None:
        """Convert a Watcher XML scenario into a snapshot file that offline tests load with
        ``load_snapshot`` (and ``export --format watcher-xml`` turns back into XML)."""
        convert = _watcher()
        from projections.export import export_snapshot

        try:
            model = convert.read_xml_file(path)
        except convert.WatcherXmlError as exc:
            raise fail(str(exc)) from None
        try:
            export_snapshot(model, out)
        except OSError as exc:
            raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
        placed = sum(1 for i in model.instances().values() if i.node in model.compute_nodes())
        console.print(f"wrote {out}: {len(model.compute_nodes()):,} compute nodes, "
                      f"{len(model.instances()):,} instances ({placed:,} on a node) from {path}")
