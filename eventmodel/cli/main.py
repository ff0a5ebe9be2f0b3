"""Entry point of the ``eventmodel`` command. Each command group lives in its own module
with a ``register(app)`` function; this module only assembles them."""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="eventmodel",
    help="An event-sourced, always-current model of an OpenStack cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: command modules under eventmodel.cli, each with register(app)
COMMAND_MODULES = (
    "demo",
    "replay",
    "audits",
    "normalize",
    "bridge",
    "sync",
    "sim",
    "serve",
    "watcher_xml",
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"eventmodel.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"eventmodel.cli.{_name}":
            raise
        continue
    _module.register(app)


if __name__ == "__main__":
    app()
