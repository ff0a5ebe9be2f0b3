"""projections: the read side of eventmodel — the fold, the model a decision engine
reads in O(1), checkpoints, replay, snapshot export. Depends on :mod:`eventmodel`, never
the reverse. The public surface is ``__all__``; the Watcher integration is
:mod:`projections.watcher` (needs the ``watcher`` extra)."""

from __future__ import annotations

from projections.audits import AuditNotFound
from projections.checkpoint import CheckpointError, Checkpointer, read_checkpoint, write_checkpoint
from projections.engine import Health, ModelEngine
from projections.export import SnapshotFileError, export_snapshot, load_snapshot
from projections.fold import fold
from projections.model import ClusterModel, UnknownEntity
from projections.projection import Follower, Projection, catch_up
from projections.replay import model_at
from projections.state import ClusterState, SnapshotResult

__all__ = [
    "ModelEngine", "Health", "ClusterModel", "ClusterState", "SnapshotResult", "Projection", "Follower",
    "catch_up", "fold", "model_at", "Checkpointer", "read_checkpoint", "write_checkpoint", "export_snapshot",
    "load_snapshot", "UnknownEntity", "AuditNotFound", "CheckpointError", "SnapshotFileError",
]
