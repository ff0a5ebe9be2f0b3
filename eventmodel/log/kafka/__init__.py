"""The Kafka backend of the event log (confluent-kafka), by role:

- :mod:`~eventmodel.log.kafka.log` — :class:`KafkaEventLog`: what it guarantees (read its
  module docstring first), its state and lifecycle;
- :mod:`~eventmodel.log.kafka.urls` — the ``kafka://`` URL's options and their defaults;
- :mod:`~eventmodel.log.kafka.partitioner` — which partition a key goes to (murmur2);
- :mod:`~eventmodel.log.kafka.admin` — topics, metadata and offsets;
- :mod:`~eventmodel.log.kafka.producer` — appends;
- :mod:`~eventmodel.log.kafka.consumer` — the consumer pool and reads.
"""

from eventmodel.log.kafka.admin import METADATA_MAX_AGE_S
from eventmodel.log.kafka.log import DEAD_LETTER_SUFFIX, KafkaEventLog
from eventmodel.log.kafka.partitioner import murmur2, partition_for
from eventmodel.log.kafka.producer import RECORD_OVERHEAD
from eventmodel.log.kafka.urls import DEFAULTS

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DEFAULTS",
    "METADATA_MAX_AGE_S",
    "RECORD_OVERHEAD",
    "KafkaEventLog",
    "murmur2",
    "partition_for",
]
