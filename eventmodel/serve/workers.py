"""Past-point work in worker processes, off the serving process's GIL.

A past-point model (``/api/export?at=``, ``/api/diff``) is a replay of up to the whole
log, and its export a document of tens of megabytes: seconds of Python. On a thread of
the serving process that time is taken, a few milliseconds at a go, from the event
loop that answers ``/healthz`` and the node list. :class:`ReplayWorkers` runs it in a
small pool of processes instead (``spawn``, ``Limits.replays`` of them), each at a
lower priority (``os.nice``) so that on a machine of two cores the kernel gives the
serving process the CPU first. A worker opens the log itself by URL (a SQLite file or
Kafka: both are readable from another process) and the checkpoint directory, builds
the model at the position (keeping the last two it built), and produces the answer's
bytes there: an export is written to a temporary file that the serving process streams
(:class:`Spool`; the file's name is removed as soon as it is opened), a page of a diff
comes back as bytes (at most ``limit`` changes).

What the serving process keeps (see :class:`~eventmodel.serve.limits.ReplayGate`): at
most ``replays`` jobs at once and ``queue`` waiting, one job per key shared by every
request for it, and a flag per job (a shared array, one byte per slot) that the worker
reads between two batches of records: set when every client that waited has left, it
ends the replay (:class:`~eventmodel.serve.limits.Cancelled`). A worker that dies
(killed, out of memory) fails the jobs under way with :class:`WorkerDied` (503 with the
reason) and the next job starts a new pool. Errors the worker names keep their status:
a position the log cannot answer for is :class:`BadRequest` (400), a log that cannot be
read :class:`LogError` (503).

A log that another process cannot open by its URL (an in-memory log, a wrapper in a
test) has no workers: :meth:`ReplayWorkers.for_log` answers None and past points are
built on a thread as before.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from eventmodel.errors import ServeError
from eventmodel.log.base import LogError, Position

#: bytes per chunk of a spooled export sent to the client
SPOOL_CHUNK = 1 << 20
#: how much lower a worker's scheduling priority is than the serving process's
WORKER_NICE = 19


class WorkerDied(ServeError, RuntimeError):
    """A worker process ended while it built a model (killed, out of memory). 503."""

    retry_after = 5


class Spool:
    """An export written by a worker: an open, already unlinked file read with ``pread``
    (so that any number of answers stream it at once, each at its own offset); the file
    is closed when the last answer that holds it is done."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        os.unlink(path)  # the data stays readable through fd; nothing is left behind
        self.size = os.fstat(self.fd).st_size

    def chunks(self, size: int = SPOOL_CHUNK) -> Iterator[bytes]:
        at = 0
        while at < self.size:
            data = os.pread(self.fd, min(size, self.size - at), at)
            if not data:
                return
            at += len(data)
            yield data

    def __del__(self) -> None:
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            os.close(fd)


#: a spool directory's name: this prefix, the serving process's pid, a dash, random letters
SPOOL_PREFIX = "eventmodel-serve-"


