"""``eventmodel bridge --metrics-port`` as a real process against the real RabbitMQ: its
endpoint serves what prometheus_client's own parser reads, and the counters rise as
notifications flow (relevant ones become events, garbage becomes dead letters)."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventmodel.log import open_log
from tests.fixtures.rabbitmq import publish_raw, wait_until
from tests.integration.test_amqp_bridge import (
    BridgeProcess,
    expected_ids,
    relevant_samples,
    stream,
)

pytestmark = pytest.mark.rabbitmq

GARBAGE = [b"\x00 not json", b"[1, 2]", b'{"oslo.version": "2.0"}']


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape_until(url: str, name: str, want: float, timeout: float, what: str) -> dict:
    """Scrape until ``name`` has the value ``want``; the samples of that scrape."""
    def once() -> dict | None:
        samples = scrape(url)
        return samples if value(samples, name) == want else None

    return wait_until(once, timeout, what)


def test_bridge_serves_metrics_that_rise_as_notifications_flow(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, samples_dir: Path, sqlite_url: str,
    tmp_path: Path,
) -> None:
    bodies = stream(relevant_samples(samples_dir), 300, "metrics")
    events = len(expected_ids(bodies))
    proc = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "metrics")
    proc.args += ["--metrics-port", "0", "--batch", "50"]
    proc.start()
    try:
        found = wait_until(lambda: re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", proc.output),
                           60, "the bridge to print its metrics address")
        url = found.group(1)
        before = scrape_until(url, "eventmodel_bridge_connected", 1, 60, "the bridge to report itself connected")
        assert value(before, "eventmodel_bridge_messages_received_total") == 0
        assert value(before, "eventmodel_bridge_dead_letters_total", reason="normalizer") == 0
        assert value(before, "process_cpu_seconds_total") is not None  # the process collectors

        publish_raw(rabbitmq_url, amqp_exchange, bodies + GARBAGE)
        total = len(bodies) + len(GARBAGE)
        after = scrape_until(url, "eventmodel_bridge_messages_acked_total", total, 60,
                             f"{total} messages acknowledged in the metrics")
        assert value(after, "eventmodel_bridge_messages_received_total") == total
        assert value(after, "eventmodel_bridge_events_appended_total") == events
        assert value(after, "eventmodel_bridge_event_messages_total") == len(bodies)
        assert value(after, "eventmodel_bridge_dead_letters_total", reason="normalizer") == len(GARBAGE)
        assert value(after, "eventmodel_bridge_batches_total") >= total / 50
        appends = value(after, "eventmodel_bridge_append_seconds_count")
        assert appends is not None and appends >= 2  # events and dead letters, at least once each
        assert value(after, "eventmodel_bridge_reconnects_total") == 0
        # the depth gauge is polled from RabbitMQ: it shows the queue drained
        wait_until(lambda: value(scrape(url), "eventmodel_bridge_queue_messages") == 0, 30,
                   "the queue depth gauge to show an empty queue")
        log = open_log(sqlite_url)
        try:
            assert log.end().total == events  # the metrics say what the log holds
            assert len(list(log.dead_letters())) == len(GARBAGE)
        finally:
            log.close()
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait_exit(60) == 0, proc.output
        with pytest.raises(OSError):  # the endpoint is gone with the process
            urllib.request.urlopen(url, timeout=5)
    finally:
        proc.close()
