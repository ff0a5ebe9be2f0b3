"""Dead letters: input that could not become events, kept with the reason.

A letter holds (a bounded prefix of) the input's bytes, their full size and SHA-256,
the reason and where it came from. Before it is stored the credentials are taken out
of the bytes (:func:`redact_credentials`: the auth token oslo.messaging puts in every
notification's ``_context_*`` fields, and the payload's: Cinder's volume notifications
carry CHAP secrets in attachment rows); :func:`letter_of` does both. The log backends store letters bounded (:func:`bounded_dead_letter`), so
storing one never fails because of its size.
"""

from __future__ import annotations

import hashlib
import re

import attrs
import msgspec


#: raw bytes kept in a dead letter; the rest is dropped (its size and hash stay)
DEAD_LETTER_MAX_BYTES = 64 * 1024


@attrs.frozen(slots=True)
class DeadLetter:
    """Input that could not become events: kept with (a bounded prefix of) its bytes,
    its full size and SHA-256, and the reason."""

    raw: bytes
    reason: str
    source: str
    at: int  # µs
    offset: int = -1
    size: int = -1  # the input's full size in bytes (-1: unknown, ``raw`` is whole)
    sha256: str = ""  # hex digest of the full input ("" : not computed)

    @classmethod
    def of(cls, raw: bytes, reason: str, source: str, at: int,
           max_bytes: int = DEAD_LETTER_MAX_BYTES) -> DeadLetter:
        """A dead letter for ``raw``, truncated to ``max_bytes`` (size and hash of the whole kept)."""
        data = bytes(raw)
        return cls(data[:max_bytes], reason, source, at, -1, len(data), hashlib.sha256(data).hexdigest())

    @property
    def truncated(self) -> bool:
        return self.size > len(self.raw)


#: the longest reason / source kept in a dead letter (characters)
DEAD_LETTER_MAX_TEXT = 4096


def bounded_dead_letter(d: DeadLetter, max_bytes: int = DEAD_LETTER_MAX_BYTES) -> DeadLetter:
    """``d`` as a backend stores it: size and SHA-256 of the whole input filled in when
    unknown, raw bytes cut to ``max_bytes`` and reason/source to
    :data:`DEAD_LETTER_MAX_TEXT` characters, so that storing a dead letter never fails
    because of its size."""
    raw = bytes(d.raw)
    size, digest = d.size, d.sha256
    if size < 0:
        size = len(raw)  # raw is whole when its size is unknown (DeadLetter.of fills both in)
    if not digest and size == len(raw):
        digest = hashlib.sha256(raw).hexdigest()
    reason, source = d.reason, d.source
    if len(reason) > DEAD_LETTER_MAX_TEXT:
        reason = reason[:DEAD_LETTER_MAX_TEXT - 14] + " [… truncated]"
    if len(source) > DEAD_LETTER_MAX_TEXT:
        source = source[:DEAD_LETTER_MAX_TEXT]
    return DeadLetter(raw[:max_bytes], reason, source, d.at, d.offset, size, digest)


#: context keys (``_context_<name>`` in oslo's 2.0 envelope, ``_context.<name>`` in
#: its Kafka driver's form) whose values are credentials
_SECRET_WORDS = ("token", "password", "secret", "credential", "passwd")
_REDACTED = "***"
# A quoted key (quotes may be escaped once: the inner message is a JSON string inside
# the envelope), then a colon. Bounded, so the scan is linear in the input; whether the
# key names a secret and where its value ends are decided in Python, not by backtracking.
_KEY_RE = re.compile(rb'(\\?)"([^"\\]{1,128})\\?"\s{0,8}:\s{0,8}')
_SECRET_KEY_RE = re.compile(rb"token|password|secret|credential|passwd", re.IGNORECASE)


