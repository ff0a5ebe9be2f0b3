"""``eventmodel serve`` refuses to start insecurely: a non-loopback bind without a token,
blank or weak tokens, a token file others may read. Each refusal is exit code 2 with a
message, before anything is served."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventmodel.cli.main import app
from eventmodel.log import open_log
from eventmodel.serve.access import TOKEN_ENV


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    open_log(url).close()
    return url


def _serve(log_url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", "--log", log_url, *args], env={TOKEN_ENV: None, **(env or {})})  # type: ignore[dict-item]
    return result.exit_code, result.output


def test_a_non_loopback_bind_without_a_token_refuses_to_start(log_url: str) -> None:
    code, out = _serve(log_url, "--listen", "0.0.0.0:0")
    assert code == 2 and "refusing to serve 0.0.0.0 without a token" in out and "--insecure-no-token" in out


@pytest.mark.parametrize("env, words", [
    ({TOKEN_ENV: ""}, "set but blank"),
    ({TOKEN_ENV: "   "}, "set but blank"),
    ({TOKEN_ENV: "hunter2"}, "at least 16"),
])
def test_blank_or_weak_tokens_from_the_environment_are_refused(log_url: str, env: dict[str, str], words: str) -> None:
    code, out = _serve(log_url, "--listen", "127.0.0.1:0", env=env)
    assert code == 2 and words in out


def test_a_token_file_others_may_read_is_refused(log_url: str, tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("0123456789abcdef0123\n")
    f.chmod(0o644)
    code, out = _serve(log_url, "--listen", "0.0.0.0:0", "--token-file", str(f))
    assert code == 2 and "group or others" in out and "chmod 600" in out