def remove_orphan_spools(root: str | None = None) -> list[str]:
    """Remove the spool directories of serving processes that no longer run (one killed
    with -9 cannot remove its own); answers the paths removed."""
    root = root or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(SPOOL_PREFIX):
            continue
        pid_text = name[len(SPOOL_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        path = os.path.join(root, name)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class ReplayWorkers:
    """A pool of worker processes that build past-point models and encode answers from
    them (see the module doc). Methods block: call them on a thread."""

    def __init__(self, log_url: str, checkpoint_dir: Path | None = None, ladder: int = 0, *,
                 processes: int = 2, spools_kept: int = 4, models_kept: int = 2) -> None:
        self.log_url = log_url
        self.checkpoint_dir = checkpoint_dir
        self.ladder = ladder
        self.processes = processes
        self.models_kept = models_kept
        self._ctx = mp.get_context("spawn")
        self._flags = self._ctx.Array("b", processes, lock=False)  # 1: cancel the job in that slot
        self._free = list(range(processes))
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        remove_orphan_spools()
        self._dir = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
        self._spools: collections.OrderedDict[Position, Spool] = collections.OrderedDict()
        self._spools_kept = spools_kept
        self.submitted = 0  # jobs handed to the pool (tests wait on it)
        self.cancelled = 0  # jobs a worker ended because their flag was set
        self.restarts = 0  # pools replaced after a worker died

    @classmethod
    def for_log(cls, log: Any, checkpoint_dir: Path | None = None, ladder: int = 0,
                processes: int = 2) -> ReplayWorkers | None:
        """Workers for ``log`` if another process can open it by its URL (a SQLite file,
        Kafka), else None."""
        from eventmodel.log.sqlite import SqliteEventLog

        url = str(getattr(log, "url", ""))
        if type(log) is SqliteEventLog:
            path = getattr(log, "path", "")
            if not path or str(path) == ":memory:" or not os.path.exists(path):
                return None
            # a URL of a relative path means the same file only from the same directory
            url = f"sqlite:///{os.path.abspath(path)}"
            if "?" in str(log.url):
                url += "?" + str(log.url).split("?", 1)[1]
        elif type(log).__name__ != "KafkaEventLog" or not url.startswith("kafka://"):
            return None
        return cls(url, checkpoint_dir, ladder, processes=processes)

    # -- jobs --------------------------------------------------------------------
    def export(self, pos: Position, cancel: threading.Event) -> Spool:
        """The export document of the model at ``pos``, spooled (the last few are kept)."""
        with self._lock:
            spool = self._spools.get(pos)
            if spool is not None:
                self._spools.move_to_end(pos)
                return spool
        path = self._run(_export_job, (str(pos), self._dir), cancel)
        spool = Spool(path)
        with self._lock:
            self._spools[pos] = spool
            while len(self._spools) > self._spools_kept:
                self._spools.popitem(last=False)
        return spool

    def diff(self, a: Position, b: Position, skip: int, limit: int, cancel: threading.Event) -> bytes:
        """One page of ``/api/diff`` between the models at ``a`` and ``b``, encoded."""
        return self._run(_diff_job, (str(a), str(b), skip, limit), cancel)

    def _run(self, job: Callable[..., Any], args: tuple[Any, ...], cancel: threading.Event) -> Any:
        from eventmodel.serve.limits import Busy, Cancelled
        from eventmodel.serve.service import BadRequest

        with self._lock:
            if not self._free:
                raise Busy(f"all {self.processes} replay workers are busy: try again shortly")
            slot = self._free.pop()
        try:
            self._flags[slot] = 0
            future = self._submit(job, (*args, slot))
            while True:
                try:
                    outcome, value = future.result(timeout=0.05)
                    break
                except TimeoutError:
                    if cancel.is_set():
                        self._flags[slot] = 1  # the worker ends between two batches
                except BrokenProcessPool:
                    self._broken()
                    raise WorkerDied("a replay worker process ended while building the model (killed or out "
                                     "of memory): try again") from None
        finally:
            with self._lock:
                self._free.append(slot)
        if outcome == "ok":
            return value
        if outcome == "cancelled":
            self.cancelled += 1
            raise Cancelled(value)
        if outcome == "bad":
            raise BadRequest(value)
        if outcome == "log":
            raise LogError(value)
        raise RuntimeError(value)

    def _submit(self, job: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        for attempt in (1, 2):
            pool = self._current()
            try:
                future = pool.submit(job, *args)
                self.submitted += 1
                return future
            except BrokenProcessPool:  # a worker died while idle: a new pool, once
                self._replace(pool)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes, mp_context=self._ctx, initializer=_init,
                    initargs=(self._flags, self.log_url, str(self.checkpoint_dir or ""), self.ladder,
                              self.models_kept))
            return self._pool

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self.restarts += 1
        pool.shutdown(wait=False, cancel_futures=True)

    def _broken(self) -> None:
        """A worker died: the current pool is done for; the next job starts a new one."""
        with self._lock:
            pool = self._pool
        if pool is not None:
            self._replace(pool)

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and operators)."""
        with self._lock:
            pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return list(procs)

    def close(self) -> None:
        """Stop the workers and remove the spool directory."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._spools.clear()
        for i in range(self.processes):
            self._flags[i] = 1
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._dir, ignore_errors=True)


