"""``runworker --max-jobs N``: exit 0 after N outcomes, whatever they are.

Atomic tasks (their completion is written with their own writes) and failing
jobs used to go uncounted: a worker running only those never stopped.
"""

from __future__ import annotations

import pytest

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.e2e.crash_support import ids
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def attempts_made() -> int:
    return sum(Job.objects.values_list("attempts", flat=True))


@pytest.mark.parametrize(
    ("enqueue", "status"),
    [
        (lambda: tasks.record_atomic.enqueue_many([("a",)] * 8), JobStatus.SUCCESSFUL),
        (lambda: [tasks.fails_for_good.enqueue() for _ in range(8)], JobStatus.FAILED),
        (lambda: tasks.add.enqueue_many([(1, 2)] * 8), JobStatus.SUCCESSFUL),
    ],
    ids=["atomic", "failing", "successful"],
)
def test_every_kind_of_outcome_counts(start_worker, enqueue, status):
    job_ids = ids(enqueue())
    worker = start_worker("--max-jobs", "3", "--concurrency", "2")
    assert worker.wait(60) == 0, worker.output()[-3000:]
    assert Job.objects.filter(pk__in=job_ids, status=status).count() == 3
    assert Job.objects.filter(pk__in=job_ids, status=JobStatus.READY).count() == 5
    assert attempts_made() == 3
    assert "--max-jobs 3 reached: ran 3 job(s)" in worker.output()


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_max_jobs_counts_atomic_failing_and_successful_jobs(start_worker, pool):
    tasks.record_atomic.enqueue_many([("a",)] * 2)
    tasks.always_fails.enqueue()  # retried (max_attempts=2)
    tasks.fails_for_good.enqueue()  # dead-lettered at once
    tasks.add.enqueue_many([(1, 2)] * 2)
    tasks.noop.using(priority=-10).enqueue_many([()] * 4)  # claimed last
    worker = start_worker("--max-jobs", "6", "--pool", pool, "--concurrency", "2")
    assert worker.wait(90) == 0, worker.output()[-3000:]
    assert attempts_made() == 6
    assert Execution.objects.count() == 2
    assert "--max-jobs 6 reached: ran 6 job(s)" in worker.output()
