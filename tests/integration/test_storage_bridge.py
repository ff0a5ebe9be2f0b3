"""Cinder's and Ironic's notifications through RabbitMQ (issue 17): sent by oslo.messaging's
own Notifier as Cinder (exchange ``openstack``, topic ``notifications``) and Ironic
(exchange ``ironic``, topic ``ironic_versioned_notifications``) send them, consumed by
one bridge bound to both opt-in targets (ADR 0018), stored as the tables say, nothing
dead. The exchanges get unique names per test, as Nova's do in test_amqp_bridge."""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest

from eventmodel.log import open_log
from eventmodel.sources.amqp import CINDER_TARGET, IRONIC_TARGET, Bridge, BridgeConfig, Target
from tests.fixtures.rabbitmq import _delete, _unique, oslo_notifier, queue_depth, wait_until
from tests.unit.notification_corpus import Corpus

pytestmark = pytest.mark.rabbitmq

CINDER = Corpus("cinder-notifications")
IRONIC = Corpus("ironic-notifications")


@pytest.fixture
def exchanges(rabbitmq_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """Two topic exchange names unique to this test, in place of ``openstack`` and ``ironic``."""
    names = (_unique("openstack-test", request), _unique("ironic-test", request))
    yield names
    for name in names:
        _delete(rabbitmq_url, exchange=name)


def _send(url: str, exchange: str, topic: str, corpus: Corpus) -> collections.Counter[str]:
    """Every file of ``corpus`` through a Notifier on ``exchange``/``topic``, at its priority
    and with its publisher; what the log must hold, by event type."""
    expected: collections.Counter[str] = collections.Counter()
    with oslo_notifier(url, exchange=exchange, publisher_id="unused", topics=(topic,)) as notifier:
        for name, becomes in sorted(corpus.expected.items()):
            inner = corpus.inner(name)
            context = {k.removeprefix("_context_"): v for k, v in inner.items() if k.startswith("_context_")}
            send = getattr(notifier.prepare(publisher_id=inner["publisher_id"]), inner["priority"].lower())
            send(context, inner["event_type"], inner["payload"])
            if becomes != "irrelevant":
                expected[becomes] += 1
    return expected


def test_cinder_and_ironic_notifications_through_the_opt_in_targets(
    rabbitmq_url: str, amqp_queue: str, exchanges: tuple[str, str], sqlite_url: str
) -> None:
    cinder_ex, ironic_ex = exchanges
    cinder, ironic = Target.parse(CINDER_TARGET), Target.parse(IRONIC_TARGET)
    assert (cinder.exchange, cinder.topic) == ("openstack", "notifications")
    assert (ironic.exchange, ironic.topic) == ("ironic", "ironic_versioned_notifications")
    log = open_log(sqlite_url)
    bridge = Bridge(log, BridgeConfig(
        amqp_url=rabbitmq_url, queue=amqp_queue, stats_interval=0, reconnect_initial=0.2, reconnect_max=2.0,
        targets=[f"{cinder_ex}.{cinder.topic}", f"{ironic_ex}.{ironic.topic}"],
    ))
    bridge.start()
    try:
        assert bridge.wait_ready(30), f"bridge did not start consuming: {bridge.stats.last_error}"
        expected = _send(rabbitmq_url, cinder_ex, cinder.topic, CINDER)
        expected += _send(rabbitmq_url, ironic_ex, ironic.topic, IRONIC)
        total = len(CINDER.expected) + len(IRONIC.expected)
        wait_until(lambda: bridge.stats.acked >= total, 60,
                   f"{total} notifications acknowledged (stats: {bridge.stats.line()})")
        s = bridge.stats
        assert (s.dead, s.received, s.acked) == (0, total, total)
        assert s.event_messages == sum(expected.values()) and s.irrelevant == total - s.event_messages
    finally:
        bridge.stop(timeout=30)
        log.close()
    stored = open_log(sqlite_url)
    try:
        got = collections.Counter(r.envelope.type for batch in stored.read() for r in batch)
        assert got == expected
        assert list(stored.dead_letters()) == []
        sources = {r.envelope.source for batch in stored.read() for r in batch}
        assert "volume.controller-1" in sources and "ironic-conductor.conductor-1" in sources
    finally:
        stored.close()
    wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 10, "the bridge's queue to be empty")