# -- in the worker process -------------------------------------------------------------
class _Worker:
    """What one worker process holds: the log, its checkpointer, the last models built."""

    def __init__(self, flags: Any, log_url: str, checkpoint_dir: str, ladder: int, models_kept: int) -> None:
        self.flags = flags
        self.log_url, self.checkpoint_dir, self.ladder = log_url, checkpoint_dir, ladder
        self.log: Any = None
        self.checkpointer: Any = None
        self.models: collections.OrderedDict[Position, Any] = collections.OrderedDict()
        self.models_kept = models_kept

    def open(self) -> None:
        """Open the log and the checkpoints on the first job (not in the pool's
        initializer: an error there would break the pool; here it is the job's answer,
        and the next job tries again)."""
        if self.log is None:
            from eventmodel.log import open_log
            from projections.checkpoint import Checkpointer

            log = open_log(self.log_url, create=False)
            self.checkpointer = (Checkpointer.for_log(self.checkpoint_dir, log, ladder=self.ladder)
                                 if self.checkpoint_dir else None)
            self.log = log

    def model(self, pos: Position, slot: int) -> Any:
        from eventmodel.serve.service import replay_model

        cached = self.models.get(pos)
        if cached is not None:
            self.models.move_to_end(pos)
            return cached
        self.open()
        model = replay_model(self.log, pos, self.checkpointer, lambda: bool(self.flags[slot]))
        self.models[pos] = model
        while len(self.models) > self.models_kept:
            self.models.popitem(last=False)
        return model


#: the worker process's own state, set by the pool's initializer (one per process)
_worker: _Worker | None = None


def _init(flags: Any, log_url: str, checkpoint_dir: str, ladder: int, models_kept: int) -> None:
    global _worker
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _worker = _Worker(flags, log_url, checkpoint_dir, ladder, models_kept)


def _guarded(work: Callable[[], Any]) -> tuple[str, Any]:
    """(outcome, value): what the serving process turns back into an answer or an error."""
    from eventmodel.serve.limits import Cancelled
    from eventmodel.serve.service import BadRequest

    try:
        return "ok", work()
    except Cancelled as exc:
        return "cancelled", str(exc)
    except BadRequest as exc:
        return "bad", str(exc)
    except LogError as exc:
        return "log", str(exc)
    except Exception as exc:  # noqa: BLE001 - the serving process answers 503 with the reason
        return "error", f"{type(exc).__name__}: {exc}"


def _export_job(pos: str, directory: str, slot: int) -> tuple[str, Any]:
    def work() -> str:
        from eventmodel.serve.api import export_chunks
        from projections.export import to_document

        assert _worker is not None
        model = _worker.model(Position.parse(pos), slot)
        fd, path = tempfile.mkstemp(prefix="export-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in export_chunks(to_document(model)):
                    f.write(chunk)
        except BaseException:
            os.unlink(path)
            raise
        return path

    return _guarded(work)


def _diff_job(a: str, b: str, skip: int, limit: int, slot: int) -> tuple[str, Any]:
    def work() -> bytes:
        from eventmodel.serve.api import _diff_page

        assert _worker is not None
        before = _worker.model(Position.parse(a), slot)
        after = _worker.model(Position.parse(b), slot)
        return _diff_page(before, after, skip, limit)

    return _guarded(work)
