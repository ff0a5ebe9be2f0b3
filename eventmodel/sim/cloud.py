"""The simulated cloud: one ground truth, operations on it, and the notifications they emit.

``SimCloud`` holds compute hosts (one hypervisor node and one ``nova-compute``
service each) and instances placed on them within Placement capacity. ``step()``
performs random operations from a weighted mix (boot, delete, live and cold
migration, resize with confirm or revert, power/pause/suspend/shelve and back,
lock, service disable/enable/forced down) and returns what Nova would have put on
the bus, after the configured faults (drop, duplicate, delay, reorder).

Everything is deterministic for a seed: operations, uuids, message ids, faults.
Independent RNG streams (operations, ids, delivery faults, payload quirks, listing
faults, host clocks) make the ground truth the same whatever faults are configured
(only versions move with the hosts' clock skew).

Timing follows real Nova: an operation spans one or more *phases*, each in a new
whole second of simulated time; every instance save in a phase stamps the
instance with that second (Nova's ``updated_at`` has one-second resolution), and
every payload carries the ``updated_at`` of the save before it. So a live
migration's ``instance.live_migration_post.end``, sent by the source after the
destination's ``live_migration_post_dest.end``, carries the older ``updated_at``
and the source host, as in Nova. The truth's ``Instance.version`` is the
``updated_at`` of the last save (µs, whole seconds); a service's version is the
second of its change, which is also the second of its ``service.update``
timestamp.

As unkind as Nova (see :class:`~eventmodel.sim.faults.Faults`, ``Faults.nova_like()``):
a compute host's saves are stamped by its own, possibly skewed, clock (API and
conductor saves are not), so an instance's ``updated_at`` can go back in time
across a save; a new instance's first notifications carry ``updated_at`` null;
a shelve-offloaded instance has no availability zone (None in the truth, null in
notifications, ``''`` in the API); a listing can omit a server or list a down
cell's servers as minimal records; and ``during_listing`` lets operations run
between the pages of a full sync.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid as _uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

import attrs

from eventmodel.clock import to_us
from eventmodel.events import ComputeNode, ComputeService, Flavor, Instance, PartialInstance
from eventmodel.sim import notifications as N
from eventmodel.sim.faults import NOTIFICATION_COUNTERS, Delivery, Faults

S = 1_000_000  # one second in µs

DEFAULT_FLAVORS: tuple[Flavor, ...] = (
    Flavor("m1.tiny", 1, 512, 1),
    Flavor("m1.small", 1, 2048, 20),
    Flavor("m1.medium", 2, 4096, 40),
    Flavor("m1.large", 4, 8192, 80),
    Flavor("m1.xlarge", 8, 16384, 160),
)
DEFAULT_FLAVOR_WEIGHTS: tuple[float, ...] = (10, 30, 30, 20, 10)

#: the operation mix: relative weights of what step() does
DEFAULT_WEIGHTS: dict[str, float] = {
    "boot": 10,
    "delete": 10,
    "live_migrate": 20,
    "cold_migrate": 5,
    "resize": 8,
    "state_away": 12,  # active -> stopped / paused / suspended / shelved(+offloaded)
    "state_back": 15,  # back to active (or stopped -> shelved, shelved -> offloaded)
    "lock": 3,
    "unlock": 3,
    "service_disable": 2,
    "service_enable": 2,
    "service_force_down": 1,
    "service_force_up": 1,
}

DEFAULT_START = to_us(datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc))

PROJECTS = ("payments", "search", "analytics", "ci", "platform", "research")
ROLES = ("web", "api", "db", "cache", "worker", "k8s-node", "batch", "runner", "mq", "search")
CONTROLLERS = ("controller-1", "controller-2", "controller-3")
IMAGES = (
    "0b5a8c5e-0d4f-4d3a-9f50-1f3a2d6c8e71",  # ubuntu-24.04
    "5f1c2b8e-6a8d-4b39-a0e2-9c47d3b8f412",  # ubuntu-22.04
    "9d2e7a61-3c5b-4f08-8e1a-b6c4d2f9a530",  # debian-12
    "c4a9e0f3-7b21-4d6c-9a85-2e1f6b3d7c98",  # rocky-9
)
DISABLE_REASONS = ("maintenance", "hardware fault: DIMM errors", "kernel upgrade", "decommissioning", None)
LOCK_REASONS = ("investigating incident", "legal hold", "do not touch: migration pending")

# action -> (from vm_state, to vm_state, to power_state, task_state while it runs)
TRANSITIONS: dict[str, tuple[str, str, str, str]] = {
    "power_off": ("active", "stopped", "shutdown", "powering-off"),
    "power_on": ("stopped", "active", "running", "powering-on"),
    "pause": ("active", "paused", "paused", "pausing"),
    "unpause": ("paused", "active", "running", "unpausing"),
    "suspend": ("active", "suspended", "suspended", "suspending"),
    "resume": ("suspended", "active", "running", "resuming"),
}
AWAY = (("power_off", 4), ("shelve", 2), ("suspend", 1), ("pause", 1))

OP_KINDS = (
    "boot", "delete", "live_migrate", "cold_migrate", "resize", "resize_revert",
    "power_off", "power_on", "pause", "unpause", "suspend", "resume",
    "shelve", "shelve_offload", "unshelve", "lock", "unlock",
    "service_disable", "service_enable", "service_force_down", "service_force_up",
)  # fmt: skip


class OperationError(ValueError):
    """The operation cannot be done on that target now (wrong state, no capacity, ...)."""


@attrs.frozen(slots=True, eq=False)
class Truth:
    """A copy of the ground truth at ``time_us``; the sim never changes it afterwards."""

    instances: dict[str, Instance]
    nodes: dict[str, ComputeNode]
    services: dict[str, ComputeService]
    time_us: int


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


@attrs.frozen(slots=True)
class OpRecord:
    """One operation the sim performed (for narration and tests).

    ``time_us`` is the second of its last save on the controllers' clock (the entity's new
    version unless a skewed compute host made that save).
    ``source``/``dest`` are hosts for moves; ``host`` for in-place actions and services.
    """

    kind: str
    time_us: int
    uuid: str | None = None
    name: str | None = None
    host: str | None = None
    source: str | None = None
    dest: str | None = None
    detail: str = ""


def flavor_disk_gb(f: Flavor) -> int:
    """DISK_GB a flavor claims in Placement: root + ephemeral + swap rounded up to GB."""
    return f.root_gb + f.ephemeral_gb + (math.ceil(f.swap_mb / 1024) if f.swap_mb else 0)


class _Pool:
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


_Ctx = tuple[str, str, str, bool]  # request_id, user_id, project_id, is_admin


class SimCloud:
    """N compute hosts, M instances, one ground truth, Nova-format notifications.

    Host names are ``compute-0001``...; each host's hypervisor (ComputeNode, Nova's
    ``node``) is ``compute-0001.example.org`` (libvirt reports the FQDN while the
    service host is the short name, so code that mixes the two up is caught).
    The initial instances are ACTIVE and placed before the log starts: only a full
    sync (list_services / list_nodes / list_servers) tells a projection about them.

    ``during_listing``, when set, is called before each ``list_servers`` page and
    before and after ``list_services`` and ``list_nodes``: a test or the demo sets it
    to e.g. ``lambda: feed(sim.step(5))`` so that operations start and finish while
    a full sync reads. After each full listing of servers, ``omitted_last_listing``
    holds the uuids it left out and ``minimal_last_listing`` those it listed as
    minimal records (``down_cell_last_listing`` is the cell that was down, or None).
    """

    def __init__(
        self,
        hosts: int = 10,
        instances: int = 100,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        flavors: list[Flavor] | None = None,
        start_time_us: int | None = None,
        weights: Mapping[str, float] | None = None,
        host_spec: HostSpec | None = None,
    ) -> None:
        if hosts < 0 or instances < 0:
            raise ValueError("hosts and instances must be >= 0")
        self.seed = seed
        self.faults = faults if faults is not None else Faults()
        self._rng = random.Random(f"eventmodel-sim:{seed}:ops")
        self._idrng = random.Random(f"eventmodel-sim:{seed}:ids")
        self._frng = random.Random(f"eventmodel-sim:{seed}:faults")
        self._qrng = random.Random(f"eventmodel-sim:{seed}:quirks")  # payload quirks
        self._lrng = random.Random(f"eventmodel-sim:{seed}:listing")  # API-read faults
        self.start_time_us = start = (DEFAULT_START if start_time_us is None else start_time_us) // S * S
        self.clock_us = start

        # flavors
        if flavors:
            self.flavors: tuple[Flavor, ...] = tuple(flavors)
            fw: tuple[float, ...] = (1.0,) * len(self.flavors)
        else:
            self.flavors, fw = DEFAULT_FLAVORS, DEFAULT_FLAVOR_WEIGHTS
        self._flavor_cum = _cumulative(fw)
        self._flavors_by_name = {f.name: f for f in self.flavors}

        # the operation mix
        mix = dict(DEFAULT_WEIGHTS)
        for k, v in (weights or {}).items():
            if k not in DEFAULT_WEIGHTS:
                raise ValueError(f"unknown operation {k!r}; known: {', '.join(DEFAULT_WEIGHTS)}")
            if v < 0:
                raise ValueError(f"weight of {k!r} must be >= 0")
            mix[k] = v
        self.weights = mix
        self._kinds = [k for k, v in mix.items() if v > 0]
        self._kind_cum = _cumulative([mix[k] for k in self._kinds])

        # people
        rng = self._rng
        self.admin_user = _hex(rng)
        self.admin_project = _hex(rng)
        self.projects: list[tuple[str, str]] = [(_hex(rng), name) for name in PROJECTS]  # (id, name)
        self.users: dict[str, list[str]] = {pid: [_hex(rng) for _ in range(3)] for pid, _ in self.projects}

        # hosts, nodes, services
        self.host_spec = spec = host_spec or HostSpec()
        self._cap_cpu, self._cap_ram, self._cap_disk = spec.capacity
        width = max(4, len(str(hosts)))
        self.hosts: list[str] = [f"compute-{i:0{width}d}" for i in range(1, hosts + 1)]
        self._host_idx = {h: i for i, h in enumerate(self.hosts)}
        self._node_of = [h + ".example.org" for h in self.hosts]
        self._ucpu = [0] * hosts
        self._uram = [0] * hosts
        self._udisk = [0] * hosts
        self._disabled = _Pool()  # host indexes
        self._forced = _Pool()
        infra_version = start - 7 * 86_400 * S
        self._nodes: dict[str, ComputeNode] = {}
        self._services: dict[str, ComputeService] = {}
        for i, h in enumerate(self.hosts):
            node = self._node_of[i]
            self._nodes[node] = ComputeNode(
                name=node,
                version=infra_version,
                host=h,
                uuid=_uuid4(rng),
                vcpus=spec.vcpus,
                memory_mb=spec.memory_mb,
                disk_gb=spec.disk_gb,
                vcpus_reserved=spec.vcpus_reserved,
                memory_mb_reserved=spec.memory_mb_reserved,
                disk_gb_reserved=spec.disk_gb_reserved,
                cpu_allocation_ratio=spec.cpu_allocation_ratio,
                ram_allocation_ratio=spec.ram_allocation_ratio,
                disk_allocation_ratio=spec.disk_allocation_ratio,
                hypervisor_type="QEMU",
                state="up",
            )
            self._services[h] = ComputeService(h, "nova-compute", infra_version, uuid=_uuid4(rng))

        # each compute host's clock: a fixed offset in whole seconds (µs), 0 for most
        srng = random.Random(f"eventmodel-sim:{seed}:clocks")
        fl = self.faults
        self.clock_skew: dict[str, int] = {}
        for h in self.hosts:
            skewed, r = srng.random(), srng.random()
            off = 0
            if fl.max_skew_s and skewed < fl.clock_skew:
                off = 1 + int(r * fl.max_skew_s)  # 1..max
                off = off if srng.random() < 0.5 else -off
            self.clock_skew[h] = off * S
        self._skew_pub = {"nova-compute:" + h: v for h, v in self.clock_skew.items() if v}

        # instances, placed before the log starts
        self._inst: dict[str, Instance] = {}
        self._live = _Pool()  # uuids
        self._parked = _Pool()  # uuids whose vm_state is not active
        self._locked = _Pool()
        self._born: dict[str, tuple[int, int | None]] = {}  # uuid -> (created_at, launched_at) for sim boots
        self._unsaved: set[str] = set()  # booting instances whose notifications carry updated_at null
        self._sorted: list[str] | None = None  # uuids sorted, built on first list_servers()
        self._name_seq = 0
        nprojects = len(self.projects)
        for n in range(instances):
            u = _uuid4(rng)
            f = self._pick_flavor()
            i = self._pick_host(f)
            if i is None:
                raise ValueError(
                    f"cannot place instance {n + 1} of {instances}: {hosts} hosts are full "
                    f"(capacity per host: {spec.capacity})"
                )
            pid = self.projects[int(rng.random() * nprojects)][0]
            users = self.users[pid]
            inst = Instance(
                u,
                self._pre_created(u) + 30 * S,
                self.hosts[i],
                self._node_of[i],
                "active",
                f,
                "running",
                None,
                pid,
                users[int(rng.random() * len(users))],
                self._new_name(pid),
                False,
                None,
                "nova",
            )
            self._inst[u] = inst
            self._live.add(u)
            self._ucpu[i] += f.vcpus
            self._uram[i] += f.memory_mb
            self._udisk[i] += flavor_disk_gb(f)

        # delivery
        self._raw: list[bytes] = []
        self._sec = start
        self._now = start
        self.counters: dict[str, int] = {"ops": 0, "skipped": 0}
        self.counters.update(dict.fromkeys(OP_KINDS, 0))
        self.counters.update(dict.fromkeys(NOTIFICATION_COUNTERS, 0))
        self.counters.update(dict.fromkeys(("listings", "omitted", "minimal", "null_updated_at_boots"), 0))
        self._delivery = Delivery(self._frng, self.counters)
        self.history: deque[OpRecord] = deque(maxlen=10_000)

        # API reads
        self.during_listing: Callable[[], None] | None = None
        self.omitted_last_listing: set[str] = set()
        self.minimal_last_listing: set[str] = set()
        self.down_cell_last_listing: int | None = None
        self._listing_omit: dict[str, bool] = {}  # decisions of the current listing, per uuid
        self._in_hook = False

    # ------------------------------------------------------------------
    # Reading the truth
    # ------------------------------------------------------------------

    def truth(self) -> Truth:
        return Truth(dict(self._inst), dict(self._nodes), dict(self._services), self.clock_us)

    def instance(self, uuid: str) -> Instance:
        try:
            return self._inst[uuid]
        except KeyError:
            raise OperationError(f"no instance {uuid}") from None

    @property
    def instance_count(self) -> int:
        return len(self._inst)

    def node_of(self, host: str) -> str:
        return self._node_of[self._host_idx[host]]

    def usage(self, host: str) -> tuple[int, int, int]:
        """(vcpus, memory_mb, disk_gb) allocated on a host."""
        i = self._host_idx[host]
        return self._ucpu[i], self._uram[i], self._udisk[i]

    @property
    def last_op(self) -> OpRecord | None:
        return self.history[-1] if self.history else None

    def skew_of(self, host: str) -> int:
        """The offset of a compute host's clock from the controllers', in µs (whole seconds)."""
        return self.clock_skew[host]

    def cell_of(self, host: str | None, uuid: str) -> int:
        """The cell an instance lives in: its host's (host index modulo ``faults.cells``),
        else one derived from its uuid."""
        cells = self.faults.cells
        if host is not None:
            return self._host_idx[host] % cells
        return int(uuid[:8], 16) % cells

    # API-style reads, what Nova and Placement would answer right now

    def list_services(self) -> list[ComputeService]:
        self._listing_hook()
        out = [self._services[h] for h in self.hosts]
        self._listing_hook()
        return out

    def list_nodes(self) -> list[ComputeNode]:
        self._listing_hook()
        out = [self._nodes[n] for n in self._node_of]
        self._listing_hook()
        return out

    def list_servers(self, *, limit: int = 1000, marker: str | None = None) -> list[Instance | PartialInstance]:
        """One page of servers sorted by uuid, starting after ``marker`` (the last uuid seen).

        A marker need not exist any more (deleted between pages): the page starts after
        where it would sort, so a server that exists for the whole listing is listed
        exactly once (unless omitted), whatever is created or deleted between pages.
        ``marker=None`` starts a new full listing: the listing faults are drawn for it
        (which cell is down; per server, on first sight, whether it is omitted).
        An omitted server does not shorten the page.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if marker is None:
            self._new_listing()
        self._listing_hook()
        if self._sorted is None:
            self._sorted = sorted(self._inst)
        keys = self._sorted
        k = bisect.bisect_right(keys, marker) if marker is not None else 0
        fl = self.faults
        omit, down = fl.omit, self.down_cell_last_listing
        api_az = "" if fl.empty_az else None
        decided = self._listing_omit
        r = self._lrng.random
        page: list[Instance | PartialInstance] = []
        n = len(keys)
        while len(page) < limit and k < n:
            u = keys[k]
            k += 1
            inst = self._inst[u]
            if omit:
                skip = decided.get(u)
                if skip is None:
                    skip = decided[u] = r() < omit
                if skip:
                    self.omitted_last_listing.add(u)
                    self.counters["omitted"] += 1
                    continue
            if down is not None and self.cell_of(inst.host, u) == down:
                self.minimal_last_listing.add(u)
                self.counters["minimal"] += 1
                page.append(PartialInstance(u, "UNKNOWN", inst.project_id))
                continue
            if inst.availability_zone is None and api_az is not None:
                inst = attrs.evolve(inst, availability_zone=api_az)
            page.append(inst)
        return page

    @contextmanager
    def quiescent(self) -> Iterator[SimCloud]:
        """A block in which API reads see the cloud at rest and whole: no operations run
        during a listing (``during_listing`` is suspended) and no listing faults
        (omissions, down cells). For the sync a comparison with the truth follows."""
        hook, faults = self.during_listing, self.faults
        self.during_listing = None
        self.faults = faults.quiet_listing()
        try:
            yield self
        finally:
            self.during_listing = hook
            self.faults = faults

    def _new_listing(self) -> None:
        self.omitted_last_listing = set()
        self.minimal_last_listing = set()
        self._listing_omit = {}
        fl = self.faults
        down = None
        if fl.down_cell and self._lrng.random() < fl.down_cell:
            down = int(self._lrng.random() * fl.cells)
        self.down_cell_last_listing = down
        self.counters["listings"] += 1

    def _listing_hook(self) -> None:
        hook = self.during_listing
        if hook is None or self._in_hook:
            return
        self._in_hook = True
        try:
            hook()
        finally:
            self._in_hook = False

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------

    def step(self, n: int = 1) -> list[bytes]:
        """Perform n random operations; return their notifications after faults."""
        rng = self._rng
        kinds, cum = self._kinds, self._kind_cum
        for _ in range(n):
            for _attempt in range(64):
                if not kinds:
                    break
                kind = kinds[_pick(cum, rng)]
                if getattr(self, "_try_" + kind)():
                    break
                self.counters["skipped"] += 1
        return self._deliver()

    def flush(self) -> list[bytes]:
        """Release every held notification (delayed, reordered, to be redelivered), in the order they were held."""
        return self._delivery.flush()

    @property
    def held(self) -> int:
        """How many notifications are held back right now."""
        return self._delivery.held

    # explicit operations (tests, demo scripts); each returns the notifications

    def boot(
        self, *, flavor: str | Flavor | None = None, host: str | None = None, project_id: str | None = None
    ) -> list[bytes]:
        f = self._flavor(flavor) if flavor is not None else self._pick_flavor()
        if host is not None:
            dest = self._host(host)
            if not self._can_host(dest, f):
                raise OperationError(f"{host} cannot take {f.name} (disabled, down or full)")
        else:
            dest = self._pick_host(f)
            if dest is None:
                raise OperationError(f"no host can take {f.name}")
        if project_id is not None and project_id not in self.users:
            raise OperationError(f"unknown project {project_id}")
        self._boot(f, dest, project_id)
        return self._deliver()

    def delete(self, uuid: str) -> list[bytes]:
        self._delete(self.instance(uuid))
        return self._deliver()

    def live_migrate(self, uuid: str, dest: str | None = None) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("active",), admin=True)
        d = self._dest(inst, inst.flavor, dest)
        self._live_migrate(inst, d)
        return self._deliver()

    def cold_migrate(self, uuid: str, dest: str | None = None, *, revert: bool = False) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("active", "stopped"), admin=True)
        d = self._dest(inst, inst.flavor, dest)
        self._resize(inst, inst.flavor, d, revert)
        return self._deliver()

    def resize(
        self, uuid: str, flavor: str | Flavor | None = None, *, dest: str | None = None, revert: bool = False
    ) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("active", "stopped"))
        if flavor is None:
            others = [f for f in self.flavors if f != inst.flavor]
            if not others:
                raise OperationError("no other flavor to resize to")
            new = others[int(self._rng.random() * len(others))]
        else:
            new = self._flavor(flavor)
        if dest is not None and self._host(dest) == self._host_idx[inst.host]:  # type: ignore[index]
            d = self._host(dest)
            if not self._fits_same_host(d, new):
                raise OperationError(f"{dest} cannot also hold {new.name} during the resize")
        else:
            d = self._dest(inst, new, dest)
        self._resize(inst, new, d, revert)
        return self._deliver()

    def power_off(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "power_off")

    def power_on(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "power_on")

    def pause(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "pause")

    def unpause(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "unpause")

    def suspend(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "suspend")

    def resume(self, uuid: str) -> list[bytes]:
        return self._explicit_transition(uuid, "resume")

    def shelve(self, uuid: str, *, offload: bool = True) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("active", "stopped"))
        self._shelve(inst, offload)
        return self._deliver()

    def shelve_offload(self, uuid: str) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("shelved",))
        self._begin()
        self._shelve_offload(inst, self._admin_ctx())
        self._end()
        return self._deliver()

    def unshelve(self, uuid: str, dest: str | None = None) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, ("shelved", "shelved_offloaded"))
        d = None
        if inst.vm_state == "shelved_offloaded":
            d = self._dest(inst, inst.flavor, dest)
        self._unshelve(inst, d)
        return self._deliver()

    def lock(self, uuid: str, reason: str | None = None) -> list[bytes]:
        inst = self.instance(uuid)
        if inst.locked:
            raise OperationError(f"instance {uuid} is already locked")
        self._lock(inst, True, reason)
        return self._deliver()

    def unlock(self, uuid: str) -> list[bytes]:
        inst = self.instance(uuid)
        if not inst.locked:
            raise OperationError(f"instance {uuid} is not locked")
        self._lock(inst, False, None)
        return self._deliver()

    def disable_service(self, host: str, reason: str | None = "maintenance") -> list[bytes]:
        i = self._host(host)
        if i in self._disabled:
            raise OperationError(f"{host} is already disabled")
        self._service(i, "service_disable", disabled=True, reason=reason)
        return self._deliver()

    def enable_service(self, host: str) -> list[bytes]:
        i = self._host(host)
        if i not in self._disabled:
            raise OperationError(f"{host} is not disabled")
        self._service(i, "service_enable", disabled=False, reason=None)
        return self._deliver()

    def force_down(self, host: str) -> list[bytes]:
        i = self._host(host)
        if i in self._forced:
            raise OperationError(f"{host} is already forced down")
        self._service(i, "service_force_down", forced_down=True)
        return self._deliver()

    def unforce_down(self, host: str) -> list[bytes]:
        i = self._host(host)
        if i not in self._forced:
            raise OperationError(f"{host} is not forced down")
        self._service(i, "service_force_up", forced_down=False)
        return self._deliver()

    # ------------------------------------------------------------------
    # Random choices for step()
    # ------------------------------------------------------------------

    def _random_instance(self, ok: Callable[[Instance], bool], tries: int = 4) -> Instance | None:
        if not self._live:
            return None
        for _ in range(tries):
            inst = self._inst[self._live.choice(self._rng)]
            if ok(inst):
                return inst
        return None

    def _try_boot(self) -> bool:
        f = self._pick_flavor()
        dest = self._pick_host(f)
        if dest is None:
            return False
        self._boot(f, dest, None)
        return True

    def _try_delete(self) -> bool:
        inst = self._random_instance(lambda x: not x.locked)
        if inst is None:
            return False
        self._delete(inst)
        return True

    def _try_live_migrate(self) -> bool:
        inst = self._random_instance(lambda x: x.vm_state == "active" and self._host_up(x.host))
        if inst is None:
            return False
        dest = self._pick_host(inst.flavor, exclude=self._host_idx[inst.host])  # type: ignore[index]
        if dest is None:
            return False
        self._live_migrate(inst, dest)
        return True

    def _try_cold_migrate(self) -> bool:
        inst = self._random_instance(lambda x: x.vm_state in ("active", "stopped") and self._host_up(x.host))
        if inst is None:
            return False
        dest = self._pick_host(inst.flavor, exclude=self._host_idx[inst.host])  # type: ignore[index]
        if dest is None:
            return False
        self._resize(inst, inst.flavor, dest, self._rng.random() < 0.15)
        return True

    def _try_resize(self) -> bool:
        if len(self.flavors) < 2:
            return False
        inst = self._random_instance(
            lambda x: x.vm_state in ("active", "stopped") and not x.locked and self._host_up(x.host)
        )
        if inst is None:
            return False
        rng = self._rng
        new = self.flavors[_pick(self._flavor_cum, rng)]
        if new == inst.flavor:
            return False
        src = self._host_idx[inst.host]  # type: ignore[index]
        if rng.random() < 0.3 and self._fits_same_host(src, new):
            dest: int | None = src
        else:
            dest = self._pick_host(new, exclude=src)
        if dest is None:
            return False
        self._resize(inst, new, dest, rng.random() < 0.2)
        return True

    def _try_state_away(self) -> bool:
        inst = self._random_instance(lambda x: x.vm_state == "active" and not x.locked and self._host_up(x.host))
        if inst is None:
            return False
        rng = self._rng
        r = rng.random() * sum(w for _, w in AWAY)
        for action, w in AWAY:
            r -= w
            if r < 0:
                break
        if action == "shelve":
            self._shelve(inst, rng.random() < 0.85)
        else:
            self._transition(inst, action)
        return True

    def _try_state_back(self) -> bool:
        if not self._parked:
            return False
        inst = self._inst[self._parked.choice(self._rng)]
        if inst.locked or (inst.host is not None and not self._host_up(inst.host)):
            return False
        rng = self._rng
        vm = inst.vm_state
        if vm == "stopped":
            if rng.random() < 0.15:
                self._shelve(inst, rng.random() < 0.85)
            else:
                self._transition(inst, "power_on")
        elif vm == "paused":
            self._transition(inst, "unpause")
        elif vm == "suspended":
            self._transition(inst, "resume")
        elif vm == "shelved":
            if rng.random() < 0.5:
                self._begin()
                self._shelve_offload(inst, self._admin_ctx())
                self._end()
            else:
                self._unshelve(inst, None)
        elif vm == "shelved_offloaded":
            dest = self._pick_host(inst.flavor)
            if dest is None:
                return False
            self._unshelve(inst, dest)
        else:
            return False
        return True

    def _try_lock(self) -> bool:
        inst = self._random_instance(lambda x: not x.locked)
        if inst is None:
            return False
        rng = self._rng
        reason = None if rng.random() < 0.6 else LOCK_REASONS[int(rng.random() * len(LOCK_REASONS))]
        self._lock(inst, True, reason)
        return True

    def _try_unlock(self) -> bool:
        if not self._locked:
            return False
        self._lock(self._inst[self._locked.choice(self._rng)], False, None)
        return True

    def _try_service_disable(self) -> bool:
        n = len(self.hosts)
        if not n or len(self._disabled) >= max(1, n // 5):
            return False
        i = int(self._rng.random() * n)
        if i in self._disabled:
            return False
        reason = DISABLE_REASONS[int(self._rng.random() * len(DISABLE_REASONS))]
        self._service(i, "service_disable", disabled=True, reason=reason)
        return True

    def _try_service_enable(self) -> bool:
        if not self._disabled:
            return False
        self._service(self._disabled.choice(self._rng), "service_enable", disabled=False, reason=None)
        return True

    def _try_service_force_down(self) -> bool:
        n = len(self.hosts)
        if not n or len(self._forced) >= max(1, n // 10):
            return False
        i = int(self._rng.random() * n)
        if i in self._forced:
            return False
        self._service(i, "service_force_down", forced_down=True)
        return True

    def _try_service_force_up(self) -> bool:
        if not self._forced:
            return False
        self._service(self._forced.choice(self._rng), "service_force_up", forced_down=False)
        return True

    # ------------------------------------------------------------------
    # Operations: ground truth + notifications
    # ------------------------------------------------------------------

    def _boot(self, f: Flavor, dest: int, project_id: str | None) -> None:
        rng = self._rng
        if project_id is None:
            project_id = self.projects[int(rng.random() * len(self.projects))][0]
        users = self.users[project_id]
        user = users[int(rng.random() * len(users))]
        u = _uuid4(rng)
        host, node = self.hosts[dest], self._node_of[dest]
        t0 = self._begin()
        self._born[u] = (t0, None)
        ctx = self._ctx(user, project_id)
        api, comp = self._api(), "nova-compute:" + host
        fl = self.faults
        if fl.null_updated_at and self._qrng.random() < fl.null_updated_at:
            self._unsaved.add(u)  # until after create.start
            self.counters["null_updated_at_boots"] += 1
        i0 = Instance(
            u, t0, None, None, "building", f, "pending", "scheduling",
            project_id, user, self._new_name(project_id), False, None, "nova",
        )  # fmt: skip
        self._update(api, i0, ctx, "building", None)
        self._phase(1, 2)
        i1 = attrs.evolve(i0, version=self._at(comp), task_state=None)
        self._update(comp, i1, ctx, "building", "scheduling")
        self._create("instance.create.start", comp, i1, ctx)
        self._unsaved.discard(u)
        i2 = attrs.evolve(i1, host=host, node=node, task_state="networking")
        self._update(comp, i2, ctx, "building", None)
        i3 = attrs.evolve(i2, task_state="spawning")
        self._update(comp, i3, ctx, "building", "networking")
        self._phase(2, 8)
        t2 = self._at(comp)
        self._born[u] = (t0, t2)
        final = attrs.evolve(i3, version=t2, vm_state="active", power_state="running", task_state=None)
        self._update(comp, final, ctx, "building", "spawning")
        self._create("instance.create.end", comp, final, ctx)
        self._commit(None, final)
        self._end("boot", final, dest=host, detail=f.name)

    def _delete(self, inst: Instance) -> None:
        ctx = self._user_ctx(inst)
        t0 = self._begin()
        api = self._api()
        vm = inst.vm_state
        i1 = attrs.evolve(inst, version=t0, task_state="deleting")
        self._update(api, i1, ctx, vm, None)
        if inst.host is not None and self._host_up(inst.host):
            comp = "nova-compute:" + inst.host
            self._action("instance.delete.start", comp, i1, ctx)
            self._action("instance.shutdown.start", comp, i1, ctx)
            self._action("instance.shutdown.end", comp, i1, ctx)
            self._phase(1, 3)
            t1 = self._at(comp)
            i2 = attrs.evolve(i1, version=t1, vm_state="deleted", power_state="pending", task_state=None)
            self._update(comp, i2, ctx, vm, "deleting", deleted=t1)
            self._action("instance.delete.end", comp, i2, ctx, deleted=t1)
            detail = ""
        else:  # local delete: the compute service is down or the instance has no host
            self._action("instance.delete.start", api, i1, ctx)
            t1 = self._phase(1, 1)
            i2 = attrs.evolve(i1, version=t1, vm_state="deleted", task_state=None)
            self._update(api, i2, ctx, vm, "deleting", deleted=t1)
            self._action("instance.delete.end", api, i2, ctx, deleted=t1)
            detail = "local delete"
        self._commit(inst, None)
        self._end("delete", i2, source=inst.host, detail=detail)

    def _live_migrate(self, inst: Instance, dest: int) -> None:
        ctx = self._admin_ctx()
        src_host = inst.host
        assert src_host is not None
        host, node = self.hosts[dest], self._node_of[dest]
        t0 = self._begin()
        src, dst = "nova-compute:" + src_host, "nova-compute:" + host
        i1 = attrs.evolve(inst, version=t0, task_state="migrating")
        self._update(self._api(), i1, ctx, inst.vm_state, None)
        self._action("instance.live_migration_pre.start", dst, i1, ctx)
        self._action("instance.live_migration_pre.end", dst, i1, ctx)
        self._phase(2, 10)  # the memory copy
        self._action("instance.live_migration_post.start", src, i1, ctx)
        self._action("instance.live_migration_post_dest.start", dst, i1, ctx)
        i2 = attrs.evolve(i1, version=self._at(dst), host=host, node=node, task_state=None)
        self._update(dst, i2, ctx, inst.vm_state, "migrating")
        self._action("instance.live_migration_post_dest.end", dst, i2, ctx)
        # the source's copy of the instance is stale: its own host, older updated_at
        self._action("instance.live_migration_post.end", src, i1, ctx)
        self._commit(inst, i2)
        self._end("live_migrate", i2, source=src_host, dest=host)

    def _resize(self, inst: Instance, new: Flavor, dest: int, revert: bool) -> None:
        """Cold migration (same flavor) or resize, then confirm or revert."""
        kind = "cold_migrate" if new == inst.flavor else "resize"
        ctx = self._admin_ctx() if kind == "cold_migrate" else self._user_ctx(inst)
        src_host, src_node, old = inst.host, inst.node, inst.flavor
        assert src_host is not None
        host, node = self.hosts[dest], self._node_of[dest]
        vm = inst.vm_state
        src, dst = "nova-compute:" + src_host, "nova-compute:" + host
        t0 = self._begin()
        i1 = attrs.evolve(inst, version=t0, task_state="resize_prep")
        self._update(self._api(), i1, ctx, vm, None)
        self._resize_prep("instance.resize_prep.start", dst, i1, new, ctx)
        self._resize_prep("instance.resize_prep.end", dst, i1, new, ctx)
        self._phase(1, 3)
        i2 = attrs.evolve(i1, version=self._at(src), task_state="resize_migrating")
        self._update(src, i2, ctx, vm, "resize_prep")
        self._action("instance.resize.start", src, i2, ctx)
        i3 = attrs.evolve(i2, task_state="resize_migrated")
        self._update(src, i3, ctx, vm, "resize_migrating")
        self._action("instance.resize.end", src, i3, ctx)
        self._phase(2, 10)
        i4 = attrs.evolve(i3, version=self._at(dst), host=host, node=node, flavor=new, task_state="resize_finish")
        self._update(dst, i4, ctx, vm, "resize_migrated")
        self._action("instance.resize_finish.start", dst, i4, ctx)
        i5 = attrs.evolve(i4, vm_state="resized", task_state=None)
        self._update(dst, i5, ctx, vm, "resize_finish")
        self._action("instance.resize_finish.end", dst, i5, ctx)
        t3 = self._phase(5, 60)  # the user looks at it, then confirms or reverts
        ctx = (self._req(), *ctx[1:])  # type: ignore[assignment]
        if not revert:
            self._action("instance.resize_confirm.start", src, i5, ctx)
            final = attrs.evolve(i5, version=self._at(src), vm_state=vm)
            self._update(src, final, ctx, "resized", None)
            self._action("instance.resize_confirm.end", src, final, ctx)
            detail = f"{old.name}->{new.name}" if kind == "resize" else ""
        else:
            i6 = attrs.evolve(i5, version=t3, task_state="resize_reverting")
            self._update(self._api(), i6, ctx, "resized", None)
            self._action("instance.resize_revert.start", dst, i6, ctx)
            self._phase(1, 5)
            final = attrs.evolve(
                i6, version=self._at(src), host=src_host, node=src_node, flavor=old, vm_state=vm, task_state=None
            )
            self._update(src, final, ctx, "resized", "resize_reverting")
            self._action("instance.resize_revert.end", src, final, ctx)
            detail = f"reverted {old.name}->{new.name} on {host}"
            self.counters["resize_revert"] += 1
        self._commit(inst, final)
        self._end(kind, final, source=src_host, dest=host, detail=detail)

    def _transition(self, inst: Instance, action: str) -> None:
        frm, to, power, task = TRANSITIONS[action]
        assert inst.vm_state == frm and inst.host is not None
        ctx = self._user_ctx(inst)
        comp = "nova-compute:" + inst.host
        t0 = self._begin()
        i1 = attrs.evolve(inst, version=t0, task_state=task)
        self._update(self._api(), i1, ctx, frm, None)
        self._action(f"instance.{action}.start", comp, i1, ctx)
        self._phase(1, 5)
        i2 = attrs.evolve(i1, version=self._at(comp), vm_state=to, power_state=power, task_state=None)
        self._update(comp, i2, ctx, frm, task)
        self._action(f"instance.{action}.end", comp, i2, ctx)
        self._commit(inst, i2)
        self._end(action, i2, host=inst.host)

    def _shelve(self, inst: Instance, offload: bool) -> None:
        assert inst.host is not None
        ctx = self._user_ctx(inst)
        comp = "nova-compute:" + inst.host
        vm = inst.vm_state
        t0 = self._begin()
        i1 = attrs.evolve(inst, version=t0, task_state="shelving")
        self._update(self._api(), i1, ctx, vm, None)
        self._action("instance.shelve.start", comp, i1, ctx)
        i1b = attrs.evolve(i1, version=self._at(comp), task_state="shelving_image_pending_upload")
        self._update(comp, i1b, ctx, vm, "shelving")
        i1c = attrs.evolve(i1b, task_state="shelving_image_uploading")
        self._update(comp, i1c, ctx, vm, "shelving_image_pending_upload")
        self._phase(2, 20)
        i2 = attrs.evolve(i1c, version=self._at(comp), vm_state="shelved", power_state="shutdown", task_state=None)
        self._update(comp, i2, ctx, vm, "shelving_image_uploading")
        self._action("instance.shelve.end", comp, i2, ctx)
        self._commit(inst, i2)
        self._record("shelve", i2, host=inst.host)
        if offload:  # shelved_offload_time = 0: offloaded right away
            self._shelve_offload(i2, ctx)
        self._end()

    def _shelve_offload(self, inst: Instance, ctx: _Ctx) -> None:
        """Inside an operation (between _begin and _end)."""
        assert inst.host is not None and inst.vm_state == "shelved"
        comp = "nova-compute:" + inst.host
        self._phase(1, 2)
        i1 = attrs.evolve(inst, version=self._at(comp), task_state="shelving_offloading")
        self._update(comp, i1, ctx, "shelved", None)
        self._action("instance.shelve_offload.start", comp, i1, ctx)
        self._phase(1, 3)
        # no host, no zone: Nova's notifications say null here, its API ''
        i2 = attrs.evolve(
            i1, version=self._at(comp), host=None, node=None, vm_state="shelved_offloaded", task_state=None,
            availability_zone=None,
        )  # fmt: skip
        self._update(comp, i2, ctx, "shelved", "shelving_offloading")
        self._action("instance.shelve_offload.end", comp, i2, ctx)
        self._commit(inst, i2)
        self._record("shelve_offload", i2, source=inst.host)

    def _unshelve(self, inst: Instance, dest: int | None) -> None:
        ctx = self._user_ctx(inst)
        vm = inst.vm_state
        src: str | None = None
        t0 = self._begin()
        i1 = attrs.evolve(inst, version=t0, task_state="unshelving")
        self._update(self._api(), i1, ctx, vm, None)
        if vm == "shelved_offloaded":
            assert dest is not None
            host = self.hosts[dest]
            comp = "nova-compute:" + host
            self._phase(1, 3)
            self._action("instance.unshelve.start", comp, i1, ctx)
            i2 = attrs.evolve(
                i1, version=self._at(comp), host=host, node=self._node_of[dest], task_state="spawning",
                availability_zone="nova",
            )  # fmt: skip
            self._update(comp, i2, ctx, vm, "unshelving")
            last_task = "spawning"
        else:
            assert inst.host is not None
            host = inst.host
            comp = "nova-compute:" + host
            self._action("instance.unshelve.start", comp, i1, ctx)
            i2 = i1
            last_task = "unshelving"
            src = host
        self._phase(2, 10)
        final = attrs.evolve(i2, version=self._at(comp), vm_state="active", power_state="running", task_state=None)
        self._update(comp, final, ctx, vm, last_task)
        self._action("instance.unshelve.end", comp, final, ctx)
        self._commit(inst, final)
        self._end("unshelve", final, source=src, dest=host)

    def _lock(self, inst: Instance, locked: bool, reason: str | None) -> None:
        ctx = self._user_ctx(inst)
        t0 = self._begin()
        new = attrs.evolve(inst, version=t0, locked=locked, locked_reason=reason if locked else None)
        self._action("instance.lock" if locked else "instance.unlock", self._api(), new, ctx)
        self._commit(inst, new)
        self._end("lock" if locked else "unlock", new, detail=reason or "")

    def _service(
        self, i: int, kind: str, *, disabled: bool | None = None, reason: str | None = None,
        forced_down: bool | None = None,
    ) -> None:  # fmt: skip
        host = self.hosts[i]
        old = self._services[host]
        t0 = self._begin()
        changes: dict[str, Any] = {"version": t0}
        if disabled is not None:
            changes["disabled"] = disabled
            changes["disabled_reason"] = reason if disabled else None
            (self._disabled.add if disabled else self._disabled.discard)(i)
        if forced_down is not None:
            changes["forced_down"] = forced_down
            changes["up"] = not forced_down
            (self._forced.add if forced_down else self._forced.discard)(i)
        new = attrs.evolve(old, **changes)
        self._services[host] = new
        payload = N.service_status_payload(
            new,
            last_seen_up=t0 - (3 + int(self._rng.random() * 7)) * S,
            report_count=(t0 - self.start_time_us) // (10 * S) + 86_400,
        )
        self._send("service.update", self._api(), payload, self._admin_ctx())
        self._end(kind, None, host=host, detail=str(new.disabled_reason or ""))

    # ------------------------------------------------------------------
    # Bookkeeping
    # ------------------------------------------------------------------

    def _commit(self, old: Instance | None, new: Instance | None) -> None:
        """Replace an instance in the truth, keeping usage and the pools right."""
        if old is not None and old.host is not None:
            i = self._host_idx[old.host]
            f = old.flavor
            self._ucpu[i] -= f.vcpus
            self._uram[i] -= f.memory_mb
            self._udisk[i] -= flavor_disk_gb(f)
        if new is None:
            assert old is not None
            u = old.uuid
            del self._inst[u]
            self._live.discard(u)
            self._parked.discard(u)
            self._locked.discard(u)
            self._born.pop(u, None)
            if self._sorted is not None:
                k = bisect.bisect_left(self._sorted, u)
                if k < len(self._sorted) and self._sorted[k] == u:
                    del self._sorted[k]
            return
        u = new.uuid
        if new.host is not None:
            i = self._host_idx[new.host]
            f = new.flavor
            self._ucpu[i] += f.vcpus
            self._uram[i] += f.memory_mb
            self._udisk[i] += flavor_disk_gb(f)
        if old is None:
            self._live.add(u)
            if self._sorted is not None:
                bisect.insort(self._sorted, u)
        self._inst[u] = new
        (self._parked.add if new.vm_state != "active" else self._parked.discard)(u)
        (self._locked.add if new.locked else self._locked.discard)(u)

    def _begin(self) -> int:
        """Start an operation in a new second, more than one second after the previous one ended."""
        rng = self._rng
        self._sec = self.clock_us // S * S + (2 + int(rng.random() * 3)) * S
        self._now = self._sec + 1_000 + int(rng.random() * 150_000)
        return self._sec

    def _phase(self, lo: int, hi: int) -> int:
        """A later save in the same operation: lo..hi whole seconds later."""
        rng = self._rng
        self._sec = self._now // S * S + (lo + int(rng.random() * (hi - lo + 1))) * S
        self._now = self._sec + 1_000 + int(rng.random() * 150_000)
        return self._sec

    def _end(self, kind: str | None = None, inst: Instance | None = None, **rec: Any) -> None:
        self.clock_us = self._now
        if kind is not None:
            self._record(kind, inst, **rec)

    def _record(self, kind: str, inst: Instance | None, **rec: Any) -> None:
        self.counters["ops"] += 1
        self.counters[kind] += 1
        if inst is not None:
            rec.setdefault("uuid", inst.uuid)
            rec.setdefault("name", inst.name)
        self.history.append(OpRecord(kind, self._sec, **rec))

    def _send(self, event_type: str, publisher: str, payload: dict, ctx: _Ctx) -> None:
        self._now = min(self._now + 300 + int(self._rng.random() * 40_000), self._sec + 999_999)
        ids = self._idrng
        inner = N.message(
            event_type=event_type,
            publisher_id=publisher,
            payload=payload,
            timestamp=self._now + self._skew_pub.get(publisher, 0),
            message_id=str(_uuid.UUID(int=ids.getrandbits(128), version=4)),
            unique_id=_uuid.UUID(int=ids.getrandbits(128), version=4).hex,
            request_id=ctx[0],
            user_id=ctx[1],
            project_id=ctx[2],
            is_admin=ctx[3],
        )
        self._raw.append(N.wire(inner))

    def _data(self, inst: Instance, ctx: _Ctx, deleted: int | None = None) -> dict:
        d = N.instance_data(
            inst,
            self._extras(inst.uuid),
            request_id=ctx[0],
            initiator_user=ctx[1],
            initiator_project=ctx[2],
            deleted_at=deleted,
            terminated_at=deleted,
        )
        if inst.uuid in self._unsaved:
            d["updated_at"] = None  # Nova: no save since the instance was created
        return d

    def _at(self, pub: str) -> int:
        """``updated_at`` of a save by ``pub`` in the current phase: the phase's second on
        the saver's clock (a compute host's may be skewed; API and conductor are not)."""
        return self._sec + self._skew_pub.get(pub, 0)

    def _action(self, event_type: str, pub: str, inst: Instance, ctx: _Ctx, deleted: int | None = None) -> None:
        self._send(event_type, pub, N.instance_action_payload(self._data(inst, ctx, deleted)), ctx)

    def _update(
        self, pub: str, inst: Instance, ctx: _Ctx, old_state: str, old_task: str | None, deleted: int | None = None
    ) -> None:
        payload = N.instance_update_payload(
            self._data(inst, ctx, deleted), old_state=old_state, old_task_state=old_task, audit_period_ending=self._sec
        )
        self._send("instance.update", pub, payload, ctx)

    def _create(self, event_type: str, pub: str, inst: Instance, ctx: _Ctx) -> None:
        payload = N.instance_create_payload(self._data(inst, ctx), self._extras(inst.uuid))
        self._send(event_type, pub, payload, ctx)

    def _resize_prep(self, event_type: str, pub: str, inst: Instance, new: Flavor, ctx: _Ctx) -> None:
        self._send(event_type, pub, N.instance_resize_prep_payload(self._data(inst, ctx), new), ctx)

    def _pre_created(self, u: str) -> int:
        """created_at of an instance that existed before the sim started (derived from its uuid)."""
        return self.start_time_us - (86_400 + int(u[-8:], 16) % (180 * 86_400)) * S

    def _extras(self, u: str) -> N.InstanceExtras:
        born = self._born.get(u)
        if born is None:
            created = self._pre_created(u)
            launched: int | None = created + 30 * S
        else:
            created, launched = born
        h = int(u[:8], 16)
        return N.InstanceExtras(
            created_at=created,
            launched_at=launched,
            image_uuid=IMAGES[h % len(IMAGES)],
            reservation_id="r-" + u[-8:],
            instance_name="instance-" + u[:8],
            ip_address=f"10.{(h >> 16) & 255}.{(h >> 8) & 255}.{(h & 253) + 2}",
            mac=f"fa:16:3e:{u[9:11]}:{u[11:13]}:{u[14:16]}",
        )

    def _new_name(self, project_id: str) -> str:
        self._name_seq += 1
        role = ROLES[int(self._rng.random() * len(ROLES))]
        pname = next(name for pid, name in self.projects if pid == project_id)
        return f"{pname}-{role}-{self._name_seq:05d}"

    def _req(self) -> str:
        return "req-" + str(_uuid.UUID(int=self._idrng.getrandbits(128), version=4))

    def _ctx(self, user: str, project: str) -> _Ctx:
        return (self._req(), user, project, False)

    def _user_ctx(self, inst: Instance) -> _Ctx:
        return (self._req(), inst.user_id, inst.project_id, False)

    def _admin_ctx(self) -> _Ctx:
        return (self._req(), self.admin_user, self.admin_project, True)

    def _api(self) -> str:
        return "nova-api:" + CONTROLLERS[int(self._rng.random() * len(CONTROLLERS))]

    # placement

    def _pick_flavor(self) -> Flavor:
        return self.flavors[_pick(self._flavor_cum, self._rng)]

    def _fits(self, i: int, f: Flavor) -> bool:
        return (
            self._ucpu[i] + f.vcpus <= self._cap_cpu
            and self._uram[i] + f.memory_mb <= self._cap_ram
            and self._udisk[i] + flavor_disk_gb(f) <= self._cap_disk
        )

    def _fits_same_host(self, i: int, new: Flavor) -> bool:
        """A resize on the same host holds the old and the new allocation until confirmed."""
        return self._fits(i, new) and i not in self._disabled and i not in self._forced

    def _can_host(self, i: int, f: Flavor) -> bool:
        return i not in self._disabled.pos and i not in self._forced.pos and self._fits(i, f)

    def _pick_host(self, f: Flavor, exclude: int = -1) -> int | None:
        n = len(self.hosts)
        if not n:
            return None
        rng = self._rng
        for _ in range(min(n, 24)):
            i = int(rng.random() * n)
            if i != exclude and self._can_host(i, f):
                return i
        start = int(rng.random() * n)
        for k in range(n):
            i = (start + k) % n
            if i != exclude and self._can_host(i, f):
                return i
        return None

    def _host_up(self, host: str | None) -> bool:
        return host is not None and self._host_idx[host] not in self._forced.pos

    # explicit-operation helpers

    def _host(self, host: str) -> int:
        try:
            return self._host_idx[host]
        except KeyError:
            raise OperationError(f"no compute host {host!r}") from None

    def _flavor(self, flavor: str | Flavor) -> Flavor:
        if isinstance(flavor, Flavor):
            return flavor
        try:
            return self._flavors_by_name[flavor]
        except KeyError:
            raise OperationError(f"no flavor {flavor!r}") from None

    def _require(self, inst: Instance, states: tuple[str, ...], admin: bool = False) -> None:
        if inst.vm_state not in states:
            raise OperationError(f"instance {inst.uuid} is {inst.vm_state}, needs {' or '.join(states)}")
        if inst.locked and not admin:
            raise OperationError(f"instance {inst.uuid} is locked")
        if inst.host is not None and not self._host_up(inst.host):
            raise OperationError(f"the compute service on {inst.host} is down")

    def _dest(self, inst: Instance, f: Flavor, dest: str | None) -> int:
        exclude = self._host_idx[inst.host] if inst.host is not None else -1
        if dest is None:
            d = self._pick_host(f, exclude=exclude)
            if d is None:
                raise OperationError(f"no other host can take {f.name}")
            return d
        d = self._host(dest)
        if d == exclude:
            raise OperationError(f"instance {inst.uuid} is already on {dest}")
        if not self._can_host(d, f):
            raise OperationError(f"{dest} cannot take {f.name} (disabled, down or full)")
        return d

    def _explicit_transition(self, uuid: str, action: str) -> list[bytes]:
        inst = self.instance(uuid)
        self._require(inst, (TRANSITIONS[action][0],))
        self._transition(inst, action)
        return self._deliver()

    # delivery

    def _deliver(self) -> list[bytes]:
        raw, self._raw = self._raw, []
        return self._delivery.deliver(raw, self.faults)


# ---------------------------------------------------------------------------
# Comparing a model with the truth
# ---------------------------------------------------------------------------


def _compared(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.name != "version")


_FIELDS = {
    "instance": _compared(Instance),
    "node": _compared(ComputeNode),
    "service": _compared(ComputeService),
}


def diff_truth(
    truth: Truth,
    instances: Mapping[str, Instance],
    nodes: Mapping[str, ComputeNode],
    services: Mapping[str, ComputeService],
) -> list[str]:
    """Human-readable differences between the ground truth and a model, ignoring ``version``.

    An empty list means the model equals the truth. Each line names the entity kind
    and key and says what is missing, extra, or which field differs (truth vs model).
    """
    out: list[str] = []
    for kind, want, got in (
        ("instance", truth.instances, instances),
        ("node", truth.nodes, nodes),
        # services are keyed by host here and by host/binary in a model: compare by key
        ("service", {s.key: s for s in truth.services.values()}, {s.key: s for s in services.values()}),
    ):
        names = _FIELDS[kind]
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
                for name, a, b in zip(names, tv, mv):
                    if a != b:
                        out.append(f"{kind} {key}: {name} differs: truth={a!r} model={b!r}")
        for key in got:
            if key not in want:
                out.append(f"{kind} {key}: extra in the model (not in the truth)")
    return out


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _cumulative(weights: Any) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return out


def _pick(cum: list[float], rng: random.Random) -> int:
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def _uuid4(rng: random.Random) -> str:
    return str(_uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random) -> str:
    return _uuid.UUID(int=rng.getrandbits(128), version=4).hex
