"""``eventmodel audits``: the decision-engine reads recorded on a log, and
``replay --audit``'s work: the model one of them saw, exported byte for byte."""

from __future__ import annotations

from pathlib import Path

import typer

from eventmodel.cli.common import console, err, fail, log_option, open_or_fail, progress
from eventmodel.cli.replay import print_summary
from eventmodel.clock import format_time
from eventmodel.log import EventLog, LogError
from projections import audits as au
from projections.checkpoint import Checkpointer


def replay_audit(log: EventLog, audit_id: str, export: Path | None, checkpoint_dir: Path | None) -> None:
    """Rebuild the model ``audit_id`` read; with ``export``, write it stamped with the
    audit's read time (the same bytes every time) and check it against the audit's digest."""
    try:
        audit = au.find_audit(log, audit_id)
    except au.AuditNotFound as exc:
        raise fail(str(exc), code=1) from None
    except LogError as exc:
        raise fail(f"reading {log.url} failed: {exc}") from None
    try:
        ck = Checkpointer.for_log(checkpoint_dir, log) if checkpoint_dir else None
        with progress("replaying", None) as advance:
            model = au.audit_model(log, audit, ck, progress=advance,
                                   on_start=lambda a, b: advance.set_total(b.total - a.total))
    except LogError as exc:
        raise fail(f"reading {log.url} up to {audit.position} (what audit {audit_id} read) failed: {exc}") from None
    if ck is not None:
        for why in ck.skipped:
            err.print(f"[yellow]skipped checkpoint:[/] {why}")
    print_summary(model, f"model audit {audit_id} read ({log.url})")
    if export is None:
        return
    au.export_audit(model, audit, export)
    console.print(f"exported to {export}")
    ok = au.verify(audit, export)
    if ok is None:
        console.print("no digest recorded with this audit (or one of another export format): not verified")
    elif ok:
        console.print(f"matches the digest recorded at audit time ({audit.read.digest[:16]}…)")
    else:
        raise fail(f"{export} does not match the digest recorded at audit time ({audit.read.digest})", code=1)


def register(app: typer.Typer) -> None:
    @app.command("audits")
    def audits_cmd(
        log: str = log_option(),
        audit: str | None = typer.Option(None, "--id", help="Only this audit."),
    ) -> None:
        """The audits recorded on a log: id, time, the position each read."""
        lg = open_or_fail(log)
        try:
            found = au.list_audits(lg)
        except LogError as exc:
            raise fail(f"reading {lg.url} failed: {exc}") from None
        if audit is not None:
            found = [a for a in found if a.audit_id == audit]
        if not found:
            raise fail(f"no audits recorded on {lg.url}" + (f" with id {audit!r}" if audit else ""), code=1)
        console.out(f"{len(found)} audit(s) on {lg.url}  (id, read at, position read, reader, digest, record)",
                    highlight=False)
        for a in found:
            r = a.read
            console.out(f"{r.audit_id}  {format_time(r.read_at)}  {a.position}  {r.reader}  "
                        f"{('sha256:' + r.digest[:16]) if r.digest else '-'}  {a.record}", highlight=False)
