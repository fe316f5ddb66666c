"""The real runworker, as a subprocess, against the test database."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Event, Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_burst_drains_jobs_and_stores_results(run_burst):
    jobs = tasks.add.enqueue_many([(n, n) for n in range(50)])
    async_job = tasks.async_add.enqueue(20, 22)
    proc = run_burst("--concurrency", "4")
    assert "Traceback" not in proc.output()
    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCESSFUL
        assert job.result == job.args[0] * 2
        assert job.attempts == 1
        assert job.enqueued_at <= job.started_at <= job.finished_at
    async_job.refresh_from_db()
    assert (async_job.status, async_job.result) == (JobStatus.SUCCESSFUL, 42)


def test_long_running_worker_picks_up_new_jobs(start_worker):
    worker = start_worker("--concurrency", "2")
    first = tasks.add.enqueue(1, 2)
    wait_until(
        lambda: Job.objects.get(pk=first.pk).status == JobStatus.SUCCESSFUL, 20, message="first job"
    )
    later = tasks.add.enqueue(3, 4)
    wait_until(
        lambda: Job.objects.get(pk=later.pk).status == JobStatus.SUCCESSFUL, 20, message="later job"
    )
    assert Job.objects.get(pk=later.pk).result == 7
    assert worker.terminate() == 0


def test_queue_option_limits_what_a_worker_takes(run_burst):
    mine = tasks.add.using(queue_name="mine").enqueue(1, 1)
    other = tasks.add.using(queue_name="theirs").enqueue(1, 1)
    run_burst("--queue", "mine", "--queue", "extra")
    assert Job.objects.get(pk=mine.pk).status == JobStatus.SUCCESSFUL
    assert Job.objects.get(pk=other.pk).status == JobStatus.READY


def test_scheduled_job_waits_for_run_after(start_worker):
    job = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    marker = tasks.add.enqueue(2, 2)  # due now: once it ran, a claim passed the scheduled job
    start_worker("--concurrency", "1")
    wait_until(
        lambda: Job.objects.get(pk=marker.pk).status == JobStatus.SUCCESSFUL, 20, message="marker"
    )
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.attempts) == (JobStatus.READY, 0), "ran an hour early"
    due = timezone.now() + timedelta(seconds=0.5)
    Job.objects.filter(pk=job.pk).update(run_after=due)  # the worker finds it by polling
    wait_until(
        lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCESSFUL,
        20,
        message="scheduled job",
    )
    job.refresh_from_db()
    assert job.started_at >= due


def test_priority_order_with_one_slot(run_burst):
    low = tasks.record.using(priority=-10).enqueue("low")
    mid_1 = tasks.record.enqueue("mid-1")
    mid_2 = tasks.record.enqueue("mid-2")
    high = tasks.record.using(priority=10).enqueue("high")
    run_burst("--concurrency", "1")
    order = list(Execution.objects.order_by("id").values_list("job_id", flat=True))
    assert order == [high.pk, mid_1.pk, mid_2.pk, low.pk]


def test_retry_then_success_with_backoff(run_burst):
    job = tasks.fail_times.enqueue(2)
    wait_until(lambda: run_burst() and Job.objects.get(pk=job.pk).status != JobStatus.READY, 30)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL and job.result == 3 and job.attempts == 3
    assert [e["attempt"] for e in job.errors] == [1, 2]
    assert all(e["exception_class"] == "builtins.RuntimeError" for e in job.errors)
    assert "planned failure 1/2" in job.errors[0]["traceback"]
    # fixed backoff, BACKOFF_BASE=0.2s in tests: each retry starts >= 0.2s after the failure
    attempts = list(
        Event.objects.filter(job_id=job.pk).order_by("id").values_list("created_at", flat=True)
    )
    assert len(attempts) == 3
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        assert later - earlier >= timedelta(seconds=0.2)


def test_exhausted_job_is_dead_lettered_and_worker_continues(run_burst):
    bad = tasks.always_fails.enqueue()
    good = tasks.add.enqueue(2, 2)
    wait_until(lambda: run_burst() and Job.objects.get(pk=bad.pk).status == JobStatus.FAILED, 30)
    bad.refresh_from_db()
    assert bad.attempts == 2 and len(bad.errors) == 2
    letter = DeadLetter.objects.get(job_id=bad.pk)
    assert "attempts exhausted (2/2)" in letter.reason and "ValueError" in letter.reason
    assert letter.errors == bad.errors
    assert Job.objects.get(pk=good.pk).status == JobStatus.SUCCESSFUL


@pytest.mark.parametrize(
    ("task_obj", "reason"),
    [
        (tasks.discards, "discarded by the task: not worth retrying"),
        (tasks.raises_key_error, "in discard_on"),
        (tasks.raises_type_error, "not in retry_on"),
    ],
)
def test_discard_paths_go_straight_to_dead_letters(run_burst, task_obj, reason):
    job = task_obj.enqueue()
    run_burst()
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert reason in DeadLetter.objects.get(job_id=job.pk).reason


def test_retry_with_explicit_delay(run_burst):
    job = tasks.retries_later.enqueue(1.5)
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.READY and job.attempts == 1
    # The delay counts from the failure, not from when this check runs (a loaded
    # machine can take longer than the delay to get here).
    failed_at = datetime.fromisoformat(job.errors[-1]["at"])
    assert job.run_after - failed_at >= timedelta(seconds=1.4)
    wait_until(lambda: timezone.now() >= job.run_after, 10, message="retry delay over")
    run_burst()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCESSFUL, "second try")


def test_non_json_result_is_a_failed_attempt(run_burst):
    job = tasks.returns_set.enqueue()
    job_id = job.pk
    Job.objects.filter(pk=job_id).update(max_attempts=1)
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "not JSON-serializable" in job.errors[0]["message"]


def test_unknown_task_and_broken_row_are_dead_lettered(run_burst):
    unknown = Job.objects.create(task_name="tests.testapp.tasks.does_not_exist", max_attempts=3)
    missing_module = Job.objects.create(task_name="nowhere.module.task", max_attempts=3)
    broken = Job.objects.create(task_name="tests.testapp.tasks.add", args={"not": "a list"})
    good = tasks.add.enqueue(1, 1)
    proc = run_burst()
    for job, text in [
        (unknown, "is not registered"),
        (missing_module, "is not registered"),
        (broken, "undecodable"),
    ]:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1), text
        assert text in DeadLetter.objects.get(job_id=job.pk).reason
    assert Job.objects.get(pk=good.pk).status == JobStatus.SUCCESSFUL
    assert proc.popen.returncode == 0


def test_progress_is_recorded(run_burst):
    job = tasks.with_progress.enqueue(4)
    run_burst()
    job.refresh_from_db()
    assert job.progress == {"step": 4, "of": 4}
    assert job.result == 4


def test_sigterm_stops_a_running_worker_cleanly(start_worker):
    worker = start_worker("--concurrency", "2")
    job = tasks.sleep_for.enqueue(1.0)
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_run_each_of_5000_jobs_exactly_once(start_worker):
    assert connection.vendor == "postgresql"
    tasks.record.enqueue_many([(str(n),) for n in range(5000)])
    workers = [start_worker("--concurrency", "4") for _ in range(4)]
    wait_until(
        lambda: not Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]).exists(),
        240,
        interval=0.5,
        message="5000 jobs drained",
    )
    for worker in workers:
        assert worker.terminate() == 0
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 5000
    assert Execution.objects.count() == 5000  # unique job_id: a second run would have failed
    assert not Job.objects.exclude(attempts=1).exists()
    assert not DeadLetter.objects.exists()
    # The work was really shared between the processes.
    assert Job.objects.values("worker_id").distinct().count() == 4