def _redact_pattern(data: bytes) -> bytes:
    """Redaction by pattern, for bytes that do not parse: the quoted value of every
    quoted key naming a secret becomes ``***`` (a value cut before its closing quote is
    redacted to the end)."""
    out: list[bytes] = []
    done = 0
    for m in _KEY_RE.finditer(data):
        if m.start() < done or not _SECRET_KEY_RE.search(m.group(2)):
            continue
        at = m.end()
        quote = b'\\"' if m.group(1) else b'"'
        if not data.startswith(quote, at):
            continue  # not a string value (a number, an object): nothing to hide here
        start = at + len(quote)
        end = start
        while True:  # the closing quote: one not escaped (for \", one not preceded by \\)
            end = data.find(quote, end)
            if end < 0 or not m.group(1) or data[end - 1: end] != b"\\":
                break
            end += 1
        if not m.group(1):
            while end > 0 and _escaped(data, end):
                end = data.find(quote, end + 1)
        end = len(data) if end < 0 else end
        out += [data[done:start], _REDACTED.encode()]
        done = end
    out.append(data[done:])
    return b"".join(out)


def _escaped(data: bytes, i: int) -> bool:
    """Whether the character at ``i`` is escaped (an odd run of backslashes before it)."""
    n = 0
    while i - n - 1 >= 0 and data[i - n - 1] == 0x5C:
        n += 1
    return n % 2 == 1


def _is_secret(key: object) -> bool:
    return type(key) is str and any(w in key.lower() for w in _SECRET_WORDS)


#: payload fields whose whole value is a credential whatever their name says: a Cinder
#: volume row's ``provider_auth`` (CHAP user and secret) and an attachment row's
#: ``connection_info`` (JSON text holding ``auth_password`` for iSCSI CHAP), both in
#: Cinder's volume notifications
_SECRET_FIELDS = frozenset({"provider_auth", "connection_info"})
#: how deep a payload is searched for secrets (Cinder's rows are 5 levels deep)
_PAYLOAD_DEPTH = 64


def _redact_payload(value: object, depth: int = 0) -> object:
    """``value`` with the values of secret-named keys and of :data:`_SECRET_FIELDS`
    replaced, at any depth up to :data:`_PAYLOAD_DEPTH`."""
    if depth >= _PAYLOAD_DEPTH:
        return value
    if type(value) is dict:
        return {k: (_REDACTED if v is not None and (k in _SECRET_FIELDS or _is_secret(k))
                    else _redact_payload(v, depth + 1)) for k, v in value.items()}
    if type(value) is list:
        return [_redact_payload(v, depth + 1) for v in value]
    return value


def _redact_context(body: dict) -> dict:
    out = {}
    for k, v in body.items():
        if type(k) is str and k.startswith("_context_") and _is_secret(k[len("_context_"):]):
            out[k] = _REDACTED
        elif k == "_context" and type(v) is dict:
            out[k] = {ck: (_REDACTED if _is_secret(ck) else cv) for ck, cv in v.items()}
        elif k == "payload":
            out[k] = _redact_payload(v)
        else:
            out[k] = v
    return out


def redact_credentials(data: bytes) -> bytes:
    """``data`` with the request context's credentials (auth tokens, passwords,
    secrets) and the payload's (secret-named keys, Cinder's ``provider_auth`` and
    ``connection_info``) replaced by ``***``; everything else kept. A message that parses is
    redacted field by field; one that does not, by pattern."""
    try:
        outer = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeError):
        return _redact_pattern(data)
    if type(outer) is not dict:
        return data
    inner = outer.get("oslo.message")
    if type(inner) is str:
        try:
            body = msgspec.json.decode(inner)
        except (msgspec.DecodeError, UnicodeError):
            return _redact_pattern(data)
        if type(body) is dict:
            redacted = _redact_context(body)
            if redacted != body:
                return msgspec.json.encode({**outer, "oslo.message": msgspec.json.encode(redacted).decode()})
        return data
    redacted = _redact_context(outer)
    return msgspec.json.encode(redacted) if redacted != outer else data


def letter_of(raw: object, reason: str, source: str, at: int) -> DeadLetter:
    """A dead letter for ``raw`` (bytes, text, or a decoded message): its bytes with the
    credentials redacted, bounded in size with the whole input's size and hash kept."""
    if isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        try:
            data = msgspec.json.encode(raw)
        except Exception:  # noqa: BLE001
            data = repr(raw).encode("utf-8", "replace")
    return DeadLetter.of(redact_credentials(data), reason, source, at)
