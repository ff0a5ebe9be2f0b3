"""Access to ``eventmodel serve``: the token's sources, the gate, and redaction."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from eventmodel.log.base import DeadLetter
from eventmodel.serve.access import TOKEN_ENV, TokenError, TokenGate, load_token, redact_dead_letter, redact_text


def test_token_from_file_env_or_none(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("  abc  \nsecond line ignored\n")
    assert load_token(f, {}) == "abc"
    assert load_token(None, {TOKEN_ENV: " xyz "}) == "xyz"
    assert load_token(None, {}) is None
    assert load_token(None, {TOKEN_ENV: "  "}) is None
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    for bad in (empty, tmp_path / "missing", tmp_path):
        with pytest.raises(TokenError, match="token file"):
            load_token(bad, {})


def _gated(token: str | None) -> Starlette:
    app = Starlette(routes=[Route(p, lambda r: PlainTextResponse("data")) for p in ("/healthz", "/api/x")])
    app.add_middleware(TokenGate, token=token)
    return app


async def _get(app: Starlette, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path, headers=headers)


def test_gate_lets_probes_through_and_checks_bearer() -> None:
    app = _gated("tok")
    assert anyio.run(_get, app, "/healthz").status_code == 200
    assert anyio.run(_get, app, "/api/x").status_code == 401
    assert anyio.run(_get, app, "/api/x", {"authorization": "Bearer tok"}).text == "data"
    assert anyio.run(_get, app, "/api/x", {"authorization": "bearer tok"}).status_code == 200
    assert anyio.run(_get, app, "/api/x", {"authorization": "Basic tok"}).status_code == 401
    assert anyio.run(_get, _gated(None), "/api/x").text == "data"


def test_redaction_of_urls_and_dead_letters() -> None:
    assert redact_text("failed amqp://nova:hunter2@rabbit:5672/ now") == "failed amqp://nova:***@rabbit:5672/ now"
    assert "hunter2" not in redact_text("kafka://h/t?kafka.sasl.password=hunter2&x=1")
    assert redact_text("no secret here: 5 instances") == "no secret here: 5 instances"
    raw = b'{"_context_auth_token": "hunter2", "x": "http://u:hunter2@h/"}'
    letter = redact_dead_letter(DeadLetter.of(raw, "bad: from amqp://u:hunter2@h//", "amqp://u:hunter2@h", 1))
    assert b"hunter2" not in letter.raw and "hunter2" not in letter.reason + letter.source
    assert letter.sha256 == DeadLetter.of(raw, "", "", 1).sha256  # the digest still names the input


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), secret=st.from_regex(r"[A-Za-z0-9_~.!$]{6,20}", fullmatch=True))
def test_a_url_password_never_survives(user: str, secret: str) -> None:
    assume(secret not in f"x rabbit://{user}:***@host:5672/vhost y")
    assert secret not in redact_text(f"x rabbit://{user}:{secret}@host:5672/vhost y")


def test_every_answer_carries_the_security_headers_401s_included() -> None:
    from eventmodel.serve.access import SECURITY_HEADERS, SecurityHeaders

    app = _gated("tok")
    app.add_middleware(SecurityHeaders)
    for path, headers, status in (("/healthz", None, 200), ("/api/x", None, 401),
                                  ("/api/x", {"authorization": "Bearer tok"}, 200)):
        r = anyio.run(_get, app, path, headers)
        assert r.status_code == status
        for name, value in SECURITY_HEADERS:
            assert r.headers[name.decode()] == value.decode()
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
