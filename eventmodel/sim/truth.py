"""The simulated cloud's ground truth: hosts, nodes, services, instances, aggregates.

:class:`GroundTruth` is the one mutable state the sim's parts share: operations change
it, the notifications describe its changes and the listings read it. It keeps what
placement needs beside the entities (per-host usage, disabled and forced-down hosts)
and each host's availability zone (from its zone aggregates, else Nova's default
zone ``nova``), so that a service, its node and every aggregate agree at all times.

:class:`Truth` is a frozen copy of it at one instant, and :func:`diff_truth` compares
a model with such a copy.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

import attrs

from eventmodel.errors import SimError
from eventmodel.events import Aggregate, ComputeNode, ComputeService, Flavor, Instance

S = 1_000_000  # one second in µs

#: Nova's ``default_availability_zone``: the zone of a host in no zone aggregate
DEFAULT_ZONE = "nova"
#: the aggregate metadata key that makes an aggregate an availability zone
ZONE_KEY = "availability_zone"


class OperationError(SimError, ValueError):
    """The operation cannot be done on that target now (wrong state, no capacity, ...)."""


def page_after(items: Mapping[str, Any], order: list[str], marker: str | None, limit: int,
               place: Callable[[str], int], missing: str) -> list[Any]:
    """Up to ``limit`` of ``items`` in ``order`` after ``marker`` (``place(marker)`` is its
    index in ``order``). A marker that is not an item now is OperationError(``missing``):
    Cinder and Ironic look markers up among live rows and answer 404."""
    start = 0
    if marker is not None:
        if marker not in items:
            raise OperationError(missing)
        start = place(marker) + 1
    return [items[u] for u in order[start:start + limit]]


@attrs.frozen(slots=True, eq=False)
class Truth:
    """A copy of the ground truth at ``time_us``; the sim never changes it afterwards."""

    instances: dict[str, Instance]
    nodes: dict[str, ComputeNode]
    services: dict[str, ComputeService]
    time_us: int
    #: uuid → Aggregate
    aggregates: dict[str, Aggregate] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class HostSpec:
    """Every compute host's inventory (Placement: total, reserved, allocation ratio)."""

    vcpus: int = 64
    memory_mb: int = 262_144  # 256 GiB
    disk_gb: int = 4_000
    vcpus_reserved: int = 0
    memory_mb_reserved: int = 512  # Nova's reserved_host_memory_mb default
    disk_gb_reserved: int = 0
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.5  # Nova's initial_ram_allocation_ratio
    disk_allocation_ratio: float = 1.0

    @property
    def capacity(self) -> tuple[float, float, float]:
        """Placement's usable capacity: (total - reserved) * allocation_ratio."""
        return (
            (self.vcpus - self.vcpus_reserved) * self.cpu_allocation_ratio,
            (self.memory_mb - self.memory_mb_reserved) * self.ram_allocation_ratio,
            (self.disk_gb - self.disk_gb_reserved) * self.disk_allocation_ratio,
        )


def flavor_disk_gb(f: Flavor) -> int:
    """DISK_GB a flavor claims in Placement: root + ephemeral + swap rounded up to GB."""
    return f.root_gb + f.ephemeral_gb + (math.ceil(f.swap_mb / 1024) if f.swap_mb else 0)


class Pool:
    """A set with O(1) add, remove (swap-pop) and uniform random choice."""

    __slots__ = ("items", "pos")

    def __init__(self) -> None:
        self.items: list = []
        self.pos: dict = {}

    def add(self, x: Any) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: Any) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def choice(self, rng: random.Random) -> Any:
        return self.items[int(rng.random() * len(self.items))]

    def __contains__(self, x: Any) -> bool:
        return x in self.pos

    def __len__(self) -> int:
        return len(self.items)


