"""eventmodel: an event-sourced, always-current model of an OpenStack cluster.

The public surface is ``__all__`` (and :mod:`eventmodel.testing` for those who test
against the model); everything else may change. What a decision engine embeds
(``ModelEngine``, ``ClusterModel``) lives in :mod:`projections`. Names that need an
optional extra (the normalizer plugins, which import nothing heavy, are included) are
imported on first use, so ``import eventmodel`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from eventmodel.errors import (
    ConfigError, Error, ModelError, ServeError, SimConfigError, SimError, SourceError, WatcherError,
)
from eventmodel.events import (
    AGGREGATE, INSTANCE, KINDS, LOWEST_VERSION, NODE, SERVICE, Aggregate, AggregateChanged, AggregateDeleted,
    AggregateObserved, AuditRead, ComputeNode, ComputeNodeObserved, ComputeService, ComputeServiceChanged,
    ComputeServiceDeleted, ComputeServiceObserved, EntityAbsent, Envelope, Flavor, Instance, InstanceCreated,
    InstanceDeleted, InstanceLockChanged, InstanceMigrated, InstanceObserved, InstanceResized, InstanceSeen,
    InstanceStateChanged, InstanceUpdated, PartialInstance, SnapshotAborted, SnapshotCompleted, SnapshotStarted,
    envelope, event_id,
)
from eventmodel.events import (
    BAREMETAL_KINDS, BAREMETAL_NODE, COMPUTE_KINDS, POOL, STORAGE_KINDS, STORAGE_NODE, VOLUME, VOLUME_TYPE,
    BaremetalNode, BaremetalNodeChanged, BaremetalNodeDeleted, BaremetalNodeObserved, PoolChanged, PoolObserved,
    StorageNode, StorageNodeObserved, StoragePool, Volume, VolumeAttachment, VolumeChanged, VolumeDeleted,
    VolumeObserved, VolumeType, VolumeTypeObserved,
)
from eventmodel.log import (
    BroadcastIncomplete, DeadLetter, EventLog, LogError, LogUrlError, PartitionsChanged, Position, PositionNotCovered,
    Record, RecordsRejected, open_log,
)

#: name -> module for names imported on first use
_LAZY = {
    "Codec": "eventmodel.codec", "EventTypes": "eventmodel.codec", "DecodeError": "eventmodel.codec",
    "NovaNormalizer": "eventmodel.sources.nova", "MessageNormalizer": "eventmodel.sources.nova",
    "Outcome": "eventmodel.sources.nova", "Invalid": "eventmodel.sources.nova",
    "CinderNormalizer": "eventmodel.sources.cinder", "IronicNormalizer": "eventmodel.sources.ironic",
    "CompositeNormalizer": "eventmodel.sources.plugins", "Plugin": "eventmodel.sources.plugins",
    "PluginNormalizer": "eventmodel.sources.plugins", "load_plugins": "eventmodel.sources.plugins",
    "Snapshotter": "eventmodel.sources.sync", "SyncResult": "eventmodel.sources.sync",
    "PeriodicSync": "eventmodel.sources.sync", "CloudReader": "eventmodel.sources.sync",
    "SyncStopped": "eventmodel.sources.sync", "CloudApiError": "eventmodel.sources.openstack",
    "RetryStopped": "eventmodel.retry",
}

__all__ = [
    # errors
    "Error", "ConfigError", "LogError", "LogUrlError", "RecordsRejected", "PositionNotCovered", "PartitionsChanged", "BroadcastIncomplete",
    "DecodeError", "SourceError", "Invalid", "CloudApiError", "SyncStopped", "ModelError", "WatcherError",
    "ServeError", "SimError", "SimConfigError", "RetryStopped",
    # the log
    "EventLog", "open_log", "Position", "Record", "DeadLetter", "Envelope", "envelope", "event_id",
    "Codec", "EventTypes",
    # entities and events
    "KINDS", "INSTANCE", "NODE", "SERVICE", "AGGREGATE", "LOWEST_VERSION",
    "Instance", "Flavor", "ComputeNode", "ComputeService", "Aggregate", "PartialInstance",
    "InstanceCreated", "InstanceUpdated", "InstanceStateChanged", "InstanceLockChanged", "InstanceResized",
    "InstanceMigrated", "InstanceDeleted", "InstanceObserved", "InstanceSeen", "ComputeNodeObserved",
    "ComputeServiceChanged", "ComputeServiceDeleted", "ComputeServiceObserved", "AggregateChanged",
    "AggregateDeleted", "AggregateObserved", "SnapshotStarted", "SnapshotCompleted", "SnapshotAborted",
    "EntityAbsent", "AuditRead",
    # block storage (Cinder) and bare metal (Ironic)
    "COMPUTE_KINDS", "STORAGE_KINDS", "BAREMETAL_KINDS", "STORAGE_NODE", "POOL", "VOLUME", "VOLUME_TYPE",
    "BAREMETAL_NODE", "StorageNode", "StoragePool", "Volume", "VolumeAttachment", "VolumeType", "BaremetalNode",
    "VolumeChanged", "VolumeDeleted", "VolumeObserved", "PoolChanged", "PoolObserved", "StorageNodeObserved",
    "VolumeTypeObserved", "BaremetalNodeChanged", "BaremetalNodeDeleted", "BaremetalNodeObserved",
    # sources: normalizers, plugins, the full sync
    "NovaNormalizer", "CinderNormalizer", "IronicNormalizer", "MessageNormalizer", "Outcome", "CompositeNormalizer",
    "Plugin", "PluginNormalizer", "load_plugins", "Snapshotter", "SyncResult", "PeriodicSync", "CloudReader",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eventmodel' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
