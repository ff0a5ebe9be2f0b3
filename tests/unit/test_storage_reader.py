"""The storage reader's conversions of Cinder's API records (no HTTP): capacities that
are words, ``bootable`` as a string, the type's id from the type table, Nova's version
rule; and the Snapshotter's storage scope."""

from __future__ import annotations

import pytest

from eventmodel import events as ev
from eventmodel.clock import parse_time
from eventmodel.sources.openstack import CloudApiError
from eventmodel.sources.storage_sync import (
    CinderReader,
    parse_bool,
    pool_from_api,
    storage_node_from_api,
    volume_from_api,
    volume_type_from_api,
)
from eventmodel.sources.sync import Snapshotter

VOLUME = {
    "id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "name": None, "status": "in-use", "size": 20,
    "availability_zone": "az1", "created_at": "2026-01-02T03:04:05.000000", "updated_at": None,
    "volume_type": "standard", "snapshot_id": None, "metadata": {"purpose": "db", "n": 3}, "user_id": "u1",
    "bootable": "false", "encrypted": False, "multiattach": False,
    "os-vol-tenant-attr:tenant_id": "p1", "os-vol-host-attr:host": "storage-01@lvm#pool-a",
    "attachments": [{"id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "attachment_id": "a1", "server_id": "s1",
                     "volume_id": "6edbc2f4-1507-44f8-ac0d-eed1d2608d38", "host_name": "compute-1",
                     "device": "/dev/vdb", "attached_at": "2026-01-02T03:05:00.000000"}],
}


def test_a_volume_record_becomes_the_models_volume() -> None:
    v = volume_from_api(VOLUME, {"standard": "type-1"})
    assert v.uuid == VOLUME["id"] and v.host == "storage-01@lvm#pool-a" and v.size_gb == 20
    assert v.name == "" and v.project_id == "p1" and v.user_id == "u1" and v.availability_zone == "az1"
    assert (v.volume_type, v.volume_type_id) == ("standard", "type-1")  # the id from the type table
    assert v.attachments == (ev.VolumeAttachment("s1", "a1"),)
    assert v.metadata == {"purpose": "db", "n": "3"} and v.bootable is False and v.multiattach is False
    created = parse_time("2026-01-02T03:04:05Z")
    assert v.created_at == created and v.version == created  # updated_at null: created_at
    later = volume_from_api({**VOLUME, "updated_at": "2026-01-03T00:00:00.700000", "bootable": "true",
                             "volume_type_id": "type-9"}, {"standard": "type-1"})
    assert later.version == parse_time("2026-01-03T00:00:00Z")  # whole seconds
    assert later.bootable is True and later.volume_type_id == "type-9"  # the API's own id wins (>= 3.63)
    nothing = volume_from_api({**VOLUME, "created_at": None}, {})
    assert nothing.version == ev.LOWEST_VERSION and nothing.volume_type_id is None


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("True", True), (True, True),
                                         (False, False), (None, False), ("FALSE", False)])
def test_bootable_strings_are_parsed_not_truth_tested(text: object, value: bool) -> None:
    assert parse_bool(text, "bootable") is value


def test_a_bootable_that_is_no_boolean_is_rejected() -> None:
    with pytest.raises(ValueError, match="bootable"):
        parse_bool("maybe", "bootable")


