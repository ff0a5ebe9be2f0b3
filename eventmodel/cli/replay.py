"""``eventmodel replay | history | export | diff | follow``: reading the log back."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from eventmodel.clock import format_time
from eventmodel.codec import Codec
from eventmodel.cli.common import (
    console,
    err,
    fail,
    log_option,
    open_or_fail,
    parse_position,
    parse_when,
    progress,
)
from eventmodel.log import EventLog, LogError, Record
from projections.checkpoint import Checkpointer
from projections.export import export_snapshot
from projections.model import ClusterModel
from projections.replay import diff, following, fullest_nodes, history, model_at


def _model(log: EventLog, to: str | None, at: str | None, checkpoint_dir: Path | None,
           quiet: bool = False) -> ClusterModel:
    if to is not None and at is not None:
        raise fail("give --to or --at, not both")
    pos, when = parse_position(to), parse_when(at)
    if pos is not None and len(pos.offsets) != log.partitions():
        raise fail(f"position {pos} names {len(pos.offsets)} partitions, {log.url} has {log.partitions()}")
    try:
        end = log.end()
        if pos is not None and not end.covers(pos):
            raise fail(f"position {pos} is past the end of {log.url} ({end})")
        ck = Checkpointer.for_log(checkpoint_dir, log) if checkpoint_dir else None
        with progress("replaying", None, enabled=not quiet) as advance:
            model = model_at(log, to=pos, at=when, checkpointer=ck, progress=advance,
                             on_start=lambda a, b: advance.set_total(b.total - a.total))
    except LogError as exc:
        raise fail(f"reading {log.url} failed: {exc}") from None
    if ck is not None and ck.skipped:
        for why in ck.skipped:
            err.print(f"[yellow]skipped checkpoint:[/] {why}")
    return model


def print_summary(model: ClusterModel, title: str = "model") -> None:
    t = Table(title=title, show_header=False)
    t.add_row("position", str(model.position))
    t.add_row("recorded at", format_time(model.recorded_at) if model.recorded_at else "-")
    t.add_row("records folded", f"{model.state.applied:,}")
    for kind, n in sorted(model.counts().items()):
        t.add_row(f"{kind}s", f"{n:,}")
    snap = model.last_snapshot
    if snap is not None:
        t.add_row("last full sync", f"{snap.snapshot_id} observed {snap.observed:,}, corrected {snap.corrected:,} "
                  f"(deleted {snap.deleted:,})")
    if model.stale:
        t.add_row("stale", model.stale)
    if model.state.duplicates:
        t.add_row("copies skipped", f"{model.state.duplicates:,} (records already folded: redelivered or re-read)")
    if model.state.rejected:
        t.add_row("records skipped", f"{model.state.rejected:,} (last: {model.state.last_rejected})")
    if len(model.state.open_snapshots):
        t.add_row("sync in progress", ", ".join(model.state.open_snapshots.keys()))
    console.print(t)


def _fullest_nodes(model: ClusterModel, n: int) -> Table:
    t = Table("node", "instances", "vcpus used/cap", "RAM MB used/cap", "disk GB used/cap", title="fullest nodes")
    for name, used, cap in fullest_nodes(model, n):
        t.add_row(name, str(model.node_instance_count(name)), f"{used.vcpus:g}/{cap.vcpus:g}",
                  f"{used.memory_mb:g}/{cap.memory_mb:g}", f"{used.disk_gb:g}/{cap.disk_gb:g}")
    return t


def _json_line(codec: Codec, rec: Record) -> str:
    """One record of an entity's history as a JSON envelope with its partition and offset."""
    import msgspec

    d = codec.to_dict(rec.envelope)
    d["partition"], d["offset"] = rec.partition, rec.offset
    return msgspec.json.encode(d).decode()


def _history_line(rec: Record) -> str:
    """One record of an entity's history: where, when, what, and the entity's main fields."""
    env = rec.envelope
    ent = getattr(env.payload, getattr(env.payload, "ENTITY", None) or "instance", None)
    fields = [f"{name}={getattr(ent, name)}" for name in
              ("host", "node", "vm_state", "power_state", "task_state", "disabled", "forced_down")
              if hasattr(ent, name)]
    if hasattr(ent, "flavor"):
        fields.append(f"flavor={ent.flavor.name}")
    if hasattr(ent, "version"):
        fields.append(f"version={format_time(ent.version)}")
    return (f"{rec.partition}:{rec.offset}  {format_time(env.recorded_at)}  {env.type:24} "
            f"{env.source}  {' '.join(fields)}")


