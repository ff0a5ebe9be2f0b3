"""Typed events: entity states, event payloads and the envelope every log record carries.

Times are integers: microseconds since the Unix epoch, UTC. Entity versions use the
same unit (see ``Instance.version``); the fold compares them, never wall clocks.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args

import attrs
import msgspec

# ---------------------------------------------------------------------------
# Entity states (the full state after a change; the projection stores them as-is)
# ---------------------------------------------------------------------------


@attrs.frozen(slots=True, cache_hash=False)
class Flavor:
    """The resources an instance uses, as its flavor states them."""

    name: str
    vcpus: int
    memory_mb: int
    root_gb: int = 0
    ephemeral_gb: int = 0
    swap_mb: int = 0
    #: the flavor's extra specs (``hw:cpu_policy``, ``trait:…``, ``aggregate_instance_extra_specs:…``)
    extra_specs: dict[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def disk_gb(self) -> int:
        return self.root_gb + self.ephemeral_gb


@attrs.frozen(slots=True)
class Instance:
    """A Nova server as the source last described it.

    ``host`` is the compute service host, ``node`` the hypervisor hostname; both are
    ``None`` while the instance is being scheduled or after a shelve offload.
    ``version`` is the source's ``updated_at``, else its ``created_at``, else
    :data:`LOWEST_VERSION`, in µs (never a clock of ours).
    """

    uuid: str
    version: int
    host: str | None
    node: str | None
    vm_state: str
    flavor: Flavor
    power_state: str | None = None
    task_state: str | None = None
    project_id: str = ""
    user_id: str = ""
    name: str = ""
    locked: bool = False
    locked_reason: str | None = None
    availability_zone: str | None = None
    #: the server's user metadata (Watcher excludes instances by it)
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)
    #: when Nova created the server (µs), if the source said
    created_at: int | None = None

    @property
    def key(self) -> str:
        return self.uuid


@attrs.frozen(slots=True)
class ComputeNode:
    """A hypervisor and its Placement inventory (capacity, reserved, allocation ratios)."""

    name: str  # hypervisor hostname (Nova's ``node``)
    version: int
    host: str | None = None  # compute service host
    uuid: str | None = None  # resource provider uuid
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0
    vcpus_reserved: int = 0
    memory_mb_reserved: int = 0
    disk_gb_reserved: int = 0
    cpu_allocation_ratio: float = 1.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    hypervisor_type: str | None = None
    state: str = "up"  # hypervisor state as the API reports it
    #: the hypervisor's status as its listing reported it (``status: disabled`` and the
    #: service's reason); :meth:`projections.model.ClusterModel.node_status` joins the
    #: fresher state of the node's compute service over it
    disabled: bool = False
    disabled_reason: str | None = None

    @property
    def key(self) -> str:
        return self.name


@attrs.frozen(slots=True)
class ComputeService:
    """A Nova service (normally ``nova-compute``) on a host."""

    host: str
    binary: str
    version: int
    disabled: bool = False
    disabled_reason: str | None = None
    forced_down: bool = False
    up: bool = True
    uuid: str | None = None
    #: the zone Nova reports for the service's host (from its aggregates, else the default zone)
    availability_zone: str | None = None

    @property
    def key(self) -> str:
        return service_key(self.host, self.binary)


@attrs.frozen(slots=True)
class Aggregate:
    """A Nova host aggregate (mirrored in Placement under the same uuid).

    Nova's aggregate notifications carry no time, so every aggregate record has the
    lowest version and log order decides (the API serialises changes to one aggregate).
    """

    uuid: str
    version: int = 0
    id: int | None = None
    name: str = ""
    #: the zone the aggregate defines (its ``availability_zone`` metadata), if any
    availability_zone: str | None = None
    hosts: tuple[str, ...] = ()
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def key(self) -> str:
        return self.uuid


@attrs.frozen(slots=True)
class PartialInstance:
    """A server an API listing returned without what the model needs: Nova's minimal
    record (id, status ``UNKNOWN``, tenant) for a server in a cell it cannot reach.

    A full sync counts it as seen (it is not reconciled away) and changes nothing."""

    uuid: str
    status: str = "UNKNOWN"
    project_id: str = ""

    @property
    def key(self) -> str:
        return self.uuid


# -- block storage (Cinder) and bare metal (Ironic) -----------------------------


@attrs.frozen(slots=True)
class StorageNode:
    """A cinder-volume service: one backend of a storage host (``host@backend``).

    Cinder sends no notification about its services: only a full sync reads them, and
    their version is the lowest (log order decides)."""

    host: str  # host@backend
    version: int = 0
    zone: str | None = None
    disabled: bool = False
    disabled_reason: str | None = None
    up: bool = True

    @property
    def key(self) -> str:
        return self.host

    @property
    def backend(self) -> str:
        """The part after ``@``: what a volume type's ``volume_backend_name`` names."""
        return self.host.partition("@")[2]


