"""Reproducible audits: what each decision-engine read saw, kept on the log itself.

An audit's read is recorded as an ``audit.read`` record (:class:`~eventmodel.events.AuditRead`)
appended to the same log the model comes from, under one key
(:data:`~eventmodel.events.AUDIT_KEY`). Whoever reads that log — days later, on
another machine — lists the audits and rebuilds the model at the position an audit
read; the export of that model, stamped with the audit's read time, is the same file
byte for byte. The fold ignores these records, so they never change a model.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from pathlib import Path

import attrs

from eventmodel.errors import ModelError
from eventmodel.clock import now_us
from eventmodel.events import AUDIT_KEY, AuditRead, envelope
from eventmodel.log.base import EventLog, Position
from projections.checkpoint import Checkpointer
from projections.export import FORMAT as EXPORT_FORMAT
from projections.export import VERSION as EXPORT_VERSION
from projections.export import export_snapshot, snapshot_bytes
from projections.model import ClusterModel
from projections.replay import history, model_at

#: the export a digest is taken of (a digest of another format cannot be checked)
DIGEST_FORMAT = f"{EXPORT_FORMAT}/{EXPORT_VERSION}"


class AuditNotFound(ModelError, LookupError):
    """No ``audit.read`` record with that id on the log."""

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen(slots=True)
class Audit:
    """One recorded read, and where on the log its record is."""

    read: AuditRead
    record: str  # "partition:offset" of the audit.read record itself

    @property
    def audit_id(self) -> str:
        return self.read.audit_id

    @property
    def position(self) -> Position:
        return Position(tuple(self.read.position))


def default_reader() -> str:
    return f"eventmodel@{socket.gethostname()}"


def audit_record(audit_id: str, model: ClusterModel, *, reader: str = "", read_at: int | None = None,
                 digest: str = "") -> AuditRead:
    """The ``audit.read`` payload for ``model`` read by ``audit_id``."""
    if not audit_id:
        raise ValueError("an audit needs a non-empty id")
    return AuditRead(
        audit_id=audit_id, position=tuple(model.position.offsets), model_recorded_at=model.recorded_at,
        read_at=now_us() if read_at is None else read_at, reader=reader or default_reader(),
        digest=digest, digest_format=DIGEST_FORMAT if digest else "",
    )


def export_digest(model: ClusterModel, exported_at: int) -> str:
    """SHA-256 of the snapshot export of ``model`` stamped ``exported_at``."""
    return hashlib.sha256(snapshot_bytes(model, exported_at=exported_at)).hexdigest()


def record_audit(log: EventLog, audit_id: str, model: ClusterModel, *, reader: str = "",
                 digest: bool = False) -> AuditRead:
    """Append the record of ``audit_id`` having read ``model``; durable when it returns.

    Recording the same id for the same position again appends a copy with the same
    event id (harmless). With ``digest``, the SHA-256 of the model's export is kept too
    (costs one export), so that a replay can prove it rebuilt the same bytes."""
    read_at = now_us()
    dg = export_digest(model, read_at) if digest else ""
    read = audit_record(audit_id, model, reader=reader, read_at=read_at, digest=dg)
    log.append([envelope(read, source="audit", message_id=f"{audit_id}@{model.position}",
                         occurred_at=read_at, recorded_at=read_at, key=AUDIT_KEY)])
    return read


def list_audits(log: EventLog) -> list[Audit]:
    """Every audit recorded on the log, in log order (copies of one record once)."""
    out: list[Audit] = []
    seen: set[str] = set()
    for rec in history(log, AUDIT_KEY):
        env = rec.envelope
        if not isinstance(env.payload, AuditRead) or env.event_id in seen:
            continue
        seen.add(env.event_id)
        out.append(Audit(env.payload, f"{rec.partition}:{rec.offset}"))
    return out


def find_audit(log: EventLog, audit_id: str) -> Audit:
    """The first record of ``audit_id``; AuditNotFound if there is none."""
    for audit in list_audits(log):
        if audit.audit_id == audit_id:
            return audit
    raise AuditNotFound(f"no audit {audit_id!r} recorded on {log.url}")


def audit_model(log: EventLog, audit: Audit, checkpointer: Checkpointer | None = None,
                progress: Callable[[int], None] | None = None,
                on_start: Callable[[Position, Position], None] | None = None) -> ClusterModel:
    """The model the audit read: the log replayed to its position (from the nearest
    checkpoint at or before it, if ``checkpointer`` has one)."""
    return model_at(log, to=audit.position, checkpointer=checkpointer, progress=progress, on_start=on_start)


def export_audit(model: ClusterModel, audit: Audit, path: str | Path) -> Path:
    """Export ``model`` as the audit saw it: stamped with the audit's read time, so
    the same audit always gives the same bytes."""
    return export_snapshot(model, path, exported_at=audit.read.read_at)


def verify(audit: Audit, path: str | Path) -> bool | None:
    """True/False when the exported file matches/differs from the digest recorded at
    audit time; None when the audit has no digest or one of another export format."""
    if not audit.read.digest or audit.read.digest_format != DIGEST_FORMAT:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() == audit.read.digest
