"""``--metrics-port`` on the CLI: a port that cannot be bound is a clear error before the
bridge starts (no traceback, exit code 2)."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from eventmodel.cli.main import app


def test_metrics_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        # the AMQP URL is never reached: the metrics port is bound before connecting
        res = CliRunner().invoke(app, [
            "bridge", "--log", f"sqlite:///{tmp_path}/events.db", "--amqp", "amqp://guest:guest@127.0.0.1:1//",
            "--metrics-port", str(port),
        ])
    assert res.exit_code == 2, res.output
    assert f"cannot serve metrics on 127.0.0.1:{port}" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_metrics_port_out_of_range_is_refused(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bridge", "--log", f"sqlite:///{tmp_path}/events.db", "--metrics-port", "70000"])
    assert res.exit_code == 2
    assert "--metrics-port" in res.output