class GroundTruth:
    """What the simulated cloud really is right now (mutable; the sim's parts share it).

    Hosts are addressed by name or by index (``hosts[i]``, hypervisor ``node_of[i]``).
    Change entities only through :meth:`commit`, :meth:`put_service` and
    :meth:`put_aggregate` / :meth:`drop_aggregate`: they keep usage, pools, zones and
    the nodes' mirrored service status right.
    """

    def __init__(self, hosts: list[str], spec: HostSpec, start_us: int) -> None:
        self.spec = spec
        self.cap_cpu, self.cap_ram, self.cap_disk = spec.capacity
        self.hosts = hosts
        self.host_idx = {h: i for i, h in enumerate(hosts)}
        self.node_of = [h + ".example.org" for h in hosts]
        n = len(hosts)
        self.ucpu = [0] * n
        self.uram = [0] * n
        self.udisk = [0] * n
        self.disabled = Pool()  # host indexes
        self.forced = Pool()
        self.nodes: dict[str, ComputeNode] = {}
        self.services: dict[str, ComputeService] = {}  # by host
        self.instances: dict[str, Instance] = {}
        self.aggregates: dict[str, Aggregate] = {}  # by uuid
        self.host_aggregates: dict[str, set[str]] = {}  # host -> aggregate uuids
        self._zone: dict[str, str] = {}  # host -> its zone when not the default one
        self.live = Pool()  # instance uuids
        self.parked = Pool()  # uuids whose vm_state is not active
        self.locked = Pool()
        self.launched: dict[str, int | None] = {}  # uuid -> launched_at, for instances booted by the sim
        self.sorted: list[str] | None = None  # uuids sorted, built on the first listing
        self.clock_us = start_us
        self.start_us = start_us
        self.next_aggregate_id = 1
        #: uuids of instances deleted since a reader last cleared it (the simulated
        #: Cinder detaches their volumes); None: nobody reads it, nothing is kept
        self.gone: list[str] | None = None

    # -- reading -------------------------------------------------------------

    def snapshot(self) -> Truth:
        return Truth(
            dict(self.instances), dict(self.nodes), dict(self.services), self.clock_us, dict(self.aggregates)
        )

    def instance(self, uuid: str) -> Instance:
        try:
            return self.instances[uuid]
        except KeyError:
            raise OperationError(f"no instance {uuid}") from None

    def aggregate(self, uuid: str) -> Aggregate:
        try:
            return self.aggregates[uuid]
        except KeyError:
            raise OperationError(f"no aggregate {uuid}") from None

    def host(self, host: str) -> int:
        try:
            return self.host_idx[host]
        except KeyError:
            raise OperationError(f"no compute host {host!r}") from None

    def zones_of(self, host: str) -> set[str]:
        """The zones of the zone aggregates holding ``host`` (empty: the default zone)."""
        out = set()
        for u in self.host_aggregates.get(host, ()):
            z = self.aggregates[u].availability_zone
            if z:
                out.add(z)
        return out

    def zone(self, host: str | None) -> str:
        """The host's availability zone, as Nova reports it: its zone aggregates' zone
        (names sorted and joined by ``,`` should there be several), else ``nova``."""
        if host is None:
            return DEFAULT_ZONE
        return self._zone.get(host, DEFAULT_ZONE)

    def _zone_now(self, host: str) -> str:
        zones = self.zones_of(host)
        if not zones:
            return DEFAULT_ZONE
        return ",".join(sorted(zones)) if len(zones) > 1 else next(iter(zones))

    def usage(self, host: str) -> tuple[int, int, int]:
        """(vcpus, memory_mb, disk_gb) allocated on a host."""
        i = self.host_idx[host]
        return self.ucpu[i], self.uram[i], self.udisk[i]

    def host_up(self, host: str | None) -> bool:
        return host is not None and self.host_idx[host] not in self.forced.pos

    # -- placement -------------------------------------------------------------

    def fits(self, i: int, f: Flavor) -> bool:
        return (
            self.ucpu[i] + f.vcpus <= self.cap_cpu
            and self.uram[i] + f.memory_mb <= self.cap_ram
            and self.udisk[i] + flavor_disk_gb(f) <= self.cap_disk
        )

    def can_host(self, i: int, f: Flavor) -> bool:
        return i not in self.disabled.pos and i not in self.forced.pos and self.fits(i, f)

    def pick_host(self, rng: random.Random, f: Flavor, exclude: int = -1) -> int | None:
        """A random enabled, up host with room for ``f`` (not ``exclude``), or None."""
        n = len(self.hosts)
        if not n:
            return None
        for _ in range(min(n, 24)):
            i = int(rng.random() * n)
            if i != exclude and self.can_host(i, f):
                return i
        start = int(rng.random() * n)
        for k in range(n):
            i = (start + k) % n
            if i != exclude and self.can_host(i, f):
                return i
        return None

    # -- changing ----------------------------------------------------------------

    def add_host(self, i: int, node: ComputeNode, service: ComputeService) -> None:
        """Register host ``i``'s node and service (construction)."""
        self.nodes[node.name] = node
        self.services[service.host] = service

    def commit(self, old: Instance | None, new: Instance | None) -> None:
        """Replace an instance (``old`` → ``new``; None creates or deletes), keeping usage
        and the pools right."""
        if old is not None and old.host is not None:
            i = self.host_idx[old.host]
            f = old.flavor
            self.ucpu[i] -= f.vcpus
            self.uram[i] -= f.memory_mb
            self.udisk[i] -= flavor_disk_gb(f)
        if new is None:
            assert old is not None
            u = old.uuid
            del self.instances[u]
            self.live.discard(u)
            self.parked.discard(u)
            self.locked.discard(u)
            self.launched.pop(u, None)
            if self.gone is not None:
                self.gone.append(u)
            if self.sorted is not None:
                k = bisect.bisect_left(self.sorted, u)
                if k < len(self.sorted) and self.sorted[k] == u:
                    del self.sorted[k]
            return
        u = new.uuid
        if new.host is not None:
            i = self.host_idx[new.host]
            f = new.flavor
            self.ucpu[i] += f.vcpus
            self.uram[i] += f.memory_mb
            self.udisk[i] += flavor_disk_gb(f)
        if old is None:
            self.live.add(u)
            if self.sorted is not None:
                bisect.insort(self.sorted, u)
        self.instances[u] = new
        if new.vm_state != "active":
            self.parked.add(u)
        else:
            self.parked.discard(u)
        if new.locked:
            self.locked.add(u)
        else:
            self.locked.discard(u)

    def put_service(self, new: ComputeService) -> None:
        """Replace a host's compute service; its node mirrors the status (as Nova's
        hypervisor listing shows it: ``status``, the service's reason, ``state``)."""
        host = new.host
        i = self.host_idx[host]
        self.services[host] = new
        (self.disabled.add if new.disabled else self.disabled.discard)(i)
        (self.forced.add if new.forced_down else self.forced.discard)(i)
        name = self.node_of[i]
        node = self.nodes[name]
        state = "up" if new.up and not new.forced_down else "down"
        if (node.disabled, node.disabled_reason, node.state) != (new.disabled, new.disabled_reason, state):
            self.nodes[name] = attrs.evolve(
                node, disabled=new.disabled, disabled_reason=new.disabled_reason, state=state
            )

    def put_aggregate(self, new: Aggregate) -> None:
        """Create or replace an aggregate; the zones of the hosts it gains, loses or
        re-zones follow (in their services)."""
        old = self.aggregates.get(new.uuid)
        self.aggregates[new.uuid] = new
        before = set(old.hosts) if old is not None else set()
        after = set(new.hosts)
        for h in after - before:
            self.host_aggregates.setdefault(h, set()).add(new.uuid)
        for h in before - after:
            self.host_aggregates.get(h, set()).discard(new.uuid)
        self._rezone(before | after)

    def drop_aggregate(self, uuid: str) -> Aggregate:
        old = self.aggregates.pop(uuid)
        for h in old.hosts:
            self.host_aggregates.get(h, set()).discard(uuid)
        self._rezone(set(old.hosts))
        return old

    def _rezone(self, hosts: set[str]) -> None:
        for h in hosts:
            z = self._zone_now(h)
            if z == DEFAULT_ZONE:
                self._zone.pop(h, None)
            else:
                self._zone[h] = z
            svc = self.services.get(h)
            if svc is None:
                continue
            if svc.availability_zone != z:
                self.services[h] = attrs.evolve(svc, availability_zone=z)


