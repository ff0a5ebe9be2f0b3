"""Keystone v3 of the simulated cloud: version documents, password authentication with
project scope, a catalog pointing back at this server, and the token table (tokens
expire after ``token_ttl_s`` on an injectable clock, or when revoked)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from eventmodel.clock import format_time
from eventmodel.sim.api_common import (
    DECODE,
    SimApiError,
    base_url,
    error_body,
    hex_id,
    json_response,
)
from eventmodel.sim.api_view import SimView


@attrs.frozen(slots=True)
class Credentials:
    """The one user the simulated Keystone knows (an admin, as a syncer needs)."""

    username: str = "admin"
    password: str = "sim-password"
    project_name: str = "admin"
    user_domain: str = "Default"
    project_domain: str = "Default"
    region: str = "RegionOne"


@attrs.frozen(slots=True)
class Token:
    expires_at: float  # on the Identity's clock
    user_id: str
    project_id: str | None


class Identity:
    """The simulated Keystone: its routes and its tokens (thread-safe)."""

    def __init__(self, view: SimView, credentials: Credentials, token_ttl_s: float,
                 clock: Callable[[], float]) -> None:
        if token_ttl_s <= 0:
            raise ValueError("token_ttl_s must be > 0")
        self.view = view
        self.credentials = credentials
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self._tokens: dict[str, Token] = {}
        self._tokens_lock = threading.Lock()

    def token(self, token: str | None) -> Token | None:
        """The valid token of that id, if any (an expired one is forgotten)."""
        if not token:
            return None
        with self._tokens_lock:
            t = self._tokens.get(token)
            if t is not None and t.expires_at <= self.clock():
                del self._tokens[token]
                t = None
        return t

    def revoke(self, token: str) -> None:
        with self._tokens_lock:
            self._tokens.pop(token, None)

    def expire_all(self) -> int:
        """Every token issued so far expires now; returns how many were valid."""
        now = self.clock()
        with self._tokens_lock:
            n = sum(1 for t in self._tokens.values() if t.expires_at > now)
            self._tokens.clear()
        return n

    def _identity_version(self, base: str) -> dict[str, Any]:
        return {
            "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }  # fmt: skip

    async def identity_versions(self, request: Request) -> Response:
        return json_response({"versions": {"values": [self._identity_version(base_url(request.scope))]}}, 300)

    async def identity_v3(self, request: Request) -> Response:
        return json_response({"version": self._identity_version(base_url(request.scope))})

    async def issue_token(self, request: Request) -> Response:
        try:
            body = DECODE(await request.body())
            auth = body["auth"]
            identity = auth["identity"]
            if "password" not in identity.get("methods", []):
                raise SimApiError(401, "Only password authentication is supported.")
            user = identity["password"]["user"]
            scope = auth.get("scope")
        except SimApiError as exc:
            return json_response(error_body("identity", exc.status, exc.message), exc.status)
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
            return json_response(error_body("identity", 400, "Expecting to find auth.identity.password.user in the "
                                                      "request body."), 400)
        c = self.credentials
        uid = self.view.admin_user
        if not (
            (user.get("name") == c.username and _domain_ok(user.get("domain"), c.user_domain)) or user.get("id") == uid
        ) or user.get("password") != c.password:
            return json_response(error_body("identity", 401, "The request you have made requires authentication."), 401)
        project: dict[str, Any] | None = None
        pid = self.view.admin_project
        if isinstance(scope, dict) and "project" in scope:
            p = scope["project"]
            if not isinstance(p, dict) or not (
                p.get("id") == pid or (p.get("name") == c.project_name and _domain_ok(p.get("domain"), c.project_domain))
            ):
                return json_response(error_body("identity", 401, "User has no access to the requested project."), 401)
            project = {"id": pid, "name": c.project_name, "domain": _domain(c.project_domain)}
        elif scope is not None:
            return json_response(error_body("identity", 400, "Only project scope is supported."), 400)
        now = self.clock()
        expires = now + self.token_ttl_s
        token = secrets.token_hex(16)
        with self._tokens_lock:
            if len(self._tokens) > 1000:  # forget expired tokens now and then
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[token] = Token(expires, uid, pid if project else None)
        now_real = time.time()
        out: dict[str, Any] = {
            "methods": ["password"],
            "user": {"id": uid, "name": c.username, "domain": _domain(c.user_domain), "password_expires_at": None},
            "audit_ids": [secrets.token_urlsafe(16)],
            "issued_at": format_time(int(now_real * 1_000_000)),
            "expires_at": format_time(int((now_real + self.token_ttl_s) * 1_000_000)),
        }
        if project is not None:
            out.update(project=project, is_domain=False, roles=[
                {"id": hex_id("role:admin"), "name": "admin"}, {"id": hex_id("role:member"), "name": "member"},
                {"id": hex_id("role:reader"), "name": "reader"}],
                catalog=self._catalog(base_url(request.scope)))
        return json_response({"token": out}, 201, {"X-Subject-Token": token})

    def _catalog(self, base: str) -> list[dict[str, Any]]:
        region = self.credentials.region

        def service(kind: str, name: str, url: str) -> dict[str, Any]:
            return {"id": hex_id("service:" + kind), "type": kind, "name": name, "endpoints": [
                {"id": hex_id(f"endpoint:{kind}:{iface}"), "interface": iface, "region": region,
                 "region_id": region, "url": url} for iface in ("public", "internal", "admin")]}

        out = [
            service("identity", "keystone", f"{base}/identity"),
            service("compute", "nova", f"{base}/compute/v2.1"),
            service("placement", "placement", f"{base}/placement"),
        ]
        if self.view.has_block_storage:
            # Cinder registers under both names (Watcher looks for either)
            out.append(service("block-storage", "cinder", f"{base}/volume/v3"))
            out.append(service("volumev3", "cinderv3", f"{base}/volume/v3"))
        if self.view.has_baremetal:
            out.append(service("baremetal", "ironic", f"{base}/baremetal"))
        return out





def _domain(name: str) -> dict[str, str]:
    return {"id": "default" if name.lower() == "default" else hex_id("domain:" + name), "name": name}


def _domain_ok(given: Any, name: str) -> bool:
    if not isinstance(given, dict):
        return False
    d = _domain(name)
    return given.get("name") == d["name"] or given.get("id") == d["id"]
