"""Showing URLs without their secrets (logs, errors, checkpoint headers)."""

from __future__ import annotations

#: query parameters whose values are never shown
_SECRET_KEYS = ("password", "secret", "token", "key.pem", "credentials")


def redact(url: str) -> str:
    """The URL without passwords (userinfo password, secret-looking query values)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    path, q, query = tail.partition("?")
    if query:
        parts = []
        for item in query.split("&"):
            name, eq, _value = item.partition("=")
            if eq and any(s in name.lower() for s in _SECRET_KEYS):
                item = f"{name}=***"
            parts.append(item)
        query = "&".join(parts)
    return f"{scheme}{sep}{netloc}{slash}{path}{q}{query}"