@attrs.frozen(slots=True)
class StoragePool:
    """A pool of a storage backend (``host@backend#pool``) and its capacity in GB.

    ``version`` is the time the backend reported these figures (Cinder's ``reported_at``
    in ``capacity.pool``, the pool's ``timestamp`` in the scheduler's listing), else the
    lowest. A capacity the backend reports as ``infinite`` or ``unknown`` is None with
    its word in ``unbounded``."""

    name: str
    version: int = 0
    total_capacity_gb: float | None = None
    free_capacity_gb: float | None = None
    provisioned_capacity_gb: float | None = None
    allocated_capacity_gb: float | None = None
    virtual_free_gb: float | None = None
    #: how many volumes the backend says the pool holds (only some drivers report it)
    total_volumes: int | None = None
    #: ``infinite`` or ``unknown`` when the backend reported no number for its capacity
    unbounded: str | None = None

    @property
    def key(self) -> str:
        return self.name

    @property
    def node(self) -> str:
        """The storage node (``host@backend``) the pool belongs to."""
        return self.name.partition("#")[0]


@attrs.frozen(slots=True)
class VolumeType:
    """A Cinder volume type: its name and the backend it selects (``volume_backend_name``)."""

    id: str
    version: int = 0
    name: str = ""
    backend_name: str | None = None
    is_public: bool = True
    extra_specs: dict[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def key(self) -> str:
        return self.id


@attrs.frozen(slots=True)
class VolumeAttachment:
    """A volume attached to a server (only attachments Cinder counts as attached)."""

    server_id: str
    attachment_id: str


@attrs.frozen(slots=True)
class Volume:
    """A Cinder volume as the source last described it.

    ``host`` is its pool (``host@backend#pool``), None while unscheduled. ``version``
    is Cinder's ``updated_at``, else ``created_at``, else the lowest, in µs; Cinder's
    volume notifications carry neither, so their records have the lowest version and
    log order decides among them (ADR 0018)."""

    uuid: str
    version: int
    host: str | None
    size_gb: int
    status: str
    name: str = ""
    project_id: str = ""
    user_id: str = ""
    #: the type's id (notifications) and name (the API; the sync's type table maps ids)
    volume_type_id: str | None = None
    volume_type: str | None = None
    availability_zone: str | None = None
    attachments: tuple[VolumeAttachment, ...] = ()
    multiattach: bool = False
    bootable: bool = False
    snapshot_id: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, hash=False)
    created_at: int | None = None

    @property
    def key(self) -> str:
        return self.uuid


@attrs.frozen(slots=True)
class BaremetalNode:
    """An Ironic node. ``version`` is Ironic's ``updated_at`` (whole seconds), else its
    ``created_at``, else the lowest. Nova's compute node of an Ironic node has the
    node's uuid as its hypervisor hostname."""

    uuid: str
    version: int
    name: str | None = None
    power_state: str | None = None
    provision_state: str | None = None
    maintenance: bool = False
    maintenance_reason: str | None = None
    resource_class: str | None = None
    instance_uuid: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def key(self) -> str:
        return self.uuid


#: the version of a record whose source gave no time at all: every other version beats it
LOWEST_VERSION = 0


