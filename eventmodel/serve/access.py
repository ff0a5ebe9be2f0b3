"""Who may read, and what an answer may never show.

- :func:`load_token`: the bearer token from a file or ``EVENTMODEL_SERVE_TOKEN`` (never
  from the command line, where ``ps`` shows it).
- :class:`TokenGate`: ASGI middleware; everything but the probes needs
  ``Authorization: Bearer <token>`` — or, for a browser, the session cookie that
  ``POST /login`` sets after checking the same token (a random session id that expires
  and that ``POST /logout`` revokes; never the token). Wrong tokens are throttled per
  client address (:mod:`eventmodel.serve.sessions`).
- :func:`redact_text` / :func:`redact_dead_letter`: credentials out of URLs and dead letters.
"""

from __future__ import annotations

import hmac
import os
import re
from pathlib import Path
from urllib.parse import parse_qs

import attrs
from starlette.types import ASGIApp, Receive, Scope, Send

from eventmodel.errors import ServeError
from eventmodel.log.base import DeadLetter
from eventmodel.serve.sessions import Sessions, Throttle, retry_after
from eventmodel.sources.nova import redact_credentials

TOKEN_ENV = "EVENTMODEL_SERVE_TOKEN"
COOKIE = "eventmodel_session"
#: paths anyone may read: the probes, and the login form (which shows no data)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login"})


class TokenError(ServeError, ValueError):
    """The token file cannot be read or holds no token."""


#: the shortest token accepted: 16 characters (a random one of that length is out of
#: reach of guessing at the login throttle's rate)
MIN_TOKEN_LENGTH = 16
#: how long a session cookie lasts (seconds) unless ``serve --session-hours`` says otherwise
SESSION_SECONDS = 12 * 3600


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{where} holds a token of {len(token)} character(s): at least {MIN_TOKEN_LENGTH} "
                         "are needed (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise TokenError(f"{where} holds a token with spaces or characters outside printable ASCII")
    return token


