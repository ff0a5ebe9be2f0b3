"""The options of a ``kafka://host:port/topic?...`` URL: their defaults, and how they
become constructor arguments, librdkafka settings and topic configs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from eventmodel.log.base import LogUrlError
from eventmodel.urls import redact

DEFAULTS: dict[str, Any] = {
    "partitions": 6,
    "replication": 1,
    "min_insync_replicas": 0,  # 0: derived from replication (1 → 1, 2 → 1, ≥3 → 2)
    "max_record_bytes": 1_000_000,
    "retention_ms": -1,
    "delivery_timeout_ms": 300_000,
    "connect_timeout_s": 30.0,
    "read_timeout_s": 60.0,
}


def _as_int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LogUrlError(f"option {name}={value!r} is not an integer") from None


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LogUrlError(f"option {name}={value!r} is not a number") from None


def parse_options(
    netloc: str, topic: str, options: Mapping[str, str] | None, url: str | None, kwargs: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """``(bootstrap, constructor keyword arguments)`` for a Kafka URL's parts.

    ``user:password@`` becomes ``sasl.username``/``sasl.password``; ``kafka.*`` options
    go to the clients, ``topic.*`` to the topic's configs; an unknown option is refused.
    ``kwargs`` (constructor arguments given in code) win over the URL's; a ``config``
    among them (librdkafka settings) is merged with the URL's ``kafka.*`` options.
    """
    where = redact(url or f"kafka://{netloc}/{topic}")
    config: dict[str, Any] = {}
    topic_config: dict[str, str] = {}
    args: dict[str, Any] = {}
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        config["sasl.username"] = unquote(user)
        if password:
            config["sasl.password"] = unquote(password)
    for name, value in (options or {}).items():
        if name.startswith("kafka."):
            config[name[len("kafka."):]] = value
        elif name.startswith("topic."):
            topic_config[name[len("topic."):]] = value
        elif name in ("partitions", "replication", "min_insync_replicas", "max_record_bytes",
                      "retention_ms", "delivery_timeout_ms"):
            args[name] = _as_int(name, value)
        elif name in ("connect_timeout_s", "read_timeout_s"):
            args[name] = _as_float(name, value)
        else:
            known = ", ".join([*DEFAULTS, "kafka.<librdkafka setting>", "topic.<topic config>"])
            raise LogUrlError(f"{where}: unknown option {name!r} (known: {known})")
    config.update(kwargs.pop("config", None) or {})
    topic_config.update(kwargs.pop("topic_config", None) or {})
    args.update(kwargs)
    return netloc, {"config": config, "topic_config": topic_config, **args}