def service_key(host: str, binary: str) -> str:
    """The entity key of a service: ``host/binary``."""
    return f"{host}/{binary}"


# ---------------------------------------------------------------------------
# Event payloads
# ---------------------------------------------------------------------------

INSTANCE = "instance"
NODE = "node"
SERVICE = "service"
AGGREGATE = "aggregate"
STORAGE_NODE = "storage_node"
POOL = "pool"
VOLUME = "volume"
VOLUME_TYPE = "volume_type"
BAREMETAL_NODE = "baremetal_node"
#: the kinds of Nova's model (a Nova full sync reconciles these)
COMPUTE_KINDS: tuple[str, ...] = (INSTANCE, NODE, SERVICE, AGGREGATE)
#: Cinder's (Watcher's storage model)
STORAGE_KINDS: tuple[str, ...] = (STORAGE_NODE, POOL, VOLUME, VOLUME_TYPE)
#: Ironic's (Watcher's baremetal model)
BAREMETAL_KINDS: tuple[str, ...] = (BAREMETAL_NODE,)
KINDS: tuple[str, ...] = COMPUTE_KINDS + STORAGE_KINDS + BAREMETAL_KINDS


#: what a record does to the fold: replaces the entity (``upsert``), deletes it, is a
#: sync's read of it (``observe``), says it exists (``seen``) or that a follow-up found
#: nothing (``absent``), opens or closes a snapshot (``marker``), or nothing (``ignore``)
Effect = Literal["upsert", "delete", "observe", "seen", "absent", "marker", "ignore"]
EFFECTS: tuple[Effect, ...] = get_args(Effect)


class Entity(Protocol):
    """An entity state an event carries: its key, and the version the fold compares."""

    @property
    def key(self) -> str: ...

    version: int


class Payload(Protocol):
    """What every payload class declares, built-in or a plugin's (an attrs class whose
    fields are the record's ``payload``): the log's type name and schema version, the
    kind of entity it changes (None for markers), its effect on the fold, and the
    attribute holding the entity state (None when it carries none)."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    KIND: ClassVar[str | None]
    EFFECT: ClassVar[Effect]
    ENTITY: ClassVar[str | None]


class Observation(Payload, Protocol):
    """A full sync's read of an entity (``EFFECT`` ``observe``): names its sync."""

    snapshot_id: str