def load_token(path: Path | None, environ: dict[str, str] | None = None) -> str | None:
    """The token from ``path`` (first line, stripped), else from ``$EVENTMODEL_SERVE_TOKEN``,
    else None (no token: anyone who can reach the port may read).

    Refused with :class:`TokenError`: a file that cannot be read, is empty, or that its
    group or others may read (mode must be 0600 or stricter); a variable that is set but
    blank; a token shorter than :data:`MIN_TOKEN_LENGTH`."""
    if path is not None:
        try:
            mode = path.stat().st_mode
            token = path.read_text(encoding="utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
        except (OSError, UnicodeError, IndexError) as exc:
            raise TokenError(f"cannot read the token file {path}: {exc}") from None
        if not token:
            raise TokenError(f"the token file {path} is empty")
        if mode & 0o077:
            raise TokenError(f"the token file {path} may be read by group or others (mode {mode & 0o777:04o}): "
                             f"chmod 600 {path}")
        return _checked(token, f"the token file {path}")
    env = environ if environ is not None else os.environ
    if TOKEN_ENV not in env:
        return None
    token = env[TOKEN_ENV].strip()
    if not token:
        raise TokenError(f"{TOKEN_ENV} is set but blank: give a token, or unset it to serve without one")
    return _checked(token, TOKEN_ENV)


_LOGIN_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>eventmodel: sign in</title>
<style>body{font:15px system-ui,sans-serif;margin:4em auto;max-width:26em;color:#222}
input{font:inherit;padding:.4em;width:100%;box-sizing:border-box;margin:.5em 0}</style></head>
<body><h1>eventmodel</h1><p>This server needs its bearer token.</p>
<form method="post" action="/login"><input type="password" name="token" autofocus placeholder="token">
<input type="submit" value="Sign in"></form></body></html>"""


@attrs.define
class TokenGate:
    """ASGI middleware: a valid bearer token (or live session cookie) for every path but
    the probes; ``POST /login`` opens a session, ``POST /logout`` revokes it. Wrong
    credentials spend the client's guesses (:class:`Throttle`); with none left, every
    answer that would check one is 429 with ``Retry-After``."""

    app: ASGIApp
    token: str | None
    session_seconds: float = SESSION_SECONDS
    throttle: Throttle = attrs.field(factory=Throttle)
    sessions: Sessions = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.sessions = Sessions(self.session_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        client = _client(scope)
        if path == "/logout" and scope.get("method") == "POST":
            await self._logout(scope, send)
            return
        if path in OPEN_PATHS and not (path == "/login" and scope.get("method") == "POST"):
            if path == "/login":
                await _send(send, 200, _LOGIN_PAGE, b"text/html; charset=utf-8")
                return
            await self.app(scope, receive, send)
            return
        wait = self.throttle.wait(client)
        if wait:
            body = b'{"error":"too many wrong tokens from this address: try again later","status":429}'
            await _send(send, 429, body, b"application/json", [(b"retry-after", retry_after(wait))])
            return
        if path == "/login" and scope.get("method") == "POST":
            await self._login(scope, receive, send, client)
            return
        verdict = self._allowed(scope)
        if verdict:
            if verdict == "session":  # the page shows a "Log out" button (/api/status says so)
                scope.setdefault("state", {})["session"] = True
            await self.app(scope, receive, send)
            return
        if verdict is False:  # credentials given, and wrong: a guess
            self.throttle.take(client)
        headers = dict(scope.get("headers") or [])
        if b"text/html" in headers.get(b"accept", b""):
            await _send(send, 401, _LOGIN_PAGE, b"text/html; charset=utf-8", [(b"www-authenticate", b"Bearer")])
            return
        body = b'{"error":"unauthorized: send Authorization: Bearer <token>","status":401}'
        await _send(send, 401, body, b"application/json", [(b"www-authenticate", b"Bearer")])

    def _allowed(self, scope: Scope) -> bool | str | None:
        """True: a valid token; "session": a live session cookie; False: credentials given,
        none valid; None: none given."""
        assert self.token is not None
        given = False
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                given = True
                scheme, _, offered = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), self.token.encode()):
                    return True
            elif name == b"cookie":
                for sid in _session_ids(value):
                    given = True
                    if self.sessions.valid(sid):
                        return "session"
        return False if given else None

    async def _login(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        assert self.token is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 8192:
                await _send(send, 413, b'{"error":"login form too large","status":413}', b"application/json")
                return
            if not message.get("more_body"):
                break
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.throttle.take(client)
            await _send(send, 401, _LOGIN_PAGE, b"text/html; charset=utf-8")
            return
        sid = self.sessions.open()
        cookie = (f"{COOKIE}={sid}; Path=/; Max-Age={int(self.sessions.seconds)}; HttpOnly; "
                  f"SameSite=Strict{_secure(scope)}").encode()
        await _send(send, 303, b"", b"text/plain", [(b"location", b"/"), (b"set-cookie", cookie)])

    async def _logout(self, scope: Scope, send: Send) -> None:
        for name, value in scope.get("headers") or []:
            if name == b"cookie":
                for sid in _session_ids(value):
                    self.sessions.close(sid)
        cookie = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{_secure(scope)}".encode()
        await _send(send, 303, b"", b"text/plain", [(b"location", b"/login"), (b"set-cookie", cookie)])


def _secure(scope: Scope) -> str:
    """``; Secure`` when the request came over https (directly, or through a TLS proxy whose
    ``X-Forwarded-Proto`` uvicorn trusts: ``--forwarded-allow-ips``), so that a browser
    never sends the session id in clear."""
    return "; Secure" if scope.get("scheme") in ("https", "wss") else ""


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _session_ids(cookie_header: bytes) -> list[str]:
    out = []
    for part in cookie_header.decode("latin-1").split(";"):
        k, _, v = part.strip().partition("=")
        if k == COOKIE and v:
            out.append(v[:128])
    return out


#: sent with every answer: no script or frame from elsewhere, no MIME sniffing, no referrer
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


@attrs.define
class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP answer, 401s included."""

    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# userinfo in any URL (scheme://user:secret@host), secret-looking key=value pairs, and
# bearer tokens. Every repetition before a fixed anchor is bounded, so that no input
# costs more than linear time (a 64 KiB "token"*13107 dead letter once held the process
# for 47 s in the unbounded patterns' backtracking).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/@]{0,256}):[^\s@/]{0,512}@")
_SECRET_PAIR = re.compile(
    r"((?:password|passwd|secret|token|credentials?)[\w.-]{0,64}[\"']?\s{0,8}[=:]\s{0,8}[\"']?)([^\s&,;\"']+)",
    re.IGNORECASE)
_BEARER = re.compile(r"((?:bearer|basic)\s{1,8})([A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with URL passwords, ``password=…``-like values and bearer tokens replaced
    by ``***``; linear in the length of ``text``."""
    text = _URL_USERINFO.sub(r"\1:***@", text)
    text = _SECRET_PAIR.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)


def redact_dead_letter(letter: DeadLetter) -> DeadLetter:
    """A dead letter fit to show: request-context credentials out of its bytes (the
    normalizer already stores them redacted; letters from elsewhere may not be), URL
    passwords out of its bytes, reason and source."""
    raw = redact_credentials(bytes(letter.raw))
    try:
        raw = redact_text(raw.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        pass
    return attrs.evolve(letter, raw=raw, reason=redact_text(letter.reason), source=redact_text(letter.source))
