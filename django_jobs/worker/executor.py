"""Executor pools: where claimed jobs actually run.

The worker loop talks to an executor through a few calls (:class:`Executor`):
``submit``, ``free_slots``, ``take_outcomes``, ``take_unstarted`` and
``expire_overdue`` and ``cancel``. The thread pool
(this module, the default) runs jobs in threads of this process; a thread
stuck past its job's timeout is abandoned and replaced, so the worker keeps
its full concurrency. Python cannot kill a thread: the abandoned one gets a
JobTimeout raised asynchronously (:func:`~django_jobs.worker.runner.interrupt`),
which stops pure-Python code at its next bytecode but not a blocking C call.
A cancelled job gets JobCancelled the same way; one still running
CANCEL_GRACE seconds later (stuck in a C call) is recorded CANCELLED and its
thread abandoned and replaced. The process pool
(:mod:`django_jobs.worker.process_pool`) kills instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from django.db import connections

from django_jobs.conf import jobs_settings
from django_jobs.context import note_cancel_requested
from django_jobs.exceptions import JobCancelled, JobTimeout, WorkerStartError
from django_jobs.rows import ClaimedJob
from django_jobs.worker.backlog import Backlog, RuntimeMeter
from django_jobs.worker.runner import Outcome, cancellation, interrupt, pool_cancellation, run_job

logger = logging.getLogger("django_jobs.worker")

Finished = tuple[ClaimedJob, Outcome]
# Told of every attempt's end with its run time in seconds (runworker --metrics-port).
Observer = Callable[[ClaimedJob, Outcome, float], None]


class Executor(Protocol):
    """What the worker loop needs from a pool.

    A pool holds claimed jobs in two places: running, and a backlog of jobs
    claimed ahead (prefetch) that start as soon as a slot frees up.
    """

    concurrency: int
    observer: Observer | None  # None: no metrics, nothing to call

    def start(self) -> None: ...

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        """Queue claimed jobs; each starts when a slot is free, most urgent first."""
        ...

    def free_slots(self) -> int:
        """Slots minus running and backlog jobs (negative while jobs wait in the backlog)."""
        ...

    def running_jobs(self) -> list[ClaimedJob]:
        """Unfinished jobs: running or waiting in the backlog."""
        ...

    def held_jobs(self) -> list[ClaimedJob]:
        """Unfinished jobs plus finished ones whose outcome was not taken yet (leases to renew)."""
        ...

    def take_outcomes(self) -> list[Finished]:
        """Outcomes of jobs finished since the last call (non-blocking)."""
        ...

    def take_unstarted(
        self, waited_longer_than: float = 0.0, *, keep_free: bool = True
    ) -> list[ClaimedJob]:
        """Remove and return backlog jobs that have waited longer than this (seconds)
        and have no free slot to start in: the surplus claimed ahead (prefetch).
        With ``keep_free=False``, every backlog job (final shutdown)."""
        ...

    def mean_runtime(self) -> float | None:
        """Recent mean run time of a job in seconds; None before the first one finished."""
        ...

    def expire_overdue(self) -> list[ClaimedJob]:
        """Jobs past their timeout: stop tracking them (kill if possible) and return them."""
        ...

    def cancel(self, job_ids: Collection[int]) -> None:
        """Stop these jobs, whose cancel an operator requested (ids not held here
        are ignored; asking twice changes nothing). Each ends with a Cancellation
        outcome, unless it finishes first, or a killed / abandoned one after
        CANCEL_GRACE seconds."""
        ...

    def stop(self) -> None: ...

    def abort(self) -> None:
        """Exit now (second signal): kill whatever can be killed, wait for nothing."""
        ...


class PoolBookkeeping:
    """What both pools track the same way: the backlog, the outcomes not taken
    yet, recent run times, and the slot arithmetic built on them.

    A pool says which of its jobs have started (:meth:`_started_jobs`, called
    with ``_lock`` held) and pushes to ``_backlog`` / ``_outcomes`` under it.
    """

    def __init__(
        self,
        concurrency: int,
        on_finished: Callable[[], None],
        lock: threading.Lock | threading.RLock,
    ) -> None:
        self.concurrency = concurrency
        self._on_finished = on_finished
        self._lock = lock
        self._backlog = Backlog()
        self._outcomes: list[Finished] = []
        self._runtime = RuntimeMeter()
        self.observer: Observer | None = None

    def _observe(self, job: ClaimedJob, outcome: Outcome, seconds: float) -> None:
        """Tell the observer (metrics), in this process, where outcomes are recorded."""
        if self.observer is not None:
            self.observer(job, outcome, seconds)

    def _started_jobs(self) -> list[ClaimedJob]:
        raise NotImplementedError

    def free_slots(self) -> int:
        with self._lock:
            return self.concurrency - len(self._started_jobs()) - len(self._backlog)

    def running_jobs(self) -> list[ClaimedJob]:
        with self._lock:
            return [*self._started_jobs(), *self._backlog.jobs()]

    def held_jobs(self) -> list[ClaimedJob]:
        with self._lock:
            finished = [job for job, _ in self._outcomes]
            return [*self._started_jobs(), *self._backlog.jobs(), *finished]

    def take_outcomes(self) -> list[Finished]:
        with self._lock:
            taken, self._outcomes = self._outcomes, []
        return taken

    def take_unstarted(
        self, waited_longer_than: float = 0.0, *, keep_free: bool = True
    ) -> list[ClaimedJob]:
        with self._lock:
            keep = self.concurrency - len(self._started_jobs()) if keep_free else 0
            return self._backlog.take_waiting(waited_longer_than, keep=keep)

    def mean_runtime(self) -> float | None:
        return self._runtime.mean


class _Slot:
    __slots__ = ("cancel_deadline", "deadline", "job", "thread")

    def __init__(self, job: ClaimedJob, thread: threading.Thread, deadline: float) -> None:
        self.job = job
        self.thread = thread
        self.deadline = deadline
        self.cancel_deadline: float | None = None  # set when JobCancelled was raised


class ThreadExecutor(PoolBookkeeping):
    """Run jobs in ``concurrency`` threads of this process.

    The threads take jobs straight from the backlog, so a prefetched job
    starts the moment a thread is free, even while the worker loop is
    waiting on the database.
    """

    def __init__(self, concurrency: int, on_finished: Callable[[], None]) -> None:
        super().__init__(concurrency, on_finished, threading.Lock())
        self._job_waiting = threading.Condition(self._lock)
        self._in_flight: dict[int, _Slot] = {}
        self._threads: set[threading.Thread] = set()
        self._stopping = False
        self._serial = 0

    def start(self) -> None:
        for _ in range(self.concurrency):
            self._spawn()

    def _spawn(self) -> None:
        self._serial += 1
        thread = threading.Thread(
            target=self._loop, name=f"django_jobs-runner-{self._serial}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            with self._lock:
                self._threads.discard(thread)
            raise WorkerStartError(
                f"could not start runner thread {self._serial} of {self.concurrency}: {exc}; "
                "lower --concurrency"
            ) from exc

    def _next_job(self, me: threading.Thread) -> ClaimedJob | None:
        """Block until a job is in the backlog; None when this thread should end."""
        with self._job_waiting:
            while not self._backlog:
                if self._stopping or me not in self._threads:
                    return None
                self._job_waiting.wait()
            if me not in self._threads:  # abandoned: leave the job to a live thread
                self._job_waiting.notify()
                return None
            job = self._backlog.pop()
            self._in_flight[job.id] = _Slot(job, me, time.monotonic() + job.timeout)
            return job

    def _loop(self) -> None:
        me = threading.current_thread()
        try:
            while (job := self._next_job(me)) is not None:
                started = time.monotonic()
                try:
                    outcome = run_job(job)
                except JobCancelled as exc:  # landed in our code around the body: still cancelled
                    outcome = cancellation(job, exc)
                elapsed = time.monotonic() - started
                with self._lock:
                    self._runtime.add(elapsed)
                    slot = self._in_flight.get(job.id)
                    if slot is None or slot.thread is not me:
                        # Timed out meanwhile: its outcome was already decided.
                        logger.info("job %s finished after its timeout; result dropped", job.id)
                        return
                    del self._in_flight[job.id]
                    self._outcomes.append((job, outcome))
                self._observe(job, outcome, elapsed)
                self._on_finished()
        except JobTimeout:
            pass  # interrupted after its timeout, outside the task body: just end
        finally:
            connections.close_all()

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        with self._job_waiting:
            for job in jobs:
                self._backlog.push(job)
            self._job_waiting.notify(len(jobs))

    def _started_jobs(self) -> list[ClaimedJob]:
        return [slot.job for slot in self._in_flight.values()]

    def cancel(self, job_ids: Collection[int]) -> None:
        grace = float(jobs_settings.CANCEL_GRACE)
        with self._lock:
            for job in self._backlog.jobs():
                if job.id in job_ids:
                    note_cancel_requested(job.id)  # run_job ends it before it starts
            for job_id, slot in self._in_flight.items():
                if job_id in job_ids and slot.cancel_deadline is None:
                    # Noted first: a thread entering the body right now sees the
                    # note (task_body checks it), or is in the body and is aimed at.
                    note_cancel_requested(job_id)
                    slot.cancel_deadline = time.monotonic() + grace
                    interrupt(slot.thread.ident, JobCancelled)
                    logger.info("job %s: cancel requested; stopping it", job_id)

    def expire_overdue(self) -> list[ClaimedJob]:
        now = time.monotonic()
        expired: list[ClaimedJob] = []
        replacements = 0
        stuck: list[ClaimedJob] = []
        with self._lock:
            for job_id, slot in list(self._in_flight.items()):
                gave_up = slot.cancel_deadline is not None and slot.cancel_deadline <= now
                if slot.deadline <= now or gave_up:
                    del self._in_flight[job_id]
                    self._threads.discard(slot.thread)
                    replacements += 1
                    if slot.cancel_deadline is not None:
                        stuck.append(slot.job)  # did not stop within CANCEL_GRACE
                        continue
                    expired.append(slot.job)
                    interrupt(slot.thread.ident, JobTimeout)
            for job in stuck:
                how = "its thread (blocked in a C call?) was abandoned and replaced"
                self._outcomes.append((job, pool_cancellation(job, how)))
        for _ in range(replacements):
            self._spawn()
        if stuck:
            self._on_finished()
        if expired:
            logger.warning(
                "%d job(s) passed their timeout; their threads are abandoned and replaced",
                len(expired),
            )
        return expired

    def stop(self) -> None:
        """Let the threads end once the backlog is empty."""
        with self._job_waiting:
            self._stopping = True
            self._job_waiting.notify_all()

    def abort(self) -> None:
        pass  # threads die with the process
