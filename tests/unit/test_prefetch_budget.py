"""The backlog's order and ages, how much a worker prefetches for a given job
speed, and how its claims are sized and paced (worker.pacing, worker.async_pool)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from django_jobs.rows import ClaimedJob, Completion
from django_jobs.worker import async_pool
from django_jobs.worker.async_pool import LoopExecutor, SplitExecutor
from django_jobs.worker.backlog import Backlog, RuntimeMeter
from django_jobs.worker.executor import ThreadExecutor
from django_jobs.worker.pacing import GATHER_WINDOW, PREFETCH_WINDOW, ClaimPacing
from django_jobs.worker.worker import Worker, WorkerOptions

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def claimed(job_id: int, priority: int = 0, run_after: datetime = NOW) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        task_name="tests.testapp.tasks.noop",
        queue_name="default",
        priority=priority,
        args=[],
        kwargs={},
        attempts=1,
        max_attempts=3,
        timeout=60.0,
        claim_token=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        run_after=run_after,
        enqueued_at=run_after,
        started_at=NOW,
    )


def test_backlog_runs_the_most_urgent_first_whatever_the_claim_order():
    backlog = Backlog()
    for job in (claimed(5), claimed(3, run_after=NOW + timedelta(seconds=1)), claimed(9, 10)):
        backlog.push(job)
    backlog.push(claimed(4))  # a later claim: older run_after ties broken by id
    assert [backlog.pop().id for _ in range(len(backlog))] == [9, 4, 5, 3]


def test_backlog_hands_out_only_jobs_that_waited_long_enough():
    now = [100.0]
    backlog = Backlog(clock=lambda: now[0])
    backlog.push(claimed(1))
    now[0] += 5.0
    backlog.push(claimed(2))
    now[0] += 1.0  # job 1 waited 6 s, job 2 1 s
    assert backlog.take_waiting(7.0) == [], "nothing waited longer than 7 s"
    assert [job.id for job in backlog.take_waiting(4.0)] == [1]
    assert [job.id for job in backlog.jobs()] == [2]
    assert [job.id for job in backlog.take_waiting(0.0)] == [2]
    assert len(backlog) == 0


def test_backlog_keeps_the_jobs_that_have_a_free_slot_waiting_for_them():
    backlog = Backlog()
    for job_id in (1, 2, 3):
        backlog.push(claimed(job_id, priority=job_id))
    # One slot is free (a child process still starting): the most urgent job stays.
    assert [job.id for job in backlog.take_waiting(0.0, keep=1)] == [2, 1]
    assert [job.id for job in backlog.jobs()] == [3]


def test_runtime_meter_follows_recent_jobs():
    meter = RuntimeMeter()
    assert meter.mean is None
    meter.add(1.0)
    for _ in range(60):
        meter.add(0.001)
    assert meter.mean is not None and meter.mean < 0.01


@pytest.mark.parametrize(
    ("mean_runtime", "expected"),
    [
        (None, 0),  # nothing ran yet: claim free slots only
        (0.0001, 40),  # no-op jobs: the whole prefetch
        (0.01, 40),  # 10 slots x 50 ms / 10 ms = 50, capped at 40
        (0.1, 5),  # 10 x 0.05 / 0.1
        (2.0, 0),  # slow jobs: never hold one back behind them
    ],
)
def test_prefetch_is_about_fifty_milliseconds_of_work(mean_runtime, expected):
    executor = ThreadExecutor(10, lambda: None)
    if mean_runtime is not None:
        executor._runtime.add(mean_runtime)
    worker = Worker(WorkerOptions(concurrency=10, prefetch=40), executor=executor)
    assert PREFETCH_WINDOW == 0.05
    assert worker.pacing.prefetch_budget() == expected
    assert worker._claim_limit()[0] == 10 + expected  # every slot is free
    assert worker.batch_size == 50 + 100  # and the event loop's 100 slots (ASYNC_CONCURRENCY)


def test_no_prefetch_after_a_hand_back_until_a_slot_frees_up():
    executor = ThreadExecutor(1, lambda: None)  # not started: submitted jobs stay queued
    executor._runtime.add(0.0001)
    worker = Worker(WorkerOptions(concurrency=1, prefetch=40), executor=executor)
    worker.pacing.prefetch_paused = True
    executor.submit([claimed(1), claimed(2)])  # the slot is taken, one job waits
    assert worker.pacing.prefetch_budget() == 0
    assert [job.id for job in executor.take_unstarted()] == [2]  # the surplus only
    assert worker.pacing.prefetch_budget() == 0
    executor._backlog.pop()  # the slot frees up
    assert worker.pacing.prefetch_budget() == 40
    assert not worker.pacing.prefetch_paused


def test_lane_jobs_get_the_free_slots_and_half_the_prefetch():
    executor = ThreadExecutor(10, lambda: None)  # not started: submitted jobs stay queued
    executor._runtime.add(0.0001)  # no-op jobs: the whole prefetch of 40
    pacing = ClaimPacing(executor, concurrency=10, prefetch=40, batch_size=50)
    assert pacing.limits() == (50, 10 + 20)
    executor.submit([claimed(n) for n in range(1, 26)])  # 10 slots taken, 15 in the backlog
    assert pacing.limits() == (25, 5)  # held: 25 of 50, and 25 of the lanes' 30
    executor.submit([claimed(n) for n in range(26, 36)])
    assert pacing.limits() == (15, 0)  # past the lanes' share: none for them
    assert pacing.limits(room=3) == (3, 0)


def test_a_quick_batch_is_waited_for_and_a_slow_one_is_not():
    executor = ThreadExecutor(2, lambda: None)
    pacing = ClaimPacing(executor, concurrency=2, prefetch=0, batch_size=2)
    assert not pacing.gather_quick_batch()  # nothing ran yet: no mean to go by
    executor._runtime.add(0.0001)
    assert not pacing.gather_quick_batch()  # nothing in hand
    executor.submit([claimed(1), claimed(2)])  # never started: the wait is bounded
    started = time.monotonic()
    assert pacing.gather_quick_batch()
    assert time.monotonic() - started >= GATHER_WINDOW
    executor._runtime.add(5.0)  # slow jobs: no wait at all
    assert not pacing.gather_quick_batch()


class _CountingEngine:
    """Records which side each claim was for (True: coroutines, False: the pool)."""

    def __init__(self) -> None:
        self.sides: list[bool | None] = []

    def complete_and_claim(self, completions, worker_id, queues, limit, lease, **options):
        tasks = options.get("tasks")
        self.sides.append(None if tasks is None else tasks.include)
        return set(), []


def _split_worker(engine: _CountingEngine) -> SimpleNamespace:
    """What async_pool.complete_and_claim reads of a worker with one async task."""
    executor = SplitExecutor(ThreadExecutor(2, lambda: None), LoopExecutor(4, lambda: None, 0))
    executor.async_names = frozenset({"tests.some_coroutine"})
    return SimpleNamespace(
        engine=engine,
        executor=executor,
        id=uuid.uuid4(),
        lease_seconds=30.0,
        options=SimpleNamespace(queues=None),
    )


def test_a_dry_claim_for_the_event_loop_is_not_repeated_while_the_pool_drains():
    engine = _CountingEngine()
    worker = _split_worker(engine)
    executor = worker.executor
    async_pool.complete_and_claim(worker, [], 6, 6)  # idle: both sides, the loop's finds none
    assert engine.sides == [False, True]
    finished = [Completion(claimed(1), "null")]
    async_pool.complete_and_claim(worker, finished, 6, 6)  # draining: the pool's claim only
    assert engine.sides == [False, True, False]
    async_pool.complete_and_claim(worker, [], 6, 6)  # idle again (woken): both
    assert engine.sides == [False, True, False, False, True]
    executor.loop.dry_until = 0.0  # LOOP_DRY_PAUSE over
    async_pool.complete_and_claim(worker, finished, 6, 6)
    assert engine.sides[-2:] == [False, True]


class _SlowLoopClaimEngine(_CountingEngine):
    """The loop's claim reads a long backlog of sync jobs: it takes PROBE seconds."""

    PROBE = 0.02

    def complete_and_claim(self, completions, worker_id, queues, limit, lease, **options):
        tasks = options.get("tasks")
        if tasks is not None and tasks.include:
            time.sleep(self.PROBE)
        return super().complete_and_claim(completions, worker_id, queues, limit, lease, **options)


def test_a_costly_dry_claim_for_the_event_loop_pauses_in_proportion_to_its_cost():
    engine = _SlowLoopClaimEngine()
    worker = _split_worker(engine)
    executor = worker.executor
    before = time.monotonic()
    async_pool.complete_and_claim(worker, [], 6, 6)
    pause = executor.loop.dry_until - before
    # At least LOOP_DRY_COST_RATIO times the probe, far beyond LOOP_DRY_PAUSE.
    assert pause >= engine.PROBE * async_pool.LOOP_DRY_COST_RATIO > async_pool.LOOP_DRY_PAUSE
    finished = [Completion(claimed(1), "null")]
    async_pool.complete_and_claim(worker, finished, 6, 6)  # draining: the pool's claim only
    assert engine.sides == [False, True, False]
