"""``async def`` tasks on the worker's event loop, with real runworker processes:
concurrency beyond the threads, timeouts, cancels, current_job(), the async
ORM, the process pool, and a graceful stop."""

from __future__ import annotations

import signal
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings

from django_jobs import task
from django_jobs.exceptions import InvalidTaskError
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, LEASE, ids, wait_for, worker_id
from tests.testapp import async_tasks, tasks
from tests.testapp.models import Event

FAST = {"DJANGO_JOBS_TEST_HEARTBEAT": "0.3", "DJANGO_JOBS_TEST_CANCEL_GRACE": "1.5"}
e2e = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])


@e2e
def test_200_sleeping_coroutines_run_together_on_two_threads(run_burst):
    jobs = async_tasks.sleeps_counting.enqueue_many([(0.2,)] * 200)
    sync = [tasks.add.enqueue(i, i) for i in range(10)]  # the threads run these meanwhile
    began = time.monotonic()
    run_burst("--concurrency", "2", "--async-concurrency", "100")
    took = time.monotonic() - began
    job_ids = ids(jobs)
    assert Job.objects.filter(pk__in=job_ids, status=JobStatus.SUCCESSFUL).count() == 200
    assert Job.objects.filter(pk__in=ids(sync), status=JobStatus.SUCCESSFUL).count() == 10
    most = max(Job.objects.filter(pk__in=job_ids).values_list("result", flat=True))
    # One at a time per thread would take 200 * 0.2 / 2 = 20 s and see 2 at once.
    assert most > 2, f"at most {most} coroutines ran at once"
    assert most <= 100, "--async-concurrency caps the coroutines at once"
    assert took < 10, f"the drain took {took:.1f}s (worker start included)"


@e2e
def test_a_coroutine_past_its_timeout_is_cancelled_and_fails(run_burst):
    job = async_tasks.sleeps_past_timeout.enqueue(30)
    began = time.monotonic()
    run_burst("--concurrency", "1")
    assert time.monotonic() - began < 15
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    (error,) = job.errors
    assert error["exception_class"] == "django_jobs.exceptions.JobTimeout"
    assert "longer than its timeout of 0.5s" in error["message"]


@e2e
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_cancel_cancels_the_coroutine_and_the_job_ends_cancelled(start_worker, pool):
    job = async_tasks.waits_until_cancelled.enqueue(60)
    start_worker("--pool", pool, "--concurrency", "1", env=FAST)
    wait_until(lambda: Event.objects.filter(job_id=job.pk, name="started").exists(), 30)
    out = StringIO()
    call_command("jobs", "cancel", str(job.pk), stdout=out)
    assert "cancel requested" in out.getvalue()
    wait_for([job.pk], JobStatus.CANCELLED, 10, "the coroutine, cancelled")
    job.refresh_from_db()
    assert job.attempts == 1
    assert [e["exception_class"] for e in job.errors] == ["django_jobs.exceptions.JobCancelled"]
    stopping = Event.objects.get(job_id=job.pk, name="stopping")
    assert stopping.value == {"cancel_requested": True}, "the body's finally ran, told why"
    # The loop's slot is free again, and sync jobs still run.
    later = [async_tasks.reports_itself.enqueue(0), tasks.add.enqueue(1, 2)]
    wait_for(ids(later), JobStatus.SUCCESSFUL, 20, "jobs after the cancel")


@e2e
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_current_job_and_the_async_orm_inside_concurrent_coroutines(run_burst, pool):
    jobs = async_tasks.reports_itself.enqueue_many([(0.1,)] * 30)
    run_burst("--pool", pool, "--concurrency", "1", "--async-concurrency", "30")
    for job in Job.objects.filter(pk__in=ids(jobs)):
        assert job.status == JobStatus.SUCCESSFUL, job.errors
        assert job.result == {"before": job.pk, "after": job.pk, "attempt": 1}
        assert Event.objects.get(job_id=job.pk, name="async orm").value == {"before": 0}


