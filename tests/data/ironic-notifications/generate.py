"""Writes this directory's notifications: oslo.messaging 2.0 wire envelopes of Ironic
39.0.0's versioned ``baremetal.*`` notifications, shaped as its source builds them
(see README.md). Run it from anywhere: ``python generate.py``."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
INSTANCE = "0e3c8f4a-7d2b-4c19-8e6a-5b1f9d2c7a33"

CONTEXT = {
    "_context_request_id": "req-0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "_context_user_id": "b2c3d4e5f6a74819a0b1c2d3e4f5a6b7",
    "_context_project_id": "c3d4e5f6a7b84920b1c2d3e4f5a6b7c8",
    "_context_is_admin": True,
    "_context_roles": ["admin"],
    "_context_auth_token": "gAAAAABpcm9uaWMtdG9rZW4tbm90LXJlYWw",
}


def node(**kw: object) -> dict:
    """``NodePayload`` 1.17 fields (``ironic/objects/node.py``), datetimes as ovo writes them."""
    data = {
        "clean_step": {}, "conductor_group": "", "console_enabled": False,
        "created_at": "2026-11-20T08:00:00Z", "deploy_step": {}, "description": None,
        "disable_power_off": False, "driver": "ipmi", "extra": {"compute_node_id": 42, "rack": "r12"},
        "boot_mode": "uefi", "secure_boot": False, "inspection_finished_at": None, "inspection_started_at": None,
        "instance_uuid": None, "last_error": None, "maintenance": False, "maintenance_reason": None,
        "fault": None, "name": "bm-0042", "bios_interface": "no-bios", "boot_interface": "ipxe",
        "console_interface": "no-console", "deploy_interface": "direct", "inspect_interface": "agent",
        "management_interface": "ipmitool", "network_interface": "neutron", "power_interface": "ipmitool",
        "raid_interface": "no-raid", "rescue_interface": "no-rescue", "storage_interface": "noop",
        "vendor_interface": "ipmitool", "owner": None, "lessee": None, "power_state": "power off",
        "properties": {"cpus": 32, "memory_mb": 262144, "local_gb": 900, "cpu_arch": "x86_64"},
        "protected": False, "protected_reason": None, "provision_state": "available",
        "provision_updated_at": "2026-11-20T08:30:00Z", "resource_class": "baremetal.gold",
        "retired": False, "retired_reason": None, "target_power_state": None, "target_provision_state": None,
        "traits": ["CUSTOM_GOLD"], "updated_at": "2026-12-01T10:00:00Z", "uuid": NODE,
    }
    data.update(kw)
    return data


def crud(**kw: object) -> dict:
    """``NodeCRUDPayload`` 1.15 adds chassis_uuid, instance_info, driver_info (secrets masked by Ironic)."""
    return node(chassis_uuid=None, instance_info={}, driver_info={
        "ipmi_address": "192.0.2.42", "ipmi_username": "admin", "ipmi_password": "******"}, **kw)


def envelope(n: int, event_type: str, publisher: str, name: str, version: str, data: dict,
             priority: str = "INFO") -> dict:
    inner = {
        "message_id": f"7d1e2f3a-4b5c-4d6e-8f7a-{n:012x}",
        "publisher_id": publisher,
        "event_type": event_type,
        "priority": priority,
        "payload": {"ironic_object.name": name, "ironic_object.namespace": "ironic",
                    "ironic_object.version": version, "ironic_object.data": data},
        "timestamp": f"2026-12-01 10:{n:02d}:{n:02d}.{n * 1000:06d}",
        **CONTEXT,
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


API, CONDUCTOR = "ironic-api.controller-1", "ironic-conductor.conductor-1"
PROVISION = dict(event="deploy", previous_provision_state="deploying",
                 previous_target_provision_state="active", driver_internal_info={"is_whole_disk_image": True})
FILES = [
    ("baremetal-node-create-end", "baremetal.node.create.end", API, "NodeCRUDPayload", "1.15",
     crud(provision_state="enroll", power_state=None, updated_at=None)),
    ("baremetal-node-update-end", "baremetal.node.update.end", API, "NodeCRUDPayload", "1.15",
     crud(extra={"compute_node_id": 42, "rack": "r13"})),
    ("baremetal-node-maintenance_set-start", "baremetal.node.maintenance_set.start", API, "NodePayload", "1.17",
     node()),
    ("baremetal-node-maintenance_set-end", "baremetal.node.maintenance_set.end", API, "NodePayload", "1.17",
     node(maintenance=True, maintenance_reason="disk replacement", updated_at="2026-12-01T10:03:00Z")),
    ("baremetal-node-power_set-start", "baremetal.node.power_set.start", CONDUCTOR, "NodeSetPowerStatePayload",
     "1.17", node(to_power="power on")),
    ("baremetal-node-power_set-end", "baremetal.node.power_set.end", CONDUCTOR, "NodeSetPowerStatePayload",
     "1.17", node(power_state="power on", to_power="power on", updated_at="2026-12-01T10:05:00Z")),
    ("baremetal-node-power_set-error", "baremetal.node.power_set.error", CONDUCTOR, "NodeSetPowerStatePayload",
     "1.17", node(to_power="power on", last_error="IPMI call failed: power status.")),
    ("baremetal-node-power_state_corrected-success", "baremetal.node.power_state_corrected.success", CONDUCTOR,
     "NodeCorrectedPowerStatePayload", "1.17", node(power_state="power off", from_power="power on",
                                                     updated_at="2026-12-01T10:08:00Z")),
    ("baremetal-node-provision_set-start", "baremetal.node.provision_set.start", CONDUCTOR,
     "NodeSetProvisionStatePayload", "1.18", node(provision_state="deploying", instance_info={}, **PROVISION)),
    ("baremetal-node-provision_set-end", "baremetal.node.provision_set.end", CONDUCTOR,
     "NodeSetProvisionStatePayload", "1.18",
     node(provision_state="active", instance_uuid=INSTANCE, power_state="power on",
          instance_info={"image_source": "c2e6a0d4-1b3f-4e5a-9c7d-8e9f0a1b2c3d", "root_gb": "900"},
          updated_at="2026-12-01T10:10:00Z", **PROVISION)),
    ("baremetal-node-provision_set-success", "baremetal.node.provision_set.success", CONDUCTOR,
     "NodeSetProvisionStatePayload", "1.18",
     node(provision_state="manageable", instance_info={}, updated_at="2026-12-01T10:11:00Z",
          **{**PROVISION, "event": "manage", "previous_provision_state": "verifying",
             "previous_target_provision_state": "manageable"})),
    ("baremetal-node-console_set-end", "baremetal.node.console_set.end", CONDUCTOR, "NodePayload", "1.17",
     node(console_enabled=True)),
    ("baremetal-node-delete-end", "baremetal.node.delete.end", API, "NodeCRUDPayload", "1.15",
     crud(updated_at="2026-12-01T10:13:00Z")),
    ("baremetal-port-create-end", "baremetal.port.create.end", API, "PortCRUDPayload", "1.4", {
        "address": "52:54:00:12:34:56", "extra": {}, "local_link_connection": {}, "pxe_enabled": True,
        "created_at": "2026-12-01T10:14:00Z", "updated_at": None, "uuid": "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f",
        "node_uuid": NODE, "portgroup_uuid": None, "physical_network": "physnet1", "is_smartnic": False,
        "name": None}),
]

EXPECTED = {
    "baremetal-node-create-end": "baremetal_node.changed", "baremetal-node-update-end": "baremetal_node.changed",
    "baremetal-node-maintenance_set-start": "irrelevant",
    "baremetal-node-maintenance_set-end": "baremetal_node.changed",
    "baremetal-node-power_set-start": "irrelevant", "baremetal-node-power_set-end": "baremetal_node.changed",
    "baremetal-node-power_set-error": "irrelevant",
    "baremetal-node-power_state_corrected-success": "baremetal_node.changed",
    "baremetal-node-provision_set-start": "irrelevant", "baremetal-node-provision_set-end": "baremetal_node.changed",
    "baremetal-node-provision_set-success": "baremetal_node.changed",
    "baremetal-node-console_set-end": "irrelevant", "baremetal-node-delete-end": "baremetal_node.deleted",
    "baremetal-port-create-end": "irrelevant",
}


def main() -> None:
    for n, (fname, event_type, publisher, name, version, data) in enumerate(FILES, 1):
        priority = "ERROR" if event_type.endswith(".error") else "INFO"
        doc = envelope(n, event_type, publisher, name, version, data, priority)
        (HERE / f"{fname}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (HERE / "expected.json").write_text(json.dumps(EXPECTED, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