# ---------------------------------------------------------------------------
# Comparing a model with the truth
# ---------------------------------------------------------------------------


def compared_fields(cls: type, *skip: str) -> tuple[str, ...]:
    """The fields of an entity class a comparison with the truth reads (not ``version``)."""
    return tuple(f.name for f in attrs.fields(cls) if f.name != "version" and f.name not in skip)


#: a node's status fields: what its hypervisor listing said, which a model may hold
#: fresher in the node's compute service (see :func:`diff_truth`)
NODE_STATUS = ("disabled", "disabled_reason", "state")

_FIELDS = {
    "instance": compared_fields(Instance),
    "node": compared_fields(ComputeNode, *NODE_STATUS),
    "service": compared_fields(ComputeService),
    "aggregate": compared_fields(Aggregate),
}


def diff_truth(
    truth: Truth,
    instances: Mapping[str, Instance],
    nodes: Mapping[str, ComputeNode],
    services: Mapping[str, ComputeService],
    aggregates: Mapping[str, Aggregate] | None = None,
) -> list[str]:
    """Human-readable differences between the ground truth and a model, ignoring ``version``.

    An empty list means the model equals the truth. Each line names the entity kind
    and key and says what is missing, extra, or which field differs (truth vs model).
    Every field is compared. A node's status (``disabled``, ``disabled_reason``,
    ``state``) is its compute service's, as Nova's hypervisor listing shows it: where
    the model has the node's ``nova-compute`` service, that service's status (kept
    current by notifications, compared as the service's) stands for the node's, and the
    node's own (what the last listing said) is compared only where the model has no
    such service. Aggregates are compared when ``aggregates`` (uuid → Aggregate) is given.
    """
    out: list[str] = []
    # services are keyed by host here and by host/binary in a model: compare by key
    model_services = {s.key: s for s in services.values()}
    by_host = {s.host for s in services.values() if s.binary == "nova-compute"}
    kinds: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [
        ("instance", truth.instances, instances),
        ("node", truth.nodes, nodes),
        ("service", {s.key: s for s in truth.services.values()}, model_services),
    ]
    if aggregates is not None:
        kinds.append(("aggregate", truth.aggregates, aggregates))

    def node_status(key: str, t: Any, m: Any) -> list[str]:
        if m.host in by_host:
            return []
        return [f"node {key}: {name} differs: truth={getattr(t, name)!r} model={getattr(m, name)!r}"
                for name in NODE_STATUS if getattr(t, name) != getattr(m, name)]

    for kind, want, got in kinds:
        out += diff_table(kind, _FIELDS[kind], want, got, node_status if kind == "node" else None)
    return out


def diff_table(kind: str, names: tuple[str, ...], want: Mapping[str, Any], got: Mapping[str, Any],
               also: Callable[[str, Any, Any], list[str]] | None = None) -> list[str]:
    """The differences of one kind's entities: missing, extra, and each field of
    ``names`` that differs (``also`` adds a kind's own checks of a pair)."""
    out: list[str] = []
    get = attrgetter(*names)
    for key, t in want.items():
        m = got.get(key)
        if m is None:
            out.append(f"{kind} {key}: missing from the model")
            continue
        if m is t:
            continue
        tv, mv = get(t), get(m)
        if tv != mv:
            out += [f"{kind} {key}: {name} differs: truth={a!r} model={b!r}"
                    for name, a, b in zip(names, tv, mv, strict=True) if a != b]
        if also is not None:
            out += also(key, t, m)
    out += [f"{kind} {key}: extra in the model (not in the truth)" for key in got if key not in want]
    return out
