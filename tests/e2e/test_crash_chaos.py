"""Chaos: workers SIGKILLed and restarted at random while they drain 5,000 jobs."""

from __future__ import annotations

import random
import sys
import time

import pytest

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.e2e.crash_support import FAST_LEASES, nothing_active
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.slow]

TOTAL = 5000
WORKERS = 3
MAX_KILLS = 15


def test_random_sigkills_every_job_succeeds_and_its_effect_exists_once(start_worker):
    tasks.chaos_record.enqueue_many([(n,) for n in range(TOTAL)])  # atomic=True
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    sys.stderr.write(f"chaos seed {seed}\n")
    start = lambda: start_worker("--concurrency", "6", env=FAST_LEASES)  # noqa: E731
    workers = [start() for _ in range(WORKERS)]
    kills, began = 0, time.monotonic()
    while not nothing_active():
        assert time.monotonic() - began < 180, f"not drained after {kills} kills"
        time.sleep(rng.uniform(0.5, 1.0))
        if nothing_active() or kills == MAX_KILLS:
            continue  # chaos over (each restart costs a second of CPU): let them drain
        victim = rng.randrange(WORKERS)
        workers[victim].kill()
        kills += 1
        workers[victim] = start()
    sys.stderr.write(f"chaos: {kills} SIGKILLs, drained in {time.monotonic() - began:.1f}s\n")
    assert kills >= 3, "the run was too short to be chaotic"
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
