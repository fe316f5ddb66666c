"""Prefetch: a worker claims a little ahead of its free slots, and never hoards.

Celery's users know the failure: a worker prefetches jobs, then sits on them
behind one long task while other workers idle. Here a prefetched job that
waits over a second for a slot is handed back, and a stopping worker hands
back what it has not started, both without counting an attempt.
"""

from __future__ import annotations

import signal

import pytest
from django.db import transaction

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import count, ids, wait_for, worker_id
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = 10


def _prefetching_worker(start_worker):
    """A one-slot worker that has seen quick jobs, so it prefetches the next claim."""
    warmup = tasks.record.enqueue_many([("warmup",)] * 30)
    worker = start_worker("--concurrency", "1", "--prefetch", "20")
    wait_for(ids(warmup), JobStatus.SUCCESSFUL, 30, "warm-up jobs done")
    return worker


def _blocker_then_quick_jobs() -> tuple[Job, list[int]]:
    """One slow job claimed first (higher priority), quick jobs behind it, one transaction."""
    with transaction.atomic():
        blocker = tasks.sleep_for.using(priority=10).enqueue(15)
        quick = ids(tasks.record.enqueue_many([("quick",)] * QUICK))
    return blocker, quick


def test_prefetched_jobs_stuck_behind_a_slow_one_are_handed_back(start_worker):
    hoarder = _prefetching_worker(start_worker)
    blocker, quick = _blocker_then_quick_jobs()
    hoarder_id = worker_id(hoarder)
    wait_for([blocker.pk], JobStatus.RUNNING, 20, "blocker running")
    # The quick jobs were claimed with it (prefetch) and wait behind it.
    prefetched = Job.objects.filter(pk__in=quick, worker_id=hoarder_id).count()
    assert prefetched > 0, "the worker did not prefetch: the test proves nothing"

    helper = start_worker("--concurrency", "2", "--prefetch", "0")
    wait_for(quick, JobStatus.SUCCESSFUL, 30, "quick jobs done elsewhere")
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING, (
        "the quick jobs only ran after the slow one: they were hoarded"
    )
    # The helper can only have run jobs the hoarder had claimed if they were handed back.
    helper_id = worker_id(helper)
    assert Job.objects.filter(pk__in=quick, worker_id=helper_id).count() >= prefetched
    for job in Job.objects.filter(pk__in=quick):
        assert (job.attempts, job.errors) == (1, []), "a hand-back is not an attempt"


def test_sigterm_hands_back_prefetched_jobs_at_once(start_worker):
    worker = _prefetching_worker(start_worker)
    blocker, quick = _blocker_then_quick_jobs()
    wait_for([blocker.pk], JobStatus.RUNNING, 20, "blocker running")
    assert count(quick, JobStatus.RUNNING) > 0, "nothing prefetched: the test proves nothing"
    worker.signal(signal.SIGTERM)
    # Handed back before the shutdown waits for the slow job, not after it.
    wait_until(
        lambda: count(quick, JobStatus.READY) == QUICK, 5, message="prefetched jobs handed back"
    )
    assert Job.objects.get(pk=blocker.pk).status == JobStatus.RUNNING
    for job in Job.objects.filter(pk__in=quick):
        assert (job.attempts, job.worker_id, job.started_at) == (0, None, None)
    worker.kill()
