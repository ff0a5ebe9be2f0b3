"""Writes this directory's notifications: oslo.messaging 2.0 wire envelopes
(``messagingv2``) of Cinder 29.0.0's unversioned notifications, shaped as its source
builds them (see README.md). Run it from anywhere: ``python generate.py``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOLUME = "6f1b1c8e-3c5a-4b7e-9a53-2f4d1b8e7c01"
SERVER = "0e3c8f4a-7d2b-4c19-8e6a-5b1f9d2c7a33"
ATTACHMENT = "9b8e2d1c-4f6a-4e3b-a7c5-1d2e3f4a5b6c"
TYPE_LVM = "2c0f2b8e-8f3a-4d5b-9e6c-7a1b2c3d4e5f"
TYPE_FAST = "7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2910"
PROJECT = "4b1e7a6c2d3f4e5a8b9c0d1e2f3a4b5c"
NEW_PROJECT = "9f8e7d6c5b4a49382716a5b4c3d2e1f0"
USER = "a1b2c3d4e5f64718293a4b5c6d7e8f90"
BACKEND = "storage-1@lvm"
POOL = f"{BACKEND}#lvm-pool"
FAST_POOL = "storage-2@ceph#rbd"

CONTEXT = {
    "_context_request_id": "req-5b0f8e4c-7a1d-4c2e-9f3b-6d8a1e2c4b7f",
    "_context_user_id": USER,
    "_context_project_id": PROJECT,
    "_context_is_admin": False,
    "_context_roles": ["member", "reader"],
    "_context_read_deleted": "no",
    "_context_remote_address": "192.0.2.10",
    "_context_auth_token": "gAAAAABnZXhhbXBsZS10b2tlbi1ub3QtcmVhbA",
    "_context_service_catalog": [],
    "_context_timestamp": "2026-12-01T10:00:00.000000",
}


def volume_row(**kw: object) -> dict:
    """The joined volumes row an attachment row carries (JsonPayloadSerializer form)."""
    row = {
        "created_at": "2026-12-01T09:58:02.000000", "updated_at": "2026-12-01T10:00:11.000000",
        "deleted_at": None, "deleted": False, "id": VOLUME, "name_id": None, "use_quota": True,
        "user_id": USER, "project_id": PROJECT, "snapshot_id": None, "cluster_name": None, "host": POOL,
        "size": 10, "availability_zone": "nova", "status": "in-use", "attach_status": "attached",
        "migration_status": None, "scheduled_at": "2026-12-01T09:58:02.000000",
        "launched_at": "2026-12-01T09:58:04.000000", "terminated_at": None, "display_name": "data-1",
        "display_description": "", "provider_location": "10.0.0.21:3260,1 iqn.2010-10.org.openstack:volume-1 0",
        "provider_auth": "CHAP chapuser N0tR3alChapS3cret", "provider_geometry": None, "provider_id": None,
        "volume_type_id": TYPE_LVM, "source_volid": None, "encryption_key_id": None,
        "consistencygroup_id": None, "group_id": None, "bootable": False, "multiattach": False,
        "replication_status": None, "replication_extended_status": None, "replication_driver_data": None,
        "previous_status": None, "service_uuid": "3d9e1f2a-5b6c-4d7e-8f9a-0b1c2d3e4f5a",
        "shared_targets": True,
    }
    row.update(kw)
    return row


def attachment(status: str = "attached", **kw: object) -> dict:
    """A volume_attachment row (not ``detached``) as ``_usage_from_volume`` lists them."""
    row = {
        "created_at": "2026-12-01T10:00:05.000000", "updated_at": "2026-12-01T10:00:11.000000",
        "deleted_at": None, "deleted": False, "id": ATTACHMENT, "volume_id": VOLUME, "instance_uuid": SERVER,
        "attached_host": "compute-3", "mountpoint": "/dev/vdb", "attach_time": "2026-12-01T10:00:11.000000",
        "detach_time": None, "attach_status": status, "attach_mode": "rw",
        "connection_info": json.dumps({"driver_volume_type": "iscsi", "data": {
            "target_iqn": "iqn.2010-10.org.openstack:volume-1", "target_portal": "10.0.0.21:3260",
            "target_lun": 0, "auth_method": "CHAP", "auth_username": "chapuser",
            "auth_password": "N0tR3alChapS3cret"}}),
        "connector": json.dumps({"host": "compute-3", "initiator": "iqn.1994-05.com.redhat:compute-3",
                                 "multipath": False, "platform": "x86_64", "os_type": "linux"}),
        "volume": volume_row(),
    }
    row.update(kw)
    return row


def volume_payload(**kw: object) -> dict:
    """``volume_utils._usage_from_volume``: its keys in its order, then the overrides."""
    payload = {
        "tenant_id": PROJECT, "host": POOL, "user_id": USER, "availability_zone": "nova",
        "volume_id": VOLUME, "volume_type": TYPE_LVM, "display_name": "data-1",
        "launched_at": "2026-12-01T09:58:04+00:00", "created_at": "2026-12-01T09:58:02+00:00",
        "status": "available", "snapshot_id": None, "size": 10, "replication_status": None,
        "replication_extended_status": None, "replication_driver_data": None,
        "metadata": [{"key": "purpose", "value": "db"}, {"key": "tier", "value": "gold"}],
        "volume_attachment": [],
    }
    payload.update(kw)
    return payload


def envelope(n: int, event_type: str, publisher: str, payload: dict, priority: str = "INFO",
             timestamp: str = "2026-12-01 10:00:00.000000") -> dict:
    inner = {
        "message_id": f"5c7e9a1b-3d5f-4a7c-9e1b-{n:012x}",
        "publisher_id": publisher,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": timestamp,
        **CONTEXT,
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


ATTACHED = [attachment()]
FILES: list[tuple[str, str, str, dict]] = [
    ("volume-create-start", "volume.create.start", f"volume.{POOL}", volume_payload(status="creating")),
    ("volume-create-end", "volume.create.end", f"volume.{POOL}", volume_payload()),
    ("volume-create-end-from-image", "volume.create.end", f"volume.{POOL}", volume_payload(
        volume_id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", display_name=None, metadata=[],
        glance_metadata=[{"created_at": "2026-12-01T09:58:03.000000", "updated_at": None, "deleted_at": None,
                          "deleted": False, "id": 41, "volume_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                          "snapshot_id": None, "key": "image_id",
                          "value": "c2e6a0d4-1b3f-4e5a-9c7d-8e9f0a1b2c3d"}])),
    ("volume-manage_existing-end", "volume.manage_existing.end", f"volume.{POOL}", volume_payload(
        volume_id="3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", display_name="adopted")),
    ("volume-update-end", "volume.update.end", "volume.controller-1", volume_payload(display_name="data-renamed")),
    ("volume-attach-start", "volume.attach.start", f"volume.{BACKEND}",
     volume_payload(status="attaching", volume_attachment=[attachment("attaching", attach_time=None)])),
    ("volume-attach-end", "volume.attach.end", "volume.controller-1",
     volume_payload(status="in-use", volume_attachment=ATTACHED)),
    ("volume-detach-start", "volume.detach.start", "volume.controller-1",
     volume_payload(status="detaching", volume_attachment=[attachment("detaching")])),
    ("volume-detach-end", "volume.detach.end", "volume.controller-1", volume_payload()),
    ("volume-resize-start", "volume.resize.start", f"volume.{BACKEND}", volume_payload(status="extending")),
    ("volume-resize-end", "volume.resize.end", f"volume.{BACKEND}", volume_payload(size=20)),
    ("volume-retype", "volume.retype", f"volume.{BACKEND}", volume_payload(
        volume_type=TYPE_FAST, host=FAST_POOL)),
    ("volume-revert-end", "volume.revert.end", f"volume.{BACKEND}", volume_payload()),
    ("volume-transfer-create-end", "volume.transfer.create.end", "volume.controller-1",
     volume_payload(status="awaiting-transfer")),
    ("volume-transfer-accept-end", "volume.transfer.accept.end", "volume.controller-1",
     volume_payload(tenant_id=NEW_PROJECT)),
    ("volume-reset_status-end", "volume.reset_status.end", "volume.controller-1", volume_payload(status="error")),
    ("volume-delete-start", "volume.delete.start", f"volume.{BACKEND}", volume_payload(status="deleting")),
    ("volume-delete-end", "volume.delete.end", f"volume.{BACKEND}", volume_payload(status="deleted")),
    ("volume-delete-end-unscheduled", "volume.delete.end", "volume.controller-1", volume_payload(
        volume_id="5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", host=None, status="deleted")),
    ("volume-unmanage-end", "volume.unmanage.end", f"volume.{BACKEND}", volume_payload(
        volume_id="3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", status="deleted")),
    ("volume-exists", "volume.exists", "volume.audit-host", volume_payload(
        audit_period_beginning="2026-12-01T00:00:00.000000", audit_period_ending="2026-12-01T01:00:00.000000")),
    ("volume-create-end-replayed", "volume.create.end", "volume.audit-host", volume_payload(
        status="deleted", audit_period_beginning="2026-12-01T00:00:00.000000",
        audit_period_ending="2026-12-01T01:00:00.000000")),
    ("capacity-pool", "capacity.pool", "capacity.controller-1", {
        "name_to_id": POOL, "total": 1024.0, "free": 860.5, "allocated": 150.0, "provisioned": 163.0,
        "virtual_free": 3220.5, "reported_at": "2026-12-01T10:01:02.345678"}),
    ("capacity-backend", "capacity.backend", "capacity.controller-1", {
        "name_to_id": BACKEND, "total": 1024.0, "free": 860.5, "allocated": 150.0, "provisioned": 163.0,
        "virtual_free": 3220.5, "reported_at": "2026-12-01T10:01:02.345678"}),
    ("snapshot-create-end", "snapshot.create.end", f"snapshot.{BACKEND}", {
        "tenant_id": PROJECT, "user_id": USER, "availability_zone": "nova", "volume_id": VOLUME,
        "volume_size": 10, "snapshot_id": "8d9e0f1a-2b3c-4d5e-8f6a-7b8c9d0e1f2a", "display_name": "snap-1",
        "created_at": "2026-12-01 10:02:00+00:00", "status": "available", "deleted": "",
        "metadata": "{'purpose': 'backup'}"}),
    ("backup-create-end", "backup.create.end", "backup.backup-1", {
        "tenant_id": PROJECT, "user_id": USER, "availability_zone": "nova",
        "backup_id": "2f3a4b5c-6d7e-4f8a-9b0c-1d2e3f4a5b6c", "host": "backup-1", "display_name": "nightly",
        "created_at": "2026-12-01T10:03:00+00:00", "status": "available", "volume_id": VOLUME, "size": 10,
        "service_metadata": "volume_6f1b1c8e/20261201100300/az_nova_backup_2f3a4b5c",
        "service": "cinder.backup.drivers.swift.SwiftBackupDriver", "fail_reason": None, "parent_id": None,
        "num_dependent_backups": 0, "snapshot_id": None}),
    ("volume_type-create", "volume_type.create", "volumeType.controller-1", {"volume_types": {
        "created_at": "2026-12-01T10:04:00.000000", "updated_at": None, "deleted_at": None, "deleted": False,
        "id": TYPE_FAST, "name": "fast", "description": None, "is_public": True, "projects": [],
        "extra_specs": {"volume_backend_name": "ceph"}, "qos_specs_id": None}}),
    ("scheduler-create_volume", "scheduler.create_volume", "scheduler.controller-1", {
        "request_spec": {"volume_id": "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"},
        "volume_properties": {"size": 5000, "status": "creating"},
        "volume_id": "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f", "state": {"volume_state": "error"},
        "method": "create_volume", "reason": "No valid backend was found. No weighed backends available"}),
]

#: what each file becomes: the event type of its one event, or "irrelevant"
EXPECTED = {
    "volume-create-start": "irrelevant", "volume-create-end": "volume.changed",
    "volume-create-end-from-image": "volume.changed", "volume-manage_existing-end": "volume.changed",
    "volume-update-end": "volume.changed", "volume-attach-start": "irrelevant",
    "volume-attach-end": "volume.changed", "volume-detach-start": "irrelevant", "volume-detach-end": "volume.changed",
    "volume-resize-start": "irrelevant", "volume-resize-end": "volume.changed", "volume-retype": "volume.changed",
    "volume-revert-end": "volume.changed", "volume-transfer-create-end": "irrelevant",
    "volume-transfer-accept-end": "volume.changed", "volume-reset_status-end": "volume.changed",
    "volume-delete-start": "irrelevant", "volume-delete-end": "volume.deleted",
    "volume-delete-end-unscheduled": "volume.deleted", "volume-unmanage-end": "volume.deleted",
    "volume-exists": "irrelevant", "volume-create-end-replayed": "irrelevant", "capacity-pool": "pool.changed",
    "capacity-backend": "irrelevant", "snapshot-create-end": "irrelevant", "backup-create-end": "irrelevant",
    "volume_type-create": "irrelevant", "scheduler-create_volume": "irrelevant",
}


def main() -> None:
    for n, (name, event_type, publisher, payload) in enumerate(FILES, 1):
        priority = "ERROR" if event_type.startswith("scheduler.") else "INFO"
        stamp = f"2026-12-01 10:{n:02d}:{n:02d}.{n * 1000:06d}"
        doc = envelope(n, event_type, publisher, copy.deepcopy(payload), priority, stamp)
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (HERE / "expected.json").write_text(json.dumps(EXPECTED, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