def replay(
    log: str = log_option(),
    to: Optional[str] = typer.Option(None, "--to", help="Position: N, or P:N,P:N for several partitions."),
    at: Optional[str] = typer.Option(None, "--at", help="Time (ISO 8601): the model as recorded then."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the model as a snapshot file."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir",
                                                  help="Start from the newest valid checkpoint here."),
    nodes: int = typer.Option(0, "--nodes", help="Also list the N fullest compute nodes."),
    audit: Optional[str] = typer.Option(None, "--audit",
                                        help="The model audit ID read (see `eventmodel audits`); "
                                             "--export then writes the very file it saw."),
) -> None:
    """Rebuild the model at a past position or time (default: now) and summarise it."""
    lg = open_or_fail(log)
    if audit is not None:
        from eventmodel.cli.audits import replay_audit

        if to is not None or at is not None:
            raise fail("give --audit or --to/--at, not both")
        replay_audit(lg, audit, export, checkpoint_dir)
        return
    model = _model(lg, to, at, checkpoint_dir)
    print_summary(model, f"model of {lg.url}")
    if nodes:
        console.print(_fullest_nodes(model, nodes))
    if export is not None:
        export_snapshot(model, export)
        console.print(f"exported to {export}")


def export_cmd(
    log: str = log_option(),
    output: Path = typer.Option(..., "-o", "--output", help="Snapshot file to write."),
    to: Optional[str] = typer.Option(None, "--to", help="Position (default: the end)."),
    at: Optional[str] = typer.Option(None, "--at", help="Time (ISO 8601)."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir"),
    fmt: str = typer.Option("snapshot", "--format",
                            help="snapshot (versioned JSON) or watcher-xml (Watcher's ModelRoot XML)."),
) -> None:
    """Export the model as a versioned JSON snapshot for offline strategy tests."""
    from eventmodel.cli.watcher_xml import FORMATS, write_watcher_xml

    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    lg = open_or_fail(log)
    model = _model(lg, to, at, checkpoint_dir)
    if fmt == "watcher-xml":
        write_watcher_xml(model, output)
    else:
        export_snapshot(model, output)
    counts = ", ".join(f"{n:,} {k}s" for k, n in sorted(model.counts().items()))
    console.print(f"wrote {output}: {counts} at position {model.position}")


def history_cmd(
    key: str = typer.Argument(..., help="Entity key: instance uuid, node name, or host/binary."),
    log: str = log_option(),
    as_json: bool = typer.Option(False, "--json", help="One JSON envelope per line."),
) -> None:
    """Every event of one entity, in log order."""
    lg = open_or_fail(log)
    codec = Codec()
    found = 0
    try:
        records = list(history(lg, key))
    except LogError as exc:
        raise fail(f"reading {lg.url} failed: {exc}") from None
    for rec in records:
        found += 1
        console.out(_json_line(codec, rec) if as_json else _history_line(rec), highlight=False)
    if not found:
        raise fail(f"no events for key {key!r} in {lg.url}", code=1)


def diff_cmd(
    log: str = log_option(),
    from_: str = typer.Option(..., "--from", help="Earlier position (or time with --time)."),
    to: Optional[str] = typer.Option(None, "--to", help="Later position (default: the end)."),
    times: bool = typer.Option(False, "--time", help="--from/--to are times, not positions."),
    limit: int = typer.Option(50, "--limit"),
) -> None:
    """What changed in the model between two points of the log."""
    lg = open_or_fail(log)
    a = _model(lg, None if times else from_, from_ if times else None, None, quiet=True)
    b = _model(lg, None if times else to, to if times else None, None, quiet=True)
    changes = diff(a, b)
    console.print(f"{len(changes):,} changes from {a.describe()} to {b.describe()}")
    for c in changes[:limit]:
        extra = f" ({', '.join(c.fields)})" if c.fields else ""
        console.print(f"  {c.change:8} {c.kind:8} {c.key}{extra}")


def follow(
    log: str = log_option(),
    checkpoint_dir: Path = typer.Option(..., "--checkpoint-dir", envvar="EVENTMODEL_CHECKPOINT_DIR"),
    every: int = typer.Option(500_000, "--checkpoint-every", min=1, help="Records between checkpoints."),
    status: float = typer.Option(30.0, "--status-every", min=0.1, help="Seconds between status lines."),
) -> None:
    """Tail the log into a projection, writing checkpoints, until SIGTERM/SIGINT."""
    lg = open_or_fail(log)
    ck = Checkpointer.for_log(checkpoint_dir, lg)
    projection, follower = following(lg, ck, every)
    for why in ck.skipped:
        err.print(f"[yellow]skipped checkpoint:[/] {why}")
    follower.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(f"following {lg.url} from {projection.latest().describe()}")
    while not stop.wait(status):
        m = projection.latest()
        stale = f" STALE: {follower.stale}" if follower.stale else ""
        console.print(f"{time.strftime('%H:%M:%S')} {m.describe()} {m.counts()}{stale}")
    follower.stop()
    console.print(f"stopped at {projection.latest().describe()}; checkpoint written")


def register(app: typer.Typer) -> None:
    app.command()(replay)
    app.command("export")(export_cmd)
    app.command("history")(history_cmd)
    app.command("diff")(diff_cmd)
    app.command()(follow)
