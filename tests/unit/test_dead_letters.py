"""Dead letters keep what is needed to diagnose bad input, never its credentials,
and never more than a bounded number of bytes."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from eventmodel.log.base import DEAD_LETTER_MAX_BYTES
from eventmodel.sources.nova import NovaNormalizer, redact_credentials

#: secrets with a marker that appears nowhere else in a message (like Fernet tokens' "gAAAA")
tokens = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"\\'),
                 min_size=8, max_size=80).map(lambda t: "zSECRETz" + t)


def _wire(inner: dict) -> bytes:
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


@given(tokens, tokens, st.booleans())
@settings(max_examples=80, deadline=None)
def test_context_credentials_never_reach_a_dead_letter(token: str, password: str, truncate: bool) -> None:
    inner = {
        "event_type": "instance.update", "publisher_id": "nova-compute:h1", "message_id": "m1",
        "payload": {"nova_object.data": {"uuid": 5}},  # dead: uuid is not a string
        "_context_auth_token": token, "_context_user_identity": "u p - - -",
        "_context_request_id": "req-1", "_context_password": password,
    }
    raw = _wire(inner)
    if truncate:
        raw = raw[: len(raw) - 3]  # not JSON any more: redacted by pattern
    n = NovaNormalizer()
    out = n.normalize(raw, recorded_at=1)
    assert out.status == "dead"
    letter = n.dead_letter(raw, out)
    assert token.encode() not in letter.raw and password.encode() not in letter.raw
    assert b"req-1" in letter.raw and b"_context_auth_token" in letter.raw  # the rest is kept


def test_kafka_driver_context_dict_is_redacted() -> None:
    raw = json.dumps({"event_type": "x", "_context": {"auth_token": "s3cr3t-token", "user": "bob"}}).encode()
    out = redact_credentials(raw)
    assert b"s3cr3t-token" not in out and b"bob" in out


def test_a_huge_garbage_message_is_bounded_with_its_size_and_hash() -> None:
    raw = b"\x00garbage" * (2 * 1024 * 1024 // 8)
    n = NovaNormalizer()
    out = n.normalize(raw, recorded_at=1)
    letter = n.dead_letter(raw, out)
    assert len(letter.raw) == DEAD_LETTER_MAX_BYTES and letter.truncated
    assert letter.size == len(raw) and letter.sha256 == hashlib.sha256(raw).hexdigest()
    assert letter.raw == raw[:DEAD_LETTER_MAX_BYTES]
