"""``async def`` tasks on one event loop per worker (``runworker --async-concurrency``).

:class:`LoopExecutor` runs up to ``async_concurrency`` coroutines at once as
asyncio tasks on an event loop in a dedicated thread of the worker process.
:class:`SplitExecutor` puts it beside the worker's thread or process pool:
jobs of ``async def`` tasks go to the loop, every other job to the pool. The
worker loop sees one executor; outcomes from both are written by the worker
loop as always (fenced by the claim token), never from the loop thread.

The claim counts the two capacities apart (:func:`complete_and_claim`): jobs
of the async tasks are claimed for the loop's free slots, the others for the
pool's free slots (and prefetch), each claim narrowed to its tasks
(:class:`~django_jobs.rows.TaskFilter`), so a full loop never holds up sync
jobs behind async ones, nor the reverse. Jobs with a flow lane are claimed
whatever their task (the lanes' claim is not narrowed) and go to the side
that runs them.

With ``--pool process`` the loop runs in the worker process beside the
children: coroutines wait on I/O, and one loop runs hundreds of them; the
children run the sync jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from django_jobs.conf import jobs_settings
from django_jobs.context import note_cancel_requested
from django_jobs.exceptions import UnknownTaskError, WorkerStartError
from django_jobs.rows import ClaimedJob, Completion, TaskFilter
from django_jobs.tasks import registry, resolve_task
from django_jobs.worker.async_runner import run_async_job
from django_jobs.worker.executor import Executor, Finished, Observer, PoolBookkeeping
from django_jobs.worker.runner import Outcome, pool_cancellation

if TYPE_CHECKING:
    from django_jobs.engine.base import Engine

logger = logging.getLogger("django_jobs.worker")

# asyncio.timeout ends a coroutine at its timeout. One still tracked this many
# seconds later (it blocked the loop, or swallowed the cancel) is given up on
# by expire_overdue: the worker records the timeout failure itself.
OVERDUE_MARGIN = 1.0
# Like the pool's prefetch (worker.pacing.PREFETCH_WINDOW): the loop's claim takes
# about this many seconds of work beyond its free slots while coroutines are
# quick, so a finished coroutine's slot is refilled at once, not after a round
# trip; at most the worker's prefetch (--prefetch), nothing when they are slow.
PREFETCH_WINDOW = 0.05
# While the pool is busy (the worker has outcomes to write), a claim for the
# loop that found fewer coroutines than it asked for is not repeated for this
# many seconds: a drain of sync jobs in a project that also has async tasks
# would otherwise pay a second statement per cycle for nothing. An idle
# worker's claims (woken by an enqueue) always ask for both.
LOOP_DRY_PAUSE = 0.05
# ... nor for LOOP_DRY_COST_RATIO times as long as that claim took, if longer.
# A claim of async tasks reads the due jobs in claim order until it finds
# one of them, so behind a backlog of sync jobs it reads the whole backlog
# (measured: 26 ms a claim behind 35,000 jobs; at 50 ms intervals that was
# half the database's CPU and a 1-worker drain ran at 1,400 jobs/s). The
# pause keeps those reads under 1/20 of the time; async jobs enqueued during
# such a drain wait that long at most (about 0.5 s behind 35,000 jobs).
LOOP_DRY_COST_RATIO = 20.0
# Seconds to wait for the loop thread to start, and to end at stop.
LOOP_THREAD_TIMEOUT = 10.0


def is_async_task(name: str) -> bool:
    """Whether the task registered at ``name`` is an ``async def`` (unknown: False)."""
    try:
        return inspect.iscoroutinefunction(resolve_task(name).func)
    except UnknownTaskError:
        return False  # the sync side dead-letters it


def async_task_names() -> tuple[str, ...]:
    """The registered ``async def`` tasks: what the loop's claim takes."""
    return tuple(sorted(n for n, t in registry.items() if inspect.iscoroutinefunction(t.func)))