@e2e
def test_sigterm_waits_for_running_coroutines_then_hands_back_the_rest(start_worker):
    short = async_tasks.sleeps_counting.enqueue_many([(0.5,)] * 5)
    long = async_tasks.waits_until_cancelled.enqueue(60)
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "2")
    wait_until(lambda: Event.objects.filter(job_id=long.pk, name="started").exists(), 30)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    wait_for(ids(short), JobStatus.SUCCESSFUL, 1, "the short coroutines, finished")
    long.refresh_from_db()
    assert long.status == JobStatus.READY, "handed back at the shutdown timeout"
    assert "handed back 1 unfinished job(s)" in worker.output()


@e2e
def test_coroutines_prefetched_behind_slow_ones_are_handed_back(start_worker):
    warmup = async_tasks.sleeps_counting.enqueue_many([(0,)] * 30)  # quick: it prefetches
    hoarder = start_worker("--async-concurrency", "2", "--prefetch", "20")
    wait_for(ids(warmup), JobStatus.SUCCESSFUL, 30, "warm-up coroutines done")
    with transaction.atomic():
        slow = [async_tasks.waits_until_cancelled.using(priority=10).enqueue(15) for _ in "ab"]
        quick = ids(async_tasks.sleeps_counting.enqueue_many([(0,)] * 10))
    wait_for(ids(slow), JobStatus.RUNNING, 20, "the slow coroutines running")
    prefetched = Job.objects.filter(pk__in=quick, worker_id=worker_id(hoarder)).count()
    assert prefetched > 0, "the loop did not prefetch: the test proves nothing"
    helper = start_worker("--async-concurrency", "5", "--prefetch", "0")
    wait_for(quick, JobStatus.SUCCESSFUL, 30, "the quick coroutines done elsewhere")
    assert Job.objects.filter(pk__in=ids(slow), status=JobStatus.RUNNING).count() == 2
    ran_elsewhere = Job.objects.filter(pk__in=quick, worker_id=worker_id(helper)).count()
    assert ran_elsewhere > 0, "nothing was handed back to the idle worker"
    for job in Job.objects.filter(pk__in=quick):
        assert (job.attempts, job.errors) == (1, []), "a hand-back is not an attempt"


@e2e
def test_coroutines_of_a_sigkilled_worker_run_again_elsewhere(start_worker):
    job = async_tasks.waits_until_cancelled.enqueue(1)
    victim = start_worker(env=FAST_LEASES)
    wait_until(lambda: Event.objects.filter(job_id=job.pk, name="started").exists(), 30)
    victim.kill()  # SIGKILL: the claim stays until its lease expires
    rescuer = start_worker(env=FAST_LEASES)
    wait_for([job.pk], JobStatus.SUCCESSFUL, LEASE + 15, "the coroutine, recovered")
    job.refresh_from_db()
    assert job.attempts == 2 and job.worker_id == worker_id(rescuer)
    assert Event.objects.filter(job_id=job.pk, name="started").count() == 2


def test_an_atomic_async_task_is_refused_at_definition():
    async def body() -> None:
        return None

    body.__qualname__ = body.__name__ = "atomic_async_body"
    with pytest.raises(InvalidTaskError, match=r"atomic=True\) cannot wrap the async function"):
        task(atomic=True)(body)


@pytest.mark.parametrize("value", [0, -3, 1.5])
def test_async_concurrency_must_be_a_positive_integer(value):
    with pytest.raises(CommandError, match="--async-concurrency must be"):
        call_command("runworker", burst=True, async_concurrency=value)


def test_the_async_concurrency_setting_is_checked_like_the_option():
    with (
        override_settings(DJANGO_JOBS={"ASYNC_CONCURRENCY": 0}),
        pytest.raises(CommandError, match=r"DJANGO_JOBS\['ASYNC_CONCURRENCY'\] must be between 1"),
    ):
        call_command("runworker", burst=True)
