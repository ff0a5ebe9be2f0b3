"""Which partition a key goes to: Kafka's Java client's default partitioner (murmur2)."""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_U32 = 0xFFFFFFFF
_unpack = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as unsigned 32 bits."""
    n = len(data)
    h = (0x9747B28C ^ n) & _U32
    n4 = n & ~3
    for (k,) in _unpack(data[:n4]):
        k = (k * _M) & _U32
        k ^= k >> 24
        k = (k * _M) & _U32
        h = ((h * _M) & _U32) ^ k
    extra = n & 3
    if extra == 3:
        h ^= data[n4 + 2] << 16
    if extra >= 2:
        h ^= data[n4 + 1] << 8
    if extra >= 1:
        h ^= data[n4]
        h = (h * _M) & _U32
    h ^= h >> 13
    h = (h * _M) & _U32
    h ^= h >> 15
    return h


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition of a key: the Java client's default partitioner."""
    if isinstance(key, str):
        key = key.encode()
    return (murmur2(key) & 0x7FFFFFFF) % partitions