class _Running:
    __slots__ = ("cancel_deadline", "deadline", "job", "task")

    def __init__(self, job: ClaimedJob, deadline: float) -> None:
        self.job = job
        self.deadline = deadline
        self.task: asyncio.Task[None] | None = None
        self.cancel_deadline: float | None = None  # set when the task was cancelled


class LoopExecutor(PoolBookkeeping):
    """Run ``async def`` jobs as asyncio tasks on one event loop in its own thread."""

    kills_overdue = False  # a coroutine is cancelled, and may run on a bit

    def __init__(self, concurrency: int, on_finished: Callable[[], None], prefetch: int) -> None:
        super().__init__(concurrency, on_finished, threading.Lock())
        self.prefetch = prefetch
        self._prefetch_paused = False  # after a hand-back, until a slot frees up
        self.dry_until = 0.0  # time.monotonic() of LOOP_DRY_PAUSE's end
        self._loop: asyncio.AbstractEventLoop | None = None  # made by start()
        self._thread: threading.Thread | None = None
        self._in_flight: dict[int, _Running] = {}
        self._stopping = False

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._loop.call_soon(ready.set)
        self._loop.call_soon(self._fill)  # jobs submitted before the start
        self._thread = threading.Thread(
            target=self._run_loop, name="django_jobs-event-loop", daemon=True
        )
        try:
            self._thread.start()
        except RuntimeError as exc:
            raise WorkerStartError(f"could not start the event loop thread: {exc}") from exc
        if not ready.wait(LOOP_THREAD_TIMEOUT):
            raise WorkerStartError("the event loop thread did not start")

    def _run_loop(self) -> None:
        loop = self._loop
        if loop is None:  # start() makes it before starting this thread
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:  # let them run their finally blocks
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _started_jobs(self) -> list[ClaimedJob]:
        return [entry.job for entry in self._in_flight.values()]

    def claimable(self) -> int:
        """Jobs to claim for the loop now: its free slots plus its prefetch."""
        free = self.free_slots()
        if self._prefetch_paused and free <= 0:
            return 0  # the slow coroutines that made it hand back still hold every slot
        self._prefetch_paused = False
        mean = self.mean_runtime()
        if not self.prefetch or mean is None:
            return max(free, 0)
        ahead = min(self.prefetch, int(self.concurrency * PREFETCH_WINDOW / max(mean, 1e-6)))
        return max(free + ahead, 0)

    def take_unstarted(
        self, waited_longer_than: float = 0.0, *, keep_free: bool = True
    ) -> list[ClaimedJob]:
        taken = super().take_unstarted(waited_longer_than, keep_free=keep_free)
        if taken:
            self._prefetch_paused = True  # not claimed straight back
        return taken

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        with self._lock:
            for job in jobs:
                self._backlog.push(job)
        self._call(self._fill)

    def _call(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop (from any thread); nothing once it is closed."""
        if self._loop is None:
            return  # not started: start() fills from the backlog
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is stopping
            self._loop.call_soon_threadsafe(callback)

    def _fill(self) -> None:
        """Start backlog jobs while slots are free (on the loop thread)."""
        with self._lock:
            while self._backlog and len(self._in_flight) < self.concurrency and not self._stopping:
                job = self._backlog.pop()
                entry = _Running(job, time.monotonic() + job.timeout + OVERDUE_MARGIN)
                self._in_flight[job.id] = entry
                entry.task = asyncio.get_running_loop().create_task(self._run(entry))

    async def _run(self, entry: _Running) -> None:
        job = entry.job
        started = time.monotonic()
        outcome: Outcome | None = None
        try:
            outcome = await run_async_job(job)
        except asyncio.CancelledError:
            pass  # the worker is stopping: the job was handed back
        except BaseException:  # run_async_job decides every outcome; a bug must not kill the loop
            logger.exception("job %s: the event loop's runner failed", job.id)
        elapsed = time.monotonic() - started
        with self._lock:
            self._runtime.add(elapsed)
            if self._in_flight.get(job.id) is not entry:
                logger.info("job %s finished after its timeout; result dropped", job.id)
                outcome = None
            else:
                del self._in_flight[job.id]
                if outcome is not None:
                    self._outcomes.append((job, outcome))
        if outcome is not None:
            self._observe(job, outcome, elapsed)
            self._on_finished()
        self._fill()

    def cancel(self, job_ids: Collection[int]) -> None:
        grace = float(jobs_settings.CANCEL_GRACE)
        with self._lock:
            for job in self._backlog.jobs():
                if job.id in job_ids:
                    note_cancel_requested(job.id)  # ends before it starts
            for job_id, entry in self._in_flight.items():
                if job_id in job_ids and entry.cancel_deadline is None and entry.task:
                    # Noted first: the runner tells the job's cancel from a stop by it.
                    note_cancel_requested(job_id)
                    entry.cancel_deadline = time.monotonic() + grace
                    self._call(entry.task.cancel)
                    logger.info("job %s: cancel requested; cancelling its coroutine", job_id)

    def expire_overdue(self) -> list[ClaimedJob]:
        now = time.monotonic()
        expired: list[ClaimedJob] = []
        stuck: list[ClaimedJob] = []
        with self._lock:
            for job_id, entry in list(self._in_flight.items()):
                gave_up = entry.cancel_deadline is not None and entry.cancel_deadline <= now
                if entry.deadline <= now or gave_up:
                    del self._in_flight[job_id]
                    if entry.task is not None:
                        self._call(entry.task.cancel)
                    (stuck if entry.cancel_deadline is not None else expired).append(entry.job)
            for job in stuck:
                how = "its coroutine did not stop (blocking the event loop?)"
                self._outcomes.append((job, pool_cancellation(job, how)))
        if expired or stuck:
            logger.warning(
                "%d coroutine(s) outlived their timeout or cancel; given up on",
                len(expired) + len(stuck),
            )
            self._call(self._fill)
        if stuck:
            self._on_finished()
        return expired

    def stop(self) -> None:
        """Cancel what still runs (the worker handed those jobs back) and end the loop."""
        with self._lock:
            self._stopping = True
        if self._loop is not None:
            self._call(self._loop.stop)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(LOOP_THREAD_TIMEOUT)

    def abort(self) -> None:
        pass  # the loop thread dies with the process


class SplitExecutor:
    """The worker's executor with a loop beside its pool: ``async def`` jobs to
    ``loop``, the others to ``pool`` (threads or children)."""

    def __init__(self, pool: Executor, loop: LoopExecutor) -> None:
        self.pool = pool
        self.loop = loop
        self.concurrency = pool.concurrency
        self.kills_overdue = bool(getattr(pool, "kills_overdue", False))
        self.async_names = async_task_names()
        self._kinds: dict[str, bool] = {}

    @property
    def observer(self) -> Observer | None:
        return self.pool.observer

    @observer.setter
    def observer(self, value: Observer | None) -> None:
        self.pool.observer = value
        self.loop.observer = value

    def _is_async(self, name: str) -> bool:
        if name not in self._kinds:
            self._kinds[name] = is_async_task(name)
        return self._kinds[name]

    def start(self) -> None:
        self.loop.start()
        self.pool.start()

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        coroutines = [job for job in jobs if self._is_async(job.task_name)]
        others = [job for job in jobs if not self._is_async(job.task_name)]
        if coroutines:
            self.loop.submit(coroutines)
        if others:
            self.pool.submit(others)

    def free_slots(self) -> int:
        """The pool's (what prefetch and hand-backs reason about); see :func:`free_slots`."""
        return self.pool.free_slots()

    def running_jobs(self) -> list[ClaimedJob]:
        return [*self.pool.running_jobs(), *self.loop.running_jobs()]

    def held_jobs(self) -> list[ClaimedJob]:
        return [*self.pool.held_jobs(), *self.loop.held_jobs()]

    def take_outcomes(self) -> list[Finished]:
        return [*self.pool.take_outcomes(), *self.loop.take_outcomes()]

    def take_unstarted(
        self, waited_longer_than: float = 0.0, *, keep_free: bool = True
    ) -> list[ClaimedJob]:
        return [
            *self.pool.take_unstarted(waited_longer_than, keep_free=keep_free),
            *self.loop.take_unstarted(waited_longer_than, keep_free=keep_free),
        ]

    def mean_runtime(self) -> float | None:
        return self.pool.mean_runtime()  # prefetch is for the pool: the loop has its slots

    def expire_overdue(self) -> list[ClaimedJob]:
        return [*self.pool.expire_overdue(), *self.loop.expire_overdue()]

    def cancel(self, job_ids: Collection[int]) -> None:
        self.pool.cancel(job_ids)
        self.loop.cancel(job_ids)

    def stop(self) -> None:
        self.pool.stop()
        self.loop.stop()

    def abort(self) -> None:
        self.pool.abort()
        self.loop.abort()


def free_slots(executor: Executor) -> int:
    """Free slots to claim for: the pool's, plus the loop's (never negative) beside it."""
    if isinstance(executor, SplitExecutor):
        return executor.free_slots() + executor.loop.claimable()
    return executor.free_slots()


def with_loop(
    pool: Executor, async_concurrency: int, on_finished: Callable[[], None], prefetch: int
) -> Executor:
    """``pool`` with an event loop of ``async_concurrency`` slots beside it."""
    return SplitExecutor(pool, LoopExecutor(async_concurrency, on_finished, prefetch))


class _Options(Protocol):
    queues: Sequence[str] | None


class Claimer(Protocol):
    """What :func:`complete_and_claim` reads of the worker."""

    engine: Engine
    executor: Executor
    id: uuid.UUID
    lease_seconds: float

    @property
    def options(self) -> _Options: ...


def complete_and_claim(
    worker: Claimer, completions: Sequence[Completion], limit: int, lane_limit: int
) -> tuple[set[int], list[ClaimedJob]]:
    """The worker's ``engine.complete_and_claim``, split between the pool and the loop.

    The pool's free slots are served first out of ``limit``, the loop takes
    what is left up to its own free slots, the pool the rest (its prefetch).
    Each claim takes only its side's tasks, and ``lane_limit`` at most of
    jobs in lanes with a concurrency limit. Without async tasks: one claim.
    """
    engine, executor, worker_id = worker.engine, worker.executor, worker.id
    queues, lease_seconds = worker.options.queues, worker.lease_seconds
    if not isinstance(executor, SplitExecutor) or not executor.async_names:
        return engine.complete_and_claim(
            completions, worker_id, queues, limit, lease_seconds, lane_limit=lane_limit
        )
    names = executor.async_names
    pool_free = max(executor.pool.free_slots(), 0)
    for_loop = min(executor.loop.claimable(), max(limit - pool_free, 0))
    done, jobs = engine.complete_and_claim(
        completions,
        worker_id,
        queues,
        limit - for_loop,
        lease_seconds,
        tasks=TaskFilter(names, include=False),
        lane_limit=lane_limit,
    )
    if completions and time.monotonic() < executor.loop.dry_until:
        for_loop = 0  # LOOP_DRY_PAUSE
    if for_loop > 0:
        started = time.monotonic()
        _, coroutines = engine.complete_and_claim(
            [],
            worker_id,
            queues,
            for_loop,
            lease_seconds,
            tasks=TaskFilter(names, include=True),
            lane_limit=max(lane_limit - len(jobs), 0),
        )
        jobs = [*jobs, *coroutines]
        if len(coroutines) < for_loop:
            now = time.monotonic()
            pause = max(LOOP_DRY_PAUSE, (now - started) * LOOP_DRY_COST_RATIO)
            executor.loop.dry_until = now + pause
    return done, jobs
