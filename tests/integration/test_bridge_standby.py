"""Issue 11, finding 5: the bridge's queue is single-active-consumer.

Two bridges on one queue: one consumes, the other is a hot standby, so per-key order
holds (round-robin between two would interleave their appends); when the active one is
killed (SIGKILL) the standby takes over what it left unacknowledged. A queue declared
before, without the argument, is a clear error that names the migration. Real RabbitMQ,
the real Kafka broker, oslo.messaging's Notifier.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventmodel.log import open_log
from eventmodel.log.base import EventLog
from tests.fixtures.rabbitmq import (
    amqp_channel,
    consumer_count,
    oslo_notifier,
    publish_sample,
    queue_depth,
    rabbitmqctl,
    wait_until,
)
from tests.integration.test_amqp_bridge import ROOT, BridgeProcess, bridge_procs  # noqa: F401 - fixture
from tests.integration.test_bridge_stall import last_stat

pytestmark = [pytest.mark.rabbitmq, pytest.mark.kafka]

TOPIC = "versioned_notifications"
INSTANCES = [f"5c2b6b4e-0000-4000-8000-00000000000{i}" for i in range(5)]


def renames(samples_dir: Path, n: int, first: int = 0) -> list[dict[str, Any]]:
    """``n`` instance.update notifications over INSTANCES in turn, each with a new display
    name ``name-<i>``; all share one ``updated_at`` (Nova's one-second resolution), so only
    log order decides which name wins."""
    base = json.loads((samples_dir / "instance-update.json").read_text())
    base["payload"]["nova_object.data"]["updated_at"] = "2026-11-25T15:31:37Z"
    out = []
    for i in range(first, first + n):
        s = json.loads(json.dumps(base))
        data = s["payload"]["nova_object.data"]
        data["uuid"] = INSTANCES[i % len(INSTANCES)]
        data["display_name"] = f"name-{i}"
        out.append(s)
    return out


def publish(url: str, exchange: str, samples: list[dict[str, Any]]) -> None:
    with oslo_notifier(url, exchange=exchange) as notifier:
        for i, s in enumerate(samples):
            publish_sample(notifier, s, i)


def names_in_log_order(log: EventLog) -> tuple[dict[str, list[int]], collections.Counter[str]]:
    """Per instance, the name numbers of its records in log order, first copies only; and
    how often each event id is stored."""
    seen: collections.Counter[str] = collections.Counter()
    order: dict[str, list[int]] = collections.defaultdict(list)
    for batch in log.read_raw():
        for r in batch:
            rec = msgspec.json.decode(r.value)
            seen[rec["event_id"]] += 1
            if seen[rec["event_id"]] > 1 or rec["key"] not in INSTANCES:
                continue
            order[rec["key"]].append(int(_find_name(rec).removeprefix("name-")))
    return order, seen


def _find_name(rec: Any) -> str:
    """The ``name-<i>`` string inside a stored record, wherever the codec put it."""
    stack = [rec]
    while stack:
        v = stack.pop()
        if isinstance(v, str) and v.startswith("name-"):
            return v
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    raise AssertionError(f"no name in {rec}")


def test_two_bridges_keep_per_key_order_and_the_standby_takes_over(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, samples_dir: Path, kafka_url: str,
    tmp_path: Path, bridge_procs: list[BridgeProcess],
) -> None:
    active = BridgeProcess(tmp_path, kafka_url, rabbitmq_url, amqp_exchange, amqp_queue, "active")
    active.args += ["--batch", "20"]
    bridge_procs.append(active.start())
    wait_until(lambda: consumer_count(rabbitmq_url, amqp_queue) == 1, 60, f"the first bridge\n{active.output}")
    standby = BridgeProcess(tmp_path, kafka_url, rabbitmq_url, amqp_exchange, amqp_queue, "standby")
    standby.args += ["--batch", "20"]
    bridge_procs.append(standby.start())
    wait_until(lambda: consumer_count(rabbitmq_url, amqp_queue) == 2, 60, f"the second bridge\n{standby.output}")

    # 200 same-second updates: one bridge takes them all, in order
    first = renames(samples_dir, 200)
    publish(rabbitmq_url, amqp_exchange, first)
    wait_until(lambda: last_stat(active.output, "acked") >= len(first), 60, f"the first 200\n{active.output}")
    assert last_stat(standby.output, "received") == 0, standby.output

    # the active one dies mid-stream; the standby takes over
    second = renames(samples_dir, 1500, first=200)
    log = open_log(kafka_url)
    try:
        start = log.end().total
        pub = threading.Thread(target=publish, args=(rabbitmq_url, amqp_exchange, second))
        pub.start()
        wait_until(lambda: log.end().total - start >= 300, 60, f"the stream under way\n{active.output}")
        active.kill()
        assert active.proc is not None and active.proc.returncode == -signal.SIGKILL
        pub.join(120)
        assert not pub.is_alive()
        want = len(first) + len(second)
        wait_until(lambda: len(names_in_log_order(log)[1]) >= want, 90,
                   f"every update stored after the takeover\n{standby.output}")
        wait_until(lambda: queue_depth(rabbitmq_url, amqp_queue) == 0, 30, "an empty queue")
        assert last_stat(standby.output, "received") > 0, standby.output

        order, seen = names_in_log_order(log)
        assert len(seen) == want
        for key, numbers in order.items():
            assert numbers == sorted(numbers), f"{key}: records out of publish order"
        from projections.replay import model_at

        model = model_at(log)
        names = {u: i.name for u, i in model.instances().items() if u in INSTANCES}
        last = {}
        for i in range(want):
            last[INSTANCES[i % len(INSTANCES)]] = f"name-{i}"
        assert names == last
    finally:
        log.close()


def test_an_old_queue_without_single_active_consumer_names_the_migration(
    rabbitmq_url: str, amqp_queue: str, amqp_exchange: str, sqlite_url: str, samples_dir: Path,
    tmp_path: Path, bridge_procs: list[BridgeProcess],
) -> None:
    with amqp_channel(rabbitmq_url) as ch:  # what an older bridge declared
        ch.queue_declare(amqp_queue, durable=True, auto_delete=False)
    args = [sys.executable, "-m", "eventmodel.cli.main", "bridge", "--log", sqlite_url, "--amqp", rabbitmq_url,
            "--topic", f"{amqp_exchange}.{TOPIC}", "--queue", amqp_queue, "--stats-every", "0"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = " ".join((res.stdout + res.stderr).split())  # the CLI wraps its error text
    assert res.returncode != 0, out
    assert "single-active-consumer" in out and f"rabbitmqctl delete_queue {amqp_queue}" in out, out
    assert f"--queue {amqp_queue}-sac" in out and "--no-single-active-consumer" in out, out

    # until it is migrated, the old queue works with --no-single-active-consumer
    old = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "old")
    old.args += ["--no-single-active-consumer"]
    bridge_procs.append(old.start())
    wait_until(lambda: consumer_count(rabbitmq_url, amqp_queue) == 1, 60, f"the bridge on the old queue\n{old.output}")
    publish(rabbitmq_url, amqp_exchange, renames(samples_dir, 5))
    wait_until(lambda: last_stat(old.output, "acked") >= 5, 30, old.output)

    # the in-place migration: stop, delete, start — the queue is then single-active-consumer
    assert old.proc is not None
    old.proc.send_signal(signal.SIGTERM)
    assert old.wait_exit(30) == 0, old.output
    rabbitmqctl("delete_queue", amqp_queue)
    new = BridgeProcess(tmp_path, sqlite_url, rabbitmq_url, amqp_exchange, amqp_queue, "new")
    bridge_procs.append(new.start())
    wait_until(lambda: consumer_count(rabbitmq_url, amqp_queue) == 1, 60, f"the bridge on the new queue\n{new.output}")
    listed = rabbitmqctl("list_queues", "name", "arguments")
    line = next(ln for ln in listed.splitlines() if ln.startswith(amqp_queue))
    assert "x-single-active-consumer" in line and "true" in line, listed
