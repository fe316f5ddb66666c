"""Chaos: busy workers SIGKILLed and restarted as they drain 5,000 jobs."""

from __future__ import annotations

import random
import sys
import time

import pytest

from django_jobs.models import DeadLetter, Job
from django_jobs.models import Worker as WorkerRow
from django_jobs.status import JobStatus
from tests.conftest import WorkerProcess, wait_until
from tests.e2e.crash_support import FAST_LEASES, nothing_active
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]

TOTAL = 5000
WORKERS = 3
KILLS = 3  # one at each 10% of the drain, from 10% to 30%: the rest drains in peace


def holding_jobs(workers: list[WorkerProcess]) -> list[int]:
    """Indexes of the workers that hold RUNNING jobs right now."""
    owners = Job.objects.filter(status=JobStatus.RUNNING).values("worker_id")
    pids = set(WorkerRow.objects.filter(id__in=owners).values_list("pid", flat=True))
    return [i for i, worker in enumerate(workers) if worker.pid in pids]


def test_random_sigkills_every_job_succeeds_and_its_effect_exists_once(start_worker):
    tasks.chaos_record.enqueue_many([(n,) for n in range(TOTAL)])  # atomic=True
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    sys.stderr.write(f"chaos seed {seed}\n")
    start = lambda: start_worker("--concurrency", "6", env=FAST_LEASES)  # noqa: E731
    workers = [start() for _ in range(WORKERS)]
    began = time.monotonic()
    done = lambda: Job.objects.filter(status=JobStatus.SUCCESSFUL).count()  # noqa: E731
    # Kills follow progress, not the clock: a fast machine gets as many as a slow one,
    # and each one hits a worker that holds jobs at that moment.
    for kill in range(1, KILLS + 1):
        wait_until(lambda k=kill: done() >= k * TOTAL // 10, 120, message=f"{kill}0% done")
        victim = rng.choice(wait_until(lambda: holding_jobs(workers), 30, 0.01, "a busy worker"))
        workers[victim].kill()
        workers[victim] = start()
    wait_until(nothing_active, 180, 0.2, message="drained after the kills")
    sys.stderr.write(f"chaos: {KILLS} SIGKILLs, drained in {time.monotonic() - began:.1f}s\n")
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == TOTAL
    assert not DeadLetter.objects.exists()
    # Exactly once: Execution.job_id is unique, and one exists for every job.
    assert Execution.objects.count() == TOTAL
    assert set(Execution.objects.values_list("job_id", flat=True)) == set(
        Job.objects.values_list("pk", flat=True)
    )
    # Attempt counts are right: every attempt but the last was lost with its worker.
    recovered = 0
    executions = dict(Execution.objects.values_list("job_id", "attempt"))
    for job_id, attempts, errors in Job.objects.values_list("pk", "attempts", "errors"):
        assert attempts == len(errors) + 1, (job_id, attempts, errors)
        assert executions[job_id] == attempts
        assert all(e["exception_class"].endswith("WorkerLost") for e in errors)
        recovered += bool(errors)
    sys.stderr.write(f"chaos: {recovered} job(s) recovered from killed workers\n")
    assert recovered, "no kill ever hit a running job"
    assert all(worker.terminate() == 0 for worker in workers)
