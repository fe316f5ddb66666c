"""Graceful shutdown: SIGTERM finishes what it can and hands back the rest."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from django_jobs.models import Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, alive, children_of, ids, wait_for
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def started(job_ids: list[int]) -> bool:
    return Event.objects.filter(job_id__in=job_ids, name="long_event").count() == len(job_ids)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_sigterm_finishes_short_jobs_and_hands_back_long_ones(start_worker, pool):
    long = tasks.long_event.enqueue_many([(60,), (60,)])
    short = tasks.sleep_for.enqueue_many([(1.5,), (1.5,)])
    worker = start_worker("--pool", pool, "--concurrency", "4", "--shutdown-timeout", "3")
    wait_for(ids(long) + ids(short), JobStatus.RUNNING, 20, "4 jobs running")
    wait_until(lambda: started(ids(long)), 10, message="long jobs started")
    pool_children = children_of(worker.pid)
    threads = len(list(Path(f"/proc/{worker.pid}/task").iterdir()))
    if pool == "process":
        assert len(pool_children) == 4, f"one child per slot: {pool_children}"
    else:
        assert pool_children == [], "the thread pool runs jobs in the worker process"
        assert threads >= 1 + 4, f"main thread + 4 job threads, found {threads}"
    worker.signal(signal.SIGTERM)
    # Short jobs finish; the 60 s ones are left behind once the 3 s shutdown
    # timeout is up: the exit does not wait for them.
    assert worker.wait(30) == 0
    for job in Job.objects.filter(pk__in=ids(short)):
        assert (job.status, job.attempts, job.result) == (JobStatus.SUCCESSFUL, 1, 1.5)
    for job in Job.objects.filter(pk__in=ids(long)):
        assert job.status == JobStatus.READY
        assert job.attempts == 0, "a handed-back attempt is not counted"
        assert job.errors == []
        assert (job.worker_id, job.claim_token, job.started_at) == (None, None, None)
        assert job.result is None
        starts = Event.objects.filter(job_id=job.pk, name="long_event")
        assert list(starts.values_list("value", flat=True)) == [{"attempt": 1}], "ran again"
    assert not any(alive(pid) for pid in pool_children)
    assert "handed back 2 unfinished job(s)" in worker.output()
    assert not Worker.objects.filter(pid=worker.pid).exists(), "its row goes on a clean exit"


def test_second_signal_exits_at_once_and_jobs_are_recovered(start_worker):
    job = tasks.long_event.enqueue(60)
    first = start_worker("--pool", "process", "--concurrency", "1", env=FAST_LEASES)
    wait_until(lambda: started([job.pk]), 20, message="job started")
    child = children_of(first.pid)
    first.signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals at once would be delivered as one
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 1
    wait_until(lambda: not any(alive(pid) for pid in child), 10, message="child gone")
    # Nothing was handed back: the job is recovered from its expired lease instead.
    Job.objects.filter(pk=job.pk).update(max_attempts=5)
    second = start_worker("--concurrency", "1", env=FAST_LEASES)
    wait_until(lambda: Job.objects.get(pk=job.pk).attempts == 2, 20, message="recovered")
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.RUNNING
    assert stored.errors[0]["exception_class"] == "django_jobs.exceptions.WorkerLost"
    second.kill()