def test_pools_with_numbers_and_with_words() -> None:
    lvm = pool_from_api({"name": "s@lvm#a", "capabilities": {
        "total_capacity_gb": 100, "free_capacity_gb": "60.5", "allocated_capacity_gb": 39.5,
        "provisioned_capacity_gb": 39.5, "total_volumes": 4, "timestamp": "2026-01-02T03:04:05.123456"}})
    assert (lvm.total_capacity_gb, lvm.free_capacity_gb, lvm.allocated_capacity_gb) == (100.0, 60.5, 39.5)
    assert lvm.total_volumes == 4 and lvm.unbounded is None and lvm.virtual_free_gb is None
    assert lvm.version == parse_time("2026-01-02T03:04:05Z") and lvm.node == "s@lvm"
    ceph = pool_from_api({"name": "s@ceph#rbd", "capabilities": {
        "total_capacity_gb": "infinite", "free_capacity_gb": "infinite", "allocated_capacity_gb": 7}})
    assert ceph.total_capacity_gb is None and ceph.free_capacity_gb is None and ceph.unbounded == "infinite"
    assert ceph.total_volumes is None and ceph.allocated_capacity_gb == 7.0 and ceph.version == ev.LOWEST_VERSION
    odd = pool_from_api({"name": "x@y#z", "capabilities": {"total_capacity_gb": "unknown"}})
    assert odd.unbounded == "unknown" and odd.total_capacity_gb is None
    with pytest.raises(ValueError):
        pool_from_api({"name": "x@y#z", "capabilities": {"total_capacity_gb": "lots"}})


def test_services_and_types() -> None:
    n = storage_node_from_api({"binary": "cinder-volume", "host": "s@lvm", "zone": "az2", "status": "disabled",
                               "state": "down", "disabled_reason": "disk"})
    assert n == ev.StorageNode("s@lvm", 0, "az2", True, "disk", False) and n.backend == "lvm"
    t = volume_type_from_api({"id": "t1", "name": "secret", "is_public": False,
                              "extra_specs": {"volume_backend_name": "lvm", "tier": "ssd"}})
    assert (t.backend_name, t.is_public, t.extra_specs) == ("lvm", False, {"volume_backend_name": "lvm", "tier": "ssd"})
    default = volume_type_from_api({"id": "t0", "name": "__DEFAULT__", "extra_specs": {},
                                    "os-volume-type-access:is_public": True})
    assert default.backend_name is None and default.is_public


class _NoCatalog:
    def endpoint_for(self, kind: str) -> None:
        return None


class _Base:
    conn = _NoCatalog()
    requests = None
    _endpoints: dict[str, str] = {}


def test_a_catalog_without_block_storage_is_named_not_guessed(tmp_path) -> None:
    reader = CinderReader(_Base())  # type: ignore[arg-type]
    assert reader.endpoint() is None
    with pytest.raises(CloudApiError, match="no block-storage"):
        reader.microversion()


def test_a_storage_snapshotter_reconciles_the_storage_kinds_only(tmp_path) -> None:
    from eventmodel.log import open_log

    log = open_log(f"sqlite:///{tmp_path}/e.db")
    try:
        snap = Snapshotter(CinderReader(_Base()), log, service="storage")  # type: ignore[arg-type]
        assert snap.scope == ev.STORAGE_KINDS
        result = snap.run_once()  # the catalog has no Cinder: the sync fails, nothing is deleted
        assert not result.ok and "no block-storage" in (result.error or "")
        with pytest.raises(ValueError, match="service"):
            Snapshotter(CinderReader(_Base()), log, service="network")  # type: ignore[arg-type]
    finally:
        log.close()


def test_results_of_several_services_merge_into_one_naming_the_failed_service() -> None:
    from eventmodel.sources.sync import SyncResult, merge_results

    compute = SyncResult("c", {"instance": 3}, 10, 20, requests={"compute": 4, "identity": 2}, wall_s=1.0, pages=1)
    storage = SyncResult("s", {"volume": 5, "pool": 2}, 21, 30, error="GET /types answered 500",
                         requests={"block-storage": 2}, wall_s=0.5, pages=2)
    merged = merge_results([compute, storage], ["compute", "storage"])
    assert merged.counts == {"instance": 3, "volume": 5, "pool": 2}
    assert merged.requests == {"compute": 4, "identity": 2, "block-storage": 2}
    assert (merged.started_at, merged.completed_at, merged.pages, merged.wall_s) == (10, 30, 3, 1.5)
    assert not merged.ok and merged.error == "storage: GET /types answered 500"
    assert merge_results([compute], ["compute"]) is compute
