"""Process pool (``runworker --pool process``): every job runs in a child process.

Children are forked from the worker after Django is set up (settings loaded,
apps and task modules imported), so one starts in about a millisecond and
shares the parent's memory copy-on-write. A child never uses the database
connections it inherited: closing them would end the parent's sessions too,
so it forgets them and opens its own.

A supervisor thread in the parent forks the children, hands each one job at
a time over a pipe (JSON, never pickle) and reads the outcomes back. The
worker keeps its full concurrency whatever happens in a child:

- past its job's timeout, the child is killed (SIGKILL) and replaced; the
  worker loop records the timeout failure;
- a child that dies while running a job (``os._exit``, a segfault, the OOM
  killer) turns into a failed attempt of that job, with the exit status as the
  error, and is replaced: a poison job ends in the dead letters after its
  attempts and never takes the worker down;
- a child retires after ``max_tasks_per_child`` jobs, or when its resident
  memory passes ``max_memory_mb`` after a job, and is replaced;
- a cancelled job's child gets SIGUSR1 (in the child, ``cancel_requested``
  turns True: the task may stop by raising JobCancelled) and is killed after
  CANCEL_GRACE seconds if its job has not ended; the job ends CANCELLED and
  the child is replaced.

Children ignore SIGTERM/SIGINT (the parent runs the graceful shutdown and
kills what it handed back) and exit on their own within half a second if the
parent dies.

Forking from a process that has threads is safe here because the child only
runs its own loop: it touches none of the parent's locks or connections,
logging's locks are re-initialised by Python at fork, and task modules were
imported before the first fork.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import Any

from django.db import connections

from django_jobs.conf import jobs_settings
from django_jobs.exceptions import WorkerCrashed
from django_jobs.observability import tracing
from django_jobs.rows import ClaimedJob
from django_jobs.worker.executor import PoolBookkeeping
from django_jobs.worker.process_child import (
    CHILD_BROKEN,
    child_main,
    decode_outcome,
    encode_job,
)
from django_jobs.worker.runner import crash_failure, pool_cancellation

logger = logging.getLogger("django_jobs.worker")

# Seconds a stopping child gets to exit before it is killed.
REAP_TIMEOUT = 5.0
# Seconds a new child gets to report ready before it is killed and replaced
# (a fork that hangs at start must not hold a slot forever; a spawned child
# imports Django first, which takes seconds on a busy machine).
START_TIMEOUT = 30.0


@dataclasses.dataclass(eq=False)
class _Child:
    pid: int
    conn: Connection
    started: float
    job: ClaimedJob | None = None
    deadline: float = math.inf
    cancel_deadline: float = math.inf  # its job was cancelled: killed at this time
    job_started: float = 0.0
    tasks: int = 0
    ready: bool = False  # said hello: it can take a job
    retiring: bool = False  # exiting on its own, or killed: a replacement is due


class ProcessExecutor(PoolBookkeeping):
    """Run each job in one of ``concurrency`` forked child processes."""

    # expire_overdue kills the child: the attempt's span is the worker's to record.
    kills_overdue = True

    def __init__(
        self,
        concurrency: int,
        on_finished: Callable[[], None],
        *,
        max_tasks_per_child: int | None = None,
        max_memory_mb: float | None = None,
    ) -> None:
        # Reentrant: abort() may run in a signal handler while the main thread holds it.
        super().__init__(concurrency, on_finished, threading.RLock())
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_bytes = int(max_memory_mb * 1024 * 1024) if max_memory_mb else None
        self._children: dict[int, _Child] = {}
        self._cancelled: set[int] = set()  # backlog jobs cancelled before they started
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = threading.Event()
        self._spawned: dict[int, subprocess.Popen[bytes]] = {}
        self._spawn_delay = 0.0  # grows while children die right after they start
        self._next_spawn = 0.0
        # SQLite keeps per-process lock state that a fork copies but cannot
        # use: a forked child can wait forever for a lock "held" by its parent.
        # With SQLite, children are fresh interpreters instead (slower start).
        sqlite = any(connections[alias].vendor == "sqlite" for alias in connections)
        self.start_method = "spawn" if sqlite else "fork"
        self._supervisor = threading.Thread(
            target=self._supervise, name="django_jobs-process-pool", daemon=True
        )
        # Python 3.12 warns on every fork of a threaded process; see the module
        # docstring for why this one is safe.
        warnings.filterwarnings(
            "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
        )

    # -- the worker loop's side --------------------------------------------

    def start(self) -> None:
        self._supervisor.start()

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        with self._lock:
            for job in jobs:
                self._backlog.push(job)
        self._poke()

    def _started_jobs(self) -> list[ClaimedJob]:
        return [child.job for child in self._children.values() if child.job is not None]

    def expire_overdue(self) -> list[ClaimedJob]:
        now = time.monotonic()
        expired: list[ClaimedJob] = []
        with self._lock:
            for child in self._children.values():
                if child.job is not None and child.deadline <= now:
                    expired.append(child.job)
                    child.job, child.retiring = None, True
                    _kill(child.pid)
        if expired:
            logger.warning(
                "%d job(s) passed their timeout; their child processes are killed and replaced",
                len(expired),
            )
            self._poke()
        return expired

    def cancel(self, job_ids: Collection[int]) -> None:
        grace = float(jobs_settings.CANCEL_GRACE)
        with self._lock:
            self._cancelled.update(j.id for j in self._backlog.jobs() if j.id in job_ids)
            for child in self._children.values():
                job = child.job
                if job is not None and job.id in job_ids and child.cancel_deadline == math.inf:
                    child.cancel_deadline = time.monotonic() + grace
                    # The child's handler sets cancel_requested for the job it runs
                    # (a child that just finished it ignores it: see process_child).
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGUSR1)
                    logger.info("job %s: cancel requested, told child %s", job.id, child.pid)
        self._poke()

    def _kill_cancelled(self) -> None:
        """Kill the children whose cancelled job outlived CANCEL_GRACE; the job ends CANCELLED."""
        now = time.monotonic()
        ended: list[ClaimedJob] = []
        with self._lock:
            for child in self._children.values():
                if child.job is not None and child.cancel_deadline <= now:
                    job, child.job, child.retiring = child.job, None, True
                    _kill(child.pid)
                    how = f"its child process {child.pid} was killed after CANCEL_GRACE"
                    self._outcomes.append((job, pool_cancellation(job, how)))
                    ended.append(job)
        for job in ended:
            logger.warning("job %s: cancelled, its child did not stop; killed", job.id)
            self._on_finished()

    def stop(self) -> None:
        self._stopping.set()
        self._poke()
        self._supervisor.join(REAP_TIMEOUT + 5)

    def abort(self) -> None:
        for pid in list(self._children):
            _kill(pid)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is already pending
            os.write(self._wake_w, b"!")

    # -- the supervisor thread ---------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._supervise_once()
                except Exception:
                    logger.exception("process pool supervisor error; carrying on")
                    time.sleep(1.0)
        finally:
            self._shutdown_children()

    def _supervise_once(self) -> None:
        self._fill()
        self._kill_unready()
        self._kill_cancelled()
        self._dispatch()
        with self._lock:
            by_conn: dict[Any, _Child] = {c.conn: c for c in self._children.values()}
        timeout = 0.5
        if self._next_spawn > time.monotonic():
            timeout = min(timeout, self._next_spawn - time.monotonic())
        for ready in wait([self._wake_r, *by_conn], timeout=max(timeout, 0.0)):
            if ready == self._wake_r:
                os.read(self._wake_r, 4096)
            else:
                self._receive(by_conn[ready])

    def _kill_unready(self) -> None:
        limit = time.monotonic() - START_TIMEOUT
        with self._lock:
            for child in self._children.values():
                if not child.ready and not child.retiring and child.started < limit:
                    logger.warning("child process %s did not start; replacing it", child.pid)
                    child.retiring = True
                    _kill(child.pid)

    def _fill(self) -> None:
        """Fork children until ``concurrency`` of them can take jobs."""
        with self._lock:
            missing = self.concurrency - sum(1 for c in self._children.values() if not c.retiring)
        for _ in range(missing):
            if time.monotonic() < self._next_spawn:
                return
            try:
                self._spawn()
            except OSError:
                self._back_off()
                logger.exception(
                    "could not fork a child process; retrying in %.1fs", self._spawn_delay
                )
                return

    def _dispatch(self) -> None:
        """Hand backlog jobs to idle children."""
        while True:
            with self._lock:
                idle = [
                    c
                    for c in self._children.values()
                    if c.ready and c.job is None and not c.retiring
                ]
                if not idle or not self._backlog:
                    return
                child, job = idle[0], self._backlog.pop()
                if job.id in self._cancelled:  # never sent to a child
                    self._cancelled.discard(job.id)
                    self._outcomes.append((job, pool_cancellation(job, "before it started")))
                    self._on_finished()
                    continue
                child.job, child.job_started = job, time.monotonic()
                child.deadline = child.job_started + job.timeout
                child.cancel_deadline = math.inf
            try:
                child.conn.send_bytes(encode_job(job))
            except OSError:
                # The child died before it got the job: not that job's fault.
                with self._lock:
                    child.job, child.retiring = None, True
                    self._backlog.push(job)

    def _spawn(self) -> None:
        parent_end, child_end = Pipe()
        if self.start_method == "spawn":
            pid = self._spawn_fresh(child_end)
        else:
            pid = self._fork(parent_end, child_end)
        child_end.close()
        with self._lock:
            self._children[pid] = _Child(pid, parent_end, time.monotonic())
        logger.debug("started child process %s (%s)", pid, self.start_method)

    def _spawn_fresh(self, child_end: Connection) -> int:
        """A new interpreter that sets Django up itself (SQLite: no fork)."""
        fd = child_end.fileno()
        command = [sys.executable, "-m", "django_jobs.worker.spawned_child", str(fd)]
        command += [str(os.getpid()), str(self.max_tasks_per_child or 0)]
        command += [str(self.max_memory_bytes or 0)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        child = subprocess.Popen(command, pass_fds=[fd], env=env)
        self._spawned[child.pid] = child  # reaped through it, not behind its back
        return child.pid

    def _fork(self, parent_end: Connection, child_end: Connection) -> int:
        with self._lock:
            inherited = [c.conn for c in self._children.values()]
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = CHILD_BROKEN
            try:
                for conn in (parent_end, *inherited):
                    conn.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                code = child_main(
                    child_end, parent_pid, self.max_tasks_per_child, self.max_memory_bytes
                )
            except BaseException:
                logger.exception("worker child process failed")
            finally:
                os._exit(code)
        return pid

    def _receive(self, child: _Child) -> None:
        try:
            message = json.loads(child.conn.recv_bytes())
        except (EOFError, OSError):
            self._reap(child)
            return
        except ValueError:
            logger.error("child process %s sent garbage; killing it", child.pid)
            _kill(child.pid)  # its job becomes a crash when the pipe closes
            return
        if message.get("ready"):
            child.ready = True
            return
        outcome = None
        with self._lock:
            job, child.job = child.job, None
            child.tasks += 1
            elapsed = time.monotonic() - child.job_started
            self._runtime.add(elapsed)
            child.retiring = child.retiring or bool(message.get("retire"))
            if job is not None:  # None: timed out meanwhile, its outcome is decided
                outcome = decode_outcome(job, message)
                self._outcomes.append((job, outcome))
        if job is not None and outcome is not None:
            # Observed here, in the parent, from the child's message: children hold no metrics.
            self._observe(job, outcome, elapsed)
        self._spawn_delay = 0.0
        if message.get("retire"):
            logger.info("child process %s retires after %d job(s)", child.pid, child.tasks)
        if job is not None:
            self._on_finished()

    def _reap(self, child: _Child) -> None:
        """A child's pipe closed: it exited or was killed. Wait for it, account for its job."""
        child.conn.close()
        code = self._wait(child.pid)
        with self._lock:
            job = child.job
            if job is None:
                self._children.pop(child.pid, None)
        if job is not None:
            crash = WorkerCrashed(f"{describe_exit(child.pid, code)} while running job {job.id}")
            outcome = crash_failure(job, crash)
            if tracing.AVAILABLE:
                tracing.record_unfinished(job, outcome)  # the child's own span died with it
            logger.log(
                logging.ERROR if outcome.retry_at is None else logging.WARNING,
                "job %s (%s) attempt %s/%s: %s%s",
                job.id,
                job.task_name,
                job.attempts,
                job.max_attempts,
                crash,
                "; dead-lettered" if outcome.retry_at is None else "; will retry",
                extra={"job_id": job.id, "task_name": job.task_name},
            )
            with self._lock:
                # Running until its outcome is in, in one step: --max-jobs always
                # counts it. None: it timed out meanwhile, its outcome is decided.
                self._children.pop(child.pid, None)
                job, child.job = child.job, None
                if job is not None:
                    self._outcomes.append((job, outcome))
            if job is not None:
                self._observe(job, outcome, time.monotonic() - child.job_started)
            self._on_finished()
        elif not child.retiring:
            if time.monotonic() - child.started < 1.0 and child.tasks == 0:
                self._back_off()  # dies at start: do not fork in a tight loop
            logger.warning("%s while idle; replacing it", describe_exit(child.pid, code))

    def _wait(self, pid: int) -> int:
        """Reap ``pid``; kill it if it has not exited within REAP_TIMEOUT. Its exit code."""
        spawned = self._spawned.pop(pid, None)
        deadline = time.monotonic() + REAP_TIMEOUT
        while True:
            if spawned is not None:
                code = spawned.poll()
                if code is not None:
                    return code
            else:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return 0
                if done:
                    return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                _kill(pid)
                deadline = math.inf
            time.sleep(0.01)

    def _back_off(self) -> None:
        self._spawn_delay = min(30.0, max(0.1, self._spawn_delay * 2))
        self._next_spawn = time.monotonic() + self._spawn_delay

    def _shutdown_children(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if child.job is None:
                child.conn.close()  # an idle child exits when its pipe closes
            else:
                _kill(child.pid)  # its job was handed back (or the worker is aborting)
        for child in children:
            self._wait(child.pid)
            if not child.conn.closed:
                child.conn.close()
        with self._lock:
            self._children.clear()
        wake_r, wake_w = self._wake_r, self._wake_w
        self._wake_r = self._wake_w = -1  # a late _poke() must not hit a reused fd
        os.close(wake_r)
        os.close(wake_w)


# -- helpers --------------------------------------------------------------------


def describe_exit(pid: int, code: int) -> str:
    """``worker child (pid 12) exited with code 1`` / ``... was killed by SIGSEGV``."""
    if code >= 0:
        return f"worker child (pid {pid}) exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = " (out of memory? the OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
    return f"worker child (pid {pid}) was killed by {name}{hint}"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
