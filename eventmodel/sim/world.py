"""The simulated cloud as it stands before the log starts: people, flavors, hosts,
aggregates and zones, and the instances already placed.

Hosts are ``compute-0001``...; each host's hypervisor is ``compute-0001.example.org``
(libvirt reports the FQDN while the service host is the short name, so code that mixes
the two up is caught). Two zone aggregates split the hosts into zones ``az1`` and
``az2`` (two hosts in five each); the fifth host of every five stays in the default
zone ``nova``. Two aggregates without a zone carry metadata: ``ssd-hosts``
(``ssd=true``, every third host) and ``pinned-cpu`` (``pinned=true``, every seventh).
One flavor (``c1.dedicated``) has extra specs; some instances have user metadata
(``optimize``, ``watcher-exclude``).
"""

from __future__ import annotations

import random
import uuid as _uuid
from collections.abc import Callable

from eventmodel.events import Aggregate, ComputeNode, ComputeService, Flavor, Instance
from eventmodel.sim.truth import ZONE_KEY, GroundTruth, HostSpec, S

DEFAULT_FLAVORS: tuple[Flavor, ...] = (
    Flavor("m1.tiny", 1, 512, 1),
    Flavor("m1.small", 1, 2048, 20),
    Flavor("m1.medium", 2, 4096, 40),
    Flavor("m1.large", 4, 8192, 80),
    Flavor("m1.xlarge", 8, 16384, 160),
    Flavor("c1.dedicated", 4, 8192, 40, extra_specs={"hw:cpu_policy": "dedicated"}),
)
DEFAULT_FLAVOR_WEIGHTS: tuple[float, ...] = (10, 30, 30, 20, 10, 5)

PROJECTS = ("payments", "search", "analytics", "ci", "platform", "research")
ROLES = ("web", "api", "db", "cache", "worker", "k8s-node", "batch", "runner", "mq", "search")

#: user metadata a new instance gets, with its probability (the rest get none); shared
#: dicts (entities never change them)
INSTANCE_METADATA: tuple[tuple[float, dict[str, str]], ...] = (
    (0.08, {"optimize": "true"}),
    (0.04, {"watcher-exclude": "true"}),
    (0.03, {"optimize": "false", "owner": "sre"}),
)
#: (name, zone, metadata) of the aggregates a cloud starts with, and which hosts (by index) are in each
INITIAL_AGGREGATES: tuple[tuple[str, str | None, dict[str, str]], ...] = (
    ("zone-az1", "az1", {}),
    ("zone-az2", "az2", {}),
    ("ssd-hosts", None, {"ssd": "true"}),
    ("pinned-cpu", None, {"pinned": "true"}),
)


def _in_initial(k: int, i: int) -> bool:
    """Whether host index ``i`` is in the ``k``-th of :data:`INITIAL_AGGREGATES`."""
    if k == 0:
        return i % 5 in (0, 1)
    if k == 1:
        return i % 5 in (2, 3)
    if k == 2:
        return i % 3 == 0
    return i % 7 == 3


def uuid4(rng: random.Random) -> str:
    return str(_uuid.UUID(int=rng.getrandbits(128), version=4))


def hex_id(rng: random.Random) -> str:
    return _uuid.UUID(int=rng.getrandbits(128), version=4).hex


def draw_metadata(rng: random.Random) -> dict[str, str]:
    """A new instance's user metadata (mostly none)."""
    r = rng.random()
    for p, md in INSTANCE_METADATA:
        if r < p:
            return md
        r -= p
    return {}


class People:
    """The admin, the projects and their users, and the server names they choose."""

    def __init__(self, rng: random.Random) -> None:
        self.admin_user = hex_id(rng)
        self.admin_project = hex_id(rng)
        self.projects: list[tuple[str, str]] = [(hex_id(rng), name) for name in PROJECTS]  # (id, name)
        self.users: dict[str, list[str]] = {pid: [hex_id(rng) for _ in range(3)] for pid, _ in self.projects}
        self._names = dict(self.projects)
        self._seq = 0

    def new_name(self, rng: random.Random, project_id: str) -> str:
        self._seq += 1
        role = ROLES[int(rng.random() * len(ROLES))]
        return f"{self._names[project_id]}-{role}-{self._seq:05d}"


def host_names(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"compute-{i:0{width}d}" for i in range(1, n + 1)]


def add_hosts(truth: GroundTruth, rng: random.Random, spec: HostSpec, version: int) -> None:
    """Every host's hypervisor node and ``nova-compute`` service, enabled and up."""
    for i, h in enumerate(truth.hosts):
        node = ComputeNode(
            name=truth.node_of[i],
            version=version,
            host=h,
            uuid=uuid4(rng),
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
        svc = ComputeService(h, "nova-compute", version, uuid=uuid4(rng), availability_zone=truth.zone(h))
        truth.add_host(i, node, svc)


def add_aggregates(truth: GroundTruth, rng: random.Random) -> None:
    """The aggregates of :data:`INITIAL_AGGREGATES` (the hosts' zones follow)."""
    for k, (name, zone, md) in enumerate(INITIAL_AGGREGATES):
        metadata = dict(md)
        if zone is not None:
            metadata[ZONE_KEY] = zone
        hosts = tuple(sorted(h for i, h in enumerate(truth.hosts) if _in_initial(k, i)))
        agg_id = truth.next_aggregate_id
        truth.next_aggregate_id += 1
        truth.put_aggregate(Aggregate(uuid4(rng), 0, agg_id, name, zone, hosts, metadata))


def place_instances(
    truth: GroundTruth,
    rng: random.Random,
    people: People,
    count: int,
    pick_flavor: Callable[[], Flavor],
    created_at: Callable[[str], int],
) -> None:
    """``count`` ACTIVE instances on random hosts within capacity, created before the
    start (``created_at(uuid)``), last saved 30 s after their creation."""
    nprojects = len(people.projects)
    for n in range(count):
        u = uuid4(rng)
        f = pick_flavor()
        i = truth.pick_host(rng, f)
        if i is None:
            raise ValueError(
                f"cannot place instance {n + 1} of {count}: {len(truth.hosts)} hosts are full "
                f"(capacity per host: {truth.spec.capacity})"
            )
        pid = people.projects[int(rng.random() * nprojects)][0]
        users = people.users[pid]
        host = truth.hosts[i]
        created = created_at(u)
        inst = Instance(
            u,
            created + 30 * S,
            host,
            truth.node_of[i],
            "active",
            f,
            "running",
            None,
            pid,
            users[int(rng.random() * len(users))],
            people.new_name(rng, pid),
            False,
            None,
            truth.zone(host),
            draw_metadata(rng),
            created,
        )
        truth.commit(None, inst)
