"""Time travel: the model at any position or time, one entity's history, and the
difference between two models."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from eventmodel.log.base import EventLog, Position, Record
from projections.checkpoint import Checkpointer
from projections.model import ClusterModel, Resources
from projections.projection import Follower, Projection, catch_up
from projections.state import ClusterState


def start(log: EventLog, checkpointer: Checkpointer | None = None, *, until: Position | None = None,
          progress: Callable[[int], None] | None = None,
          on_start: Callable[[Position, Position], None] | None = None,
          checkpoint_every: int = 0) -> Projection:
    """A projection at ``until`` (default: the log's end now), starting from the newest
    valid checkpoint at or before it and replaying the tail. ``on_start(from, to)`` is
    told where the replay starts and ends; ``progress(n)`` after each batch. With
    ``checkpoint_every``, the replay writes a checkpoint every that many records
    (a first start on a long log leaves positional checkpoints behind)."""
    end = until or log.end()
    first = log.start()
    state = None
    if checkpointer is not None:
        # The nearest checkpoint at or before the requested point (positional
        # checkpoints: see Checkpointer.ladder), not only the newest.
        state = checkpointer.load(log.partitions(), log.end(), log_start=first,
                                  until=until)
        if state is not None and not end.covers(state.position):
            state = None  # the checkpoint is past the requested point
    lost = None
    if state is None:
        state = ClusterState.empty(log.partitions())
        if first.total:
            # Retention deleted the log's first records and no checkpoint covers them:
            # start where the log starts; the model is incomplete until a full sync.
            lost = (f"the log starts at {first}: {first.total:,} earlier record(s) were deleted and no "
                    "checkpoint covers them, so the model misses what only they said until a full sync "
                    "completes (run `eventmodel sync`)")
            state = attrs.evolve(state, position=first)
    projection = Projection(state)
    if lost is not None:
        projection.mark_stale(lost, until_sync=True)
    if on_start is not None:
        on_start(projection.latest().position, end)
    step = progress
    if checkpointer is not None and checkpoint_every > 0:
        since = 0

        def step(n: int) -> None:
            nonlocal since
            if progress is not None:
                progress(n)
            since += n
            if since >= checkpoint_every:
                checkpointer.write(projection.state)
                since = 0

    catch_up(projection, log, end, progress=step)
    return projection


def model_at(log: EventLog, *, to: Position | None = None, at: int | None = None,
             checkpointer: Checkpointer | None = None,
             progress: Callable[[int], None] | None = None,
             on_start: Callable[[Position, Position], None] | None = None) -> ClusterModel:
    """The model after the records before position ``to``, or recorded at or before time ``at`` (µs)."""
    if to is not None and at is not None:
        raise ValueError("give a position or a time, not both")
    if to is not None and len(to.offsets) != log.partitions():
        raise ValueError(f"position {to} has {len(to.offsets)} partitions, the log has {log.partitions()}")
    until = to if to is not None else (log.position_at(at) if at is not None else None)
    return start(log, checkpointer, until=until, progress=progress, on_start=on_start).latest()


def following(log: EventLog, checkpointer: Checkpointer, every: int) -> tuple[Projection, Follower]:
    """A projection started from the newest valid checkpoint (the log's tail replayed) and
    a follower, not started yet, that keeps it at the log's end and writes a checkpoint
    every ``every`` records (and on stop)."""
    projection = start(log, checkpointer)
    follower = Follower(log, projection, checkpointer=checkpointer, checkpoint_every=every)
    follower.checkpointed = checkpointer.loaded_position
    return projection, follower


def fullest_nodes(model: ClusterModel, n: int) -> list[tuple[str, Resources, Resources]]:
    """The ``n`` compute nodes whose vCPUs are the most used (a share of their capacity),
    fullest first: ``(node, used, capacity)``."""
    rows = []
    for name in model.compute_nodes():
        used, cap = model.node_used(name), model.node_capacity(name)
        rows.append((used.vcpus / cap.vcpus if cap.vcpus else 0, name, used, cap))
    return [(name, used, cap) for _, name, used, cap in sorted(rows, reverse=True)[:n]]


def history(log: EventLog, key: str) -> Iterator[Record]:
    """Every record of one entity, in log order."""
    read_key = getattr(log, "read_key", None)
    if read_key is not None:
        yield from read_key(key)
        return
    for batch in log.read():
        for rec in batch:
            if rec.envelope.key == key:
                yield rec


@attrs.frozen(slots=True)
class Change:
    kind: str
    key: str
    change: str  # added | removed | changed
    before: object | None
    after: object | None
    fields: tuple[str, ...] = ()  # changed fields (excluding version)


def diff(a: ClusterModel, b: ClusterModel) -> list[Change]:
    """What changed from ``a`` to ``b``, entity by entity."""
    out: list[Change] = []
    kinds = sorted(set(a.state.tables.keys()) | set(b.state.tables.keys()))
    for kind in kinds:
        ta, tb = a.table(kind), b.table(kind)
        for key, old in ta.items():
            new = tb.get(key)
            if new is None:
                out.append(Change(kind, key, "removed", old, None))
            elif new is not old and new != old:
                fields = tuple(
                    f.name for f in attrs.fields(type(new))
                    if f.name != "version" and getattr(old, f.name, None) != getattr(new, f.name)
                )
                out.append(Change(kind, key, "changed", old, new, fields))
        for key, new in tb.items():
            if key not in ta:
                out.append(Change(kind, key, "added", None, new))
    return out
