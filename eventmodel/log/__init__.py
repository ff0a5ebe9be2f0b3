"""The event log: one contract (:class:`EventLog`), backends chosen by URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from eventmodel.codec import Codec
from eventmodel.log.base import (
    BroadcastIncomplete,
    DeadLetter,
    EventLog,
    LogError,
    LogUrlError,
    PartitionsChanged,
    Position,
    PositionNotCovered,
    RawRecord,
    Record,
    RecordsRejected,
)

__all__ = [
    "BroadcastIncomplete", "DeadLetter", "EventLog", "LogError", "LogUrlError", "PartitionsChanged", "Position",
    "PositionNotCovered", "RawRecord", "Record", "RecordsRejected", "open_log",
]

DEFAULT_URL = "sqlite:///eventmodel.db"


def open_log(url: str, codec: Codec | None = None, *, create: bool = True) -> EventLog:
    """Open the log a URL names.

    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — embedded default
      (``?max_record_bytes=N``: the largest record it stores, default 1,000,000);
    - ``kafka://host:port[,host:port]/topic?partitions=6&...`` — Apache Kafka.

    Without ``create`` an embedded log must already exist (readers use this so that a
    typo does not leave an empty log file behind).
    """
    scheme, _, rest = url.partition("://")
    if not rest:
        raise LogUrlError(f"not a log URL: {url!r} (try sqlite:///eventmodel.db or kafka://host:9092/topic)")
    if scheme == "sqlite":
        from eventmodel.log.sqlite import SqliteEventLog

        path = rest[1:] if rest.startswith("/") else rest
        path, _, query = path.partition("?")
        if not path:
            raise LogUrlError(f"{url!r} names no file")
        options: dict[str, int] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name != "max_record_bytes":
                raise LogUrlError(f"{url!r}: unknown option {name!r} (known: max_record_bytes)")
            try:
                options[name] = int(value)
            except ValueError:
                raise LogUrlError(f"{url!r}: option {name}={value!r} is not an integer") from None
        return SqliteEventLog(path, codec, url=url, create=create, **options)
    if scheme == "kafka":
        from eventmodel.log.kafka import KafkaEventLog

        parts = urlsplit(url)
        return KafkaEventLog.from_url(parts.netloc, parts.path.lstrip("/"), dict(parse_qsl(parts.query)), codec, url=url)
    raise LogUrlError(f"unknown log backend {scheme!r} in {url!r} (sqlite or kafka)")
