"""Issue 11, finding 2: what one publisher sends cannot stop the stream.

A valid notification whose event is larger than Kafka accepts (refused for good:
``RecordsRejected``) and 2 MB of garbage both become bounded dead letters (64 KiB of
their bytes, their full size and SHA-256) and are acknowledged; the messages after them
flow. Real RabbitMQ, the real Kafka broker, oslo.messaging's Notifier.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from eventmodel.log import open_log
from eventmodel.log.base import DEAD_LETTER_MAX_BYTES
from tests.fixtures.rabbitmq import oslo_notifier, publish_raw, publish_sample, queue_depth, wait_until
from tests.integration.test_amqp_bridge import bridge_factory  # noqa: F401 - fixture
from tests.integration.test_amqp_bridge import log_ids
from tests.integration.test_bridge_stall import event_samples, events_of

pytestmark = [pytest.mark.rabbitmq, pytest.mark.kafka]

TOPIC = "versioned_notifications"


def oversized_update(samples_dir: Path, size: int) -> dict[str, Any]:
    """Nova's instance.update sample with a ``size``-byte display name: valid, and its
    event is larger than a Kafka record may be (``message.max.bytes``, 1 MB)."""
    import json

    sample = json.loads((samples_dir / "instance-update.json").read_text())
    big = copy.deepcopy(sample)
    big["payload"]["nova_object.data"]["display_name"] = "x" * size
    return big


def test_oversized_and_garbage_messages_are_dead_lettered_and_later_messages_flow(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, bridge_factory: Any, samples_dir: Path,
    kafka_url: str,
) -> None:
    samples = event_samples(samples_dir)
    before, after = samples[:10], samples[10:20]
    big = oversized_update(samples_dir, 1_500_000)
    garbage = bytes(range(256)) * (2 * 1024 * 1024 // 256)  # 2 MiB, not JSON
    bridge = bridge_factory(amqp_queue, amqp_exchange, log_url=kafka_url, retry_initial=0.05, retry_max=0.5)

    with oslo_notifier(rabbitmq_url, exchange=amqp_exchange) as notifier:
        for i, s in enumerate(before):
            publish_sample(notifier, s, i)
        publish_sample(notifier, big, 50)
    publish_raw(rabbitmq_url, amqp_exchange, [garbage])
    with oslo_notifier(rabbitmq_url, exchange=amqp_exchange) as notifier:
        for i, s in enumerate(after):
            publish_sample(notifier, s, 100 + i)

    total = len(before) + 1 + 1 + len(after)
    wait_until(lambda: bridge.stats.acked >= total, 60, f"every message acknowledged ({bridge.stats.line()})")
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "an empty queue")
    s = bridge.stats
    assert (s.dead, s.rejected, s.event_messages) == (2, 1, len(before) + len(after)), s.line()
    assert s.reconnects == 0

    log = open_log(kafka_url)
    try:
        stored = log_ids(log)
        letters = list(log.dead_letters())
    finally:
        log.close()
    assert len(stored) == events_of(before) + events_of(after), "a message after the poison was lost"
    assert len(letters) == 2
    refused = next(d for d in letters if "refused by the log" in d.reason)
    junk = next(d for d in letters if d is not refused)
    assert refused.source == junk.source == f"amqp:{amqp_exchange}/{TOPIC}.info"
    for letter in letters:
        assert len(letter.raw) == DEAD_LETTER_MAX_BYTES and letter.truncated
        assert len(letter.sha256) == 64
    assert refused.size > 1_500_000 and b'"display_name' in refused.raw or refused.raw.startswith(b"{")
    assert junk.size == len(garbage) and junk.sha256 == hashlib.sha256(garbage).hexdigest()
    assert junk.raw == garbage[:DEAD_LETTER_MAX_BYTES]
    assert "JSON" in junk.reason
