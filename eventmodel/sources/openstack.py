"""Reading a real cloud for full syncs, through openstacksdk.

Credentials come the way every OpenStack tool takes them: ``clouds.yaml`` with
``--cloud``/``OS_CLOUD``, or ``OS_*`` environment variables. What is read:

- compute services (``nova-compute`` only: other binaries host no instances, and the
  normalizer ignores their notifications too);
- hypervisors, joined to their Placement resource provider (same uuid from compute
  API microversion 2.53, else the same name) for capacity, reserved and allocation
  ratios of VCPU, MEMORY_MB and DISK_GB;
- every server of every project, page by page, with its embedded flavor
  (microversion ≥ 2.47).
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

from eventmodel import events as ev
from eventmodel.clock import floor_second, parse_time

#: Nova's power_state codes (nova/compute/power_state.py) by the names notifications use
POWER_STATES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed", 7: "suspended"}


def _version(*stamps: Any) -> int:
    """The first source time given (``updated_at``, then ``created_at``), floored to
    the second; the lowest version when there is none. Never a clock of ours."""
    for stamp in stamps:
        if stamp:
            return floor_second(parse_time(str(stamp)))
    return ev.LOWEST_VERSION


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def server_to_instance(s: Any) -> ev.Instance | ev.PartialInstance:
    """An openstacksdk Server (or its dict form) as our Instance; a minimal record (a
    server in a cell the API cannot reach: no flavor, status ``UNKNOWN``, from compute
    microversion 2.69) as a :class:`~eventmodel.events.PartialInstance`."""
    fl = _get(s, "flavor", default={}) or {}
    if not fl or _get(s, "status") == "UNKNOWN":
        return ev.PartialInstance(str(_get(s, "id")), str(_get(s, "status", default="UNKNOWN")),
                                  str(_get(s, "project_id", "tenant_id", default="")))
    flavor = ev.Flavor(
        name=str(_get(fl, "original_name", "name", default="")),
        vcpus=int(_get(fl, "vcpus", default=0)),
        memory_mb=int(_get(fl, "ram", default=0)),
        root_gb=int(_get(fl, "disk", default=0)),
        ephemeral_gb=int(_get(fl, "ephemeral", default=0)),
        swap_mb=int(_get(fl, "swap", default=0) or 0),
    )
    power = _get(s, "power_state")
    intern = sys.intern
    host = _get(s, "compute_host", "OS-EXT-SRV-ATTR:host")
    node = _get(s, "hypervisor_hostname", "OS-EXT-SRV-ATTR:hypervisor_hostname")
    return ev.Instance(
        uuid=str(_get(s, "id")),
        version=_version(_get(s, "updated_at"), _get(s, "created_at")),
        host=intern(host) if host else None,
        node=intern(node) if node else None,
        vm_state=intern(str(_get(s, "vm_state", "OS-EXT-STS:vm_state", default="unknown"))),
        flavor=flavor,
        power_state=POWER_STATES.get(power, str(power)) if isinstance(power, int) else power,
        task_state=_get(s, "task_state", "OS-EXT-STS:task_state"),
        project_id=intern(str(_get(s, "project_id", "tenant_id", default=""))),
        user_id=str(_get(s, "user_id", default="")),
        name=str(_get(s, "name", default="")),
        locked=bool(_get(s, "is_locked", "locked", default=False)),
        locked_reason=_get(s, "locked_reason"),
        availability_zone=_get(s, "availability_zone", "OS-EXT-AZ:availability_zone"),  # '' → None: Snapshotter
    )


class OpenStackReader:
    """A :class:`~eventmodel.sources.sync.CloudReader` over an openstacksdk connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, cloud: str | None = None) -> OpenStackReader:
        import openstack

        return cls(openstack.connect(cloud=cloud))

    def list_services(self) -> list[ev.ComputeService]:
        out = []
        for s in self.conn.compute.services(binary="nova-compute"):
            out.append(ev.ComputeService(
                host=s.host, binary=s.binary, version=_version(s.updated_at, getattr(s, "created_at", None)),
                disabled=s.status == "disabled", disabled_reason=s.disabled_reason,
                forced_down=bool(s.is_forced_down), up=s.state == "up", uuid=s.id,
            ))
        return out

    def list_nodes(self) -> list[ev.ComputeNode]:
        providers = {rp.id: rp for rp in self.conn.placement.resource_providers()}
        by_name = {rp.name: rp for rp in providers.values()}
        # The hypervisors API gives no time of change; nodes change only through full
        # syncs, whose observations are authoritative, so the lowest version will do.
        now = ev.LOWEST_VERSION
        out = []
        for h in self.conn.compute.hypervisors(details=True):
            rp = providers.get(h.id) or by_name.get(h.name)
            inv: dict[str, Any] = {}
            if rp is not None:
                inv = {i.resource_class: i for i in self.conn.placement.resource_provider_inventories(rp)}
            service = h.service_details or {}

            def amount(rc: str, field: str, default: Any = 0) -> Any:
                i = inv.get(rc)
                return getattr(i, field, default) if i is not None else default

            out.append(ev.ComputeNode(
                name=h.name, version=now, host=service.get("host"), uuid=rp.id if rp is not None else h.id,
                vcpus=int(amount("VCPU", "total")), memory_mb=int(amount("MEMORY_MB", "total")),
                disk_gb=int(amount("DISK_GB", "total")),
                vcpus_reserved=int(amount("VCPU", "reserved")),
                memory_mb_reserved=int(amount("MEMORY_MB", "reserved")),
                disk_gb_reserved=int(amount("DISK_GB", "reserved")),
                cpu_allocation_ratio=float(amount("VCPU", "allocation_ratio", 1.0)),
                ram_allocation_ratio=float(amount("MEMORY_MB", "allocation_ratio", 1.0)),
                disk_allocation_ratio=float(amount("DISK_GB", "allocation_ratio", 1.0)),
                hypervisor_type=h.hypervisor_type, state=h.state or "up",
            ))
        return out

    def list_servers(self, *, limit: int = 1000, marker: str | None = None
                     ) -> list[ev.Instance | ev.PartialInstance]:
        query: dict[str, Any] = {"all_projects": True, "limit": limit}
        if marker is not None:
            query["marker"] = marker
        # The SDK follows pagination links itself; take one page and let the
        # snapshotter ask for the next with the last uuid as marker.
        page = itertools.islice(self.conn.compute.servers(details=True, **query), limit)
        return [server_to_instance(s) for s in page]