class _Payload:
    """Base of the built-in payloads: the class line declares the :class:`Payload`
    attributes once, e.g. ``class InstanceDeleted(_Payload, type="instance.deleted",
    kind=INSTANCE, effect="delete")``; ``ENTITY`` is the kind when the class has a field
    of that name (its entity state), else None."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    KIND: ClassVar[str | None] = None
    EFFECT: ClassVar[Effect] = "upsert"
    ENTITY: ClassVar[str | None] = None

    def __init_subclass__(cls, *, type: str | None = None, kind: str | None = None,
                          effect: Effect = "upsert", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is None:
            return  # attrs re-creating the class with slots: the attributes are already set
        cls.TYPE, cls.KIND, cls.EFFECT = type, kind, effect
        cls.ENTITY = kind if kind is not None and kind in cls.__dict__.get("__annotations__", {}) else None


@attrs.frozen(slots=True)
class InstanceCreated(_Payload, type="instance.created", kind=INSTANCE):
    instance: Instance


@attrs.frozen(slots=True)
class InstanceUpdated(_Payload, type="instance.updated", kind=INSTANCE):
    """Anything about the instance changed (Nova ``instance.update`` and friends)."""

    instance: Instance
    action: str = ""  # the Nova action that caused it, e.g. "interface_attach"


@attrs.frozen(slots=True)
class InstanceStateChanged(_Payload, type="instance.state_changed", kind=INSTANCE):
    """vm_state / power_state changed: power on/off, pause, suspend, shelve, rescue, ..."""

    instance: Instance
    action: str = ""
    old_vm_state: str | None = None


@attrs.frozen(slots=True)
class InstanceLockChanged(_Payload, type="instance.lock_changed", kind=INSTANCE):
    instance: Instance


@attrs.frozen(slots=True)
class InstanceResized(_Payload, type="instance.resized", kind=INSTANCE):
    """The instance got a new flavor (and, for a resize to another host, a new host)."""

    instance: Instance
    old_flavor: Flavor | None = None
    source_host: str | None = None
    source_node: str | None = None
    action: str = "resize"  # resize | resize_revert | resize_confirm


@attrs.frozen(slots=True)
class InstanceMigrated(_Payload, type="instance.migrated", kind=INSTANCE):
    """The instance now lives on another host."""

    instance: Instance
    source_host: str | None = None
    source_node: str | None = None
    method: str = "live"  # live | cold | evacuate | unshelve


@attrs.frozen(slots=True)
class InstanceDeleted(_Payload, type="instance.deleted", kind=INSTANCE, effect="delete"):
    instance: Instance


@attrs.frozen(slots=True)
class InstanceObserved(_Payload, type="instance.observed", kind=INSTANCE, effect="observe"):
    """A full sync saw this instance in this state."""

    snapshot_id: str
    instance: Instance


@attrs.frozen(slots=True)
class InstanceSeen(_Payload, type="instance.seen", kind=INSTANCE, effect="seen"):
    """A full sync listed this instance without its state (see :class:`PartialInstance`):
    it exists, so reconciliation keeps it, and nothing about it changes."""

    snapshot_id: str
    uuid: str
    status: str = "UNKNOWN"


@attrs.frozen(slots=True)
class ComputeNodeObserved(_Payload, type="compute_node.observed", kind=NODE, effect="observe"):
    snapshot_id: str
    node: ComputeNode


@attrs.frozen(slots=True)
class ComputeServiceChanged(_Payload, type="compute_service.changed", kind=SERVICE):
    """A service was created, enabled, disabled, forced down or brought back up."""

    service: ComputeService
    change: str = "updated"  # created | enabled | disabled | forced_down | up | updated


@attrs.frozen(slots=True)
class ComputeServiceDeleted(_Payload, type="compute_service.deleted", kind=SERVICE, effect="delete"):
    service: ComputeService


@attrs.frozen(slots=True)
class ComputeServiceObserved(_Payload, type="compute_service.observed", kind=SERVICE, effect="observe"):
    snapshot_id: str
    service: ComputeService


@attrs.frozen(slots=True)
class AggregateChanged(_Payload, type="aggregate.changed", kind=AGGREGATE):
    """An aggregate was created, renamed, given metadata or a zone, or gained or lost a host."""

    aggregate: Aggregate
    change: str = "updated"  # created | update_prop | update_metadata | add_host | remove_host


@attrs.frozen(slots=True)
class AggregateDeleted(_Payload, type="aggregate.deleted", kind=AGGREGATE, effect="delete"):
    aggregate: Aggregate


@attrs.frozen(slots=True)
class AggregateObserved(_Payload, type="aggregate.observed", kind=AGGREGATE, effect="observe"):
    snapshot_id: str
    aggregate: Aggregate


# -- block storage (Cinder) --------------------------------------------------


@attrs.frozen(slots=True)
class VolumeChanged(_Payload, type="volume.changed", kind=VOLUME):
    """A volume was created, adopted, updated, attached, detached, extended, retyped,
    reverted or transferred (``change`` says which)."""

    volume: Volume
    change: str = "updated"


@attrs.frozen(slots=True)
class VolumeDeleted(_Payload, type="volume.deleted", kind=VOLUME, effect="delete"):
    volume: Volume


@attrs.frozen(slots=True)
class VolumeObserved(_Payload, type="volume.observed", kind=VOLUME, effect="observe"):
    snapshot_id: str
    volume: Volume


@attrs.frozen(slots=True)
class PoolChanged(_Payload, type="pool.changed", kind=POOL):
    """A backend reported a pool's capacity (Cinder's ``capacity.pool``)."""

    pool: StoragePool


@attrs.frozen(slots=True)
class PoolObserved(_Payload, type="pool.observed", kind=POOL, effect="observe"):
    snapshot_id: str
    pool: StoragePool


@attrs.frozen(slots=True)
class StorageNodeObserved(_Payload, type="storage_node.observed", kind=STORAGE_NODE, effect="observe"):
    snapshot_id: str
    storage_node: StorageNode


@attrs.frozen(slots=True)
class VolumeTypeObserved(_Payload, type="volume_type.observed", kind=VOLUME_TYPE, effect="observe"):
    snapshot_id: str
    volume_type: VolumeType


# -- bare metal (Ironic) -----------------------------------------------------


@attrs.frozen(slots=True)
class BaremetalNodeChanged(_Payload, type="baremetal_node.changed", kind=BAREMETAL_NODE):
    """An Ironic node was created, updated, powered, provisioned or put in maintenance."""

    baremetal_node: BaremetalNode
    change: str = "updated"


@attrs.frozen(slots=True)
class BaremetalNodeDeleted(_Payload, type="baremetal_node.deleted", kind=BAREMETAL_NODE, effect="delete"):
    baremetal_node: BaremetalNode


@attrs.frozen(slots=True)
class BaremetalNodeObserved(_Payload, type="baremetal_node.observed", kind=BAREMETAL_NODE, effect="observe"):
    snapshot_id: str
    baremetal_node: BaremetalNode


@attrs.frozen(slots=True)
class SnapshotStarted(_Payload, type="snapshot.started", effect="marker"):
    """Written to every partition before a full sync makes its first API call."""

    snapshot_id: str
    scope: tuple[str, ...] = COMPUTE_KINDS
    partitions: int = 1  # how many partitions the marker was written to
    #: the log's end (next offset per partition) the syncer read just before appending
    #: this marker: orders syncs by their start on each partition, so that a copy of an
    #: old sync's marker, appended later, cannot open a window again (None: older records)
    after: tuple[int, ...] | None = None
    #: for a follow-up round (a targeted re-read of the keys live records touched during
    #: a sync), the id of the sync it completes; its scope is empty (it deletes nothing)
    follows: str | None = None


@attrs.frozen(slots=True)
class SnapshotCompleted(_Payload, type="snapshot.completed", effect="marker"):
    """Written to every partition after the last observed record of a full sync."""

    snapshot_id: str
    counts: dict[str, int] = attrs.field(factory=dict, hash=False)
    #: occurred_at of the sync's started marker (orders syncs whatever marker a reader
    #: meets first); None in records written before it existed
    started_at: int | None = None
    after: tuple[int, ...] | None = None  # as in SnapshotStarted


@attrs.frozen(slots=True)
class SnapshotAborted(_Payload, type="snapshot.aborted", effect="marker"):
    """A full sync failed part-way: nothing it observed may cause deletions."""

    snapshot_id: str
    reason: str = ""
    started_at: int | None = None  # as in SnapshotCompleted
    after: tuple[int, ...] | None = None  # as in SnapshotStarted


@attrs.frozen(slots=True)
class EntityAbsent(_Payload, type="entity.absent", effect="absent"):
    """A follow-up read of one entity by its key found nothing (Nova answered 404, or a
    re-listing no longer had it). Inside its sync's window, for a key no live record
    touched there, the entity is deleted; anywhere else it changes nothing."""

    snapshot_id: str
    kind: str
    key: str


@attrs.frozen(slots=True)
class AuditRead(_Payload, type="audit.read", effect="ignore"):
    """A decision engine read the model at ``position`` for audit ``audit_id``: the
    durable record that lets anyone who reads this log rebuild exactly what it saw.
    Changes no entity (the fold ignores it)."""

    audit_id: str
    position: tuple[int, ...]  # the model's log position (offset per partition)
    model_recorded_at: int = 0  # recorded_at of the last record in that model (µs)
    read_at: int = 0  # when the engine took the model (µs, the engine's clock: for display only)
    reader: str = ""  # who read it, e.g. "watcher-decision-engine@host"
    #: SHA-256 of the snapshot export of that model (format ``digest_format``), "" if not taken
    digest: str = ""
    digest_format: str = ""  # e.g. "eventmodel.snapshot/1"


#: the key every ``audit.read`` record carries: one key, so one partition holds them all
#: and ``read_key`` lists them (a colon is never in a host name, instance uuid or service key)
AUDIT_KEY = "eventmodel:audits"


@attrs.frozen(slots=True)
class Unknown(_Payload, type="unknown", effect="ignore"):
    """A record whose type this process does not know (e.g. a plugin not installed)."""

    type: str
    data: dict = attrs.field(hash=False)


BUILTIN_PAYLOADS: tuple[type[_Payload], ...] = (
    InstanceCreated,
    InstanceUpdated,
    InstanceStateChanged,
    InstanceLockChanged,
    InstanceResized,
    InstanceMigrated,
    InstanceDeleted,
    InstanceObserved,
    InstanceSeen,
    ComputeNodeObserved,
    ComputeServiceChanged,
    ComputeServiceDeleted,
    ComputeServiceObserved,
    AggregateChanged,
    AggregateDeleted,
    AggregateObserved,
    VolumeChanged,
    VolumeDeleted,
    VolumeObserved,
    PoolChanged,
    PoolObserved,
    StorageNodeObserved,
    VolumeTypeObserved,
    BaremetalNodeChanged,
    BaremetalNodeDeleted,
    BaremetalNodeObserved,
    SnapshotStarted,
    SnapshotCompleted,
    SnapshotAborted,
    EntityAbsent,
    AuditRead,
)

#: types that a log writes to every partition
BROADCAST_TYPES = frozenset({SnapshotStarted.TYPE, SnapshotCompleted.TYPE, SnapshotAborted.TYPE})


def entity_of(payload: object) -> Entity | None:
    """The entity state an event carries (its ``ENTITY`` attribute, else its ``KIND``:
    a plugin's class may name only its kind), if any."""
    name = getattr(payload, "ENTITY", None) or getattr(payload, "KIND", None)
    return getattr(payload, name, None) if name else None


# ---------------------------------------------------------------------------
# The envelope
# ---------------------------------------------------------------------------


#: the payload class of an envelope (``Envelope[InstanceCreated]``); the codec decodes a
#: record straight into ``Envelope[cls]`` once it knows the payload's class
P = TypeVar("P", bound=Payload)


class Envelope(msgspec.Struct, Generic[P], frozen=True, gc=False):
    """One record on the log.

    ``event_id`` is deterministic (uuid5 of source and source message id), so a
    duplicate delivery is recognisable. ``type``/``schema`` name the payload class
    and its version; older versions are upcast when read.

    Unlike the payloads (attrs classes), the envelope is a msgspec Struct: it is
    created once per record read, and a Struct is built ~10× faster (ADR 0001).
    """

    event_id: str
    type: str
    key: str
    source: str
    occurred_at: int
    recorded_at: int
    payload: P
    schema: int = 1

    @property
    def broadcast(self) -> bool:
        return self.type in BROADCAST_TYPES


_EVENT_NS = uuid.UUID("6b0f4a8e-5c1e-4b7e-9d0c-3e2f1a9b7c55")


def event_id(source: str, message_id: str, index: int = 0) -> str:
    """Deterministic event id: uuid5 of source, source message id and event index."""
    return str(uuid.uuid5(_EVENT_NS, f"{source}\x1f{message_id}\x1f{index}"))


def entity_key(payload: Payload) -> str | None:
    """The key of the entity a payload is about: its entity's key, else its ``uuid``."""
    entity = entity_of(payload)
    if entity is not None:
        return entity.key
    if isinstance(payload, EntityAbsent):
        return payload.key
    return getattr(payload, "uuid", None)


def envelope(
    payload: Payload,
    *,
    source: str,
    message_id: str,
    occurred_at: int,
    recorded_at: int,
    index: int = 0,
    key: str | None = None,
) -> Envelope:
    """Wrap a payload; the key defaults to the key of the entity it carries."""
    if key is None:
        key = entity_key(payload) or ""
    return Envelope(
        event_id(source, message_id, index),
        payload.TYPE,
        key,
        source,
        occurred_at,
        recorded_at,
        payload,
        getattr(payload, "VERSION", 1),
    )
