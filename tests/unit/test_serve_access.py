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


TOKEN = "0123456789abcdefXYZ"  # 19 characters


def test_token_from_file_env_or_none(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text(f"  {TOKEN}  \nsecond line ignored\n")
    f.chmod(0o600)
    assert load_token(f, {}) == TOKEN
    assert load_token(None, {TOKEN_ENV: f" {TOKEN} "}) == TOKEN
    assert load_token(None, {}) is None
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    empty.chmod(0o600)
    for bad in (empty, tmp_path / "missing", tmp_path):
        with pytest.raises(TokenError, match="token file"):
            load_token(bad, {})


def test_blank_weak_and_readable_tokens_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="set but blank"):
        load_token(None, {TOKEN_ENV: "  "})
    with pytest.raises(TokenError, match="at least 16"):
        load_token(None, {TOKEN_ENV: "short"})
    f = tmp_path / "t"
    f.write_text("x\n")
    f.chmod(0o600)
    with pytest.raises(TokenError, match="1 character"):
        load_token(f, {})
    f.write_text(TOKEN)
    for mode in (0o644, 0o640, 0o604):
        f.chmod(mode)
        with pytest.raises(TokenError, match=f"group or others.*{mode:04o}.*chmod 600"):
            load_token(f, {})
    f.chmod(0o400)
    assert load_token(f, {}) == TOKEN


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gate(clock: Clock, **kw: object) -> TokenGate:
    inner = Starlette(routes=[Route(p, lambda r: PlainTextResponse("data")) for p in ("/healthz", "/api/x")])
    gate = TokenGate(inner, TOKEN, **kw)  # type: ignore[arg-type]
    gate.sessions.clock = clock
    gate.throttle.clock = clock
    return gate


async def _session(app: object, steps: list[tuple[str, str, dict[str, str] | None]]) -> list[httpx.Response]:
    """Requests in one client (cookies kept between them)."""
    out = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:  # type: ignore[arg-type]
        for method, path, form in steps:
            out.append(await (c.post(path, data=form) if method == "POST" else c.get(path)))
    return out


def test_the_session_cookie_expires_and_logout_revokes_it() -> None:
    clock = Clock()
    gate = _gate(clock, session_seconds=600)
    login, ok = anyio.run(_session, gate, [("POST", "/login", {"token": TOKEN}), ("GET", "/api/x", None)])
    cookie = login.headers["set-cookie"]
    assert "Max-Age=600" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert ok.text == "data"
    sid = cookie.split(";")[0].split("=", 1)[1]
    headers = {"cookie": f"eventmodel_session={sid}"}
    clock.now += 599
    assert anyio.run(_get, gate, "/api/x", headers).status_code == 200
    clock.now += 2  # the server forgets it too, whatever the browser keeps
    assert anyio.run(_get, gate, "/api/x", headers).status_code == 401

    _, ok, out, after = anyio.run(_session, gate, [("POST", "/login", {"token": TOKEN}), ("GET", "/api/x", None),
                                                    ("POST", "/logout", {}), ("GET", "/api/x", None)])
    assert ok.status_code == 200 and out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert after.status_code == 401
    assert not gate.sessions._live  # revoked server-side: replaying the old cookie fails too


def test_guesses_are_throttled_per_client_with_retry_after() -> None:
    clock = Clock()
    gate = _gate(clock)
    answers = anyio.run(_session, gate, [("POST", "/login", {"token": f"guess{i}"}) for i in range(12)])
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert answers[10].status_code == 429 and int(answers[10].headers["retry-after"]) >= 1
    # throttled, the right token is refused too (else the throttle would tell a right guess apart)
    right = anyio.run(_session, gate, [("POST", "/login", {"token": TOKEN})])[0]
    assert right.status_code == 429
    bearer = anyio.run(_get, gate, "/api/x", {"authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 429
    assert anyio.run(_get, gate, "/healthz").status_code == 200  # the probes are never throttled
    clock.now += float(right.headers["retry-after"])
    assert anyio.run(_get, gate, "/api/x", {"authorization": f"Bearer {TOKEN}"}).status_code == 200
    # wrong bearer tokens spend the same guesses
    gate2 = _gate(Clock())
    codes = [anyio.run(_get, gate2, "/api/x", {"authorization": f"Bearer wrong{i}"}).status_code for i in range(11)]
    assert codes == [401] * 10 + [429]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 30)), max_size=80))
def test_the_throttle_never_allows_more_than_burst_plus_refill(steps: list[tuple[str, float]]) -> None:
    from eventmodel.serve.sessions import Throttle

    clock = Clock()
    t = Throttle(rate=0.2, burst=10, clock=clock)
    allowed: dict[str, int] = {}
    start = clock.now
    for who, dt in steps:
        clock.now += dt
        if t.take(who) == 0:
            allowed[who] = allowed.get(who, 0) + 1
    for n in allowed.values():
        assert n <= 10 + (clock.now - start) * 0.2 + 1e-9


async def _session_at(app: object, base: str, steps: list[tuple[str, str, dict[str, str] | None]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as c:  # type: ignore[arg-type]
        return [await (c.post(p, data=f) if m == "POST" else c.get(p)) for m, p, f in steps]


def test_the_session_cookie_is_secure_when_the_request_came_over_https() -> None:
    gate = _gate(Clock())
    steps = [("POST", "/login", {"token": TOKEN}), ("POST", "/logout", {})]
    plain = anyio.run(_session_at, gate, "http://t", steps)
    tls = anyio.run(_session_at, gate, "https://t", steps)  # the scheme uvicorn sets behind a TLS proxy too
    for r in plain + tls:
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    assert all("Secure" not in r.headers["set-cookie"] for r in plain)
    assert all(r.headers["set-cookie"].endswith("; Secure") for r in tls)


def test_the_gate_tells_the_app_when_a_session_cookie_signed_the_request_in() -> None:
    async def who(request: object) -> PlainTextResponse:
        return PlainTextResponse("session" if request.scope.get("state", {}).get("session") else "token")  # type: ignore[attr-defined]

    gate = TokenGate(Starlette(routes=[Route("/api/x", who)]), TOKEN)
    by_cookie = anyio.run(_session, gate, [("POST", "/login", {"token": TOKEN}), ("GET", "/api/x", None)])[1]
    by_token = anyio.run(_get, gate, "/api/x", {"authorization": f"Bearer {TOKEN}"})
    assert by_cookie.text == "session" and by_token.text == "token"
