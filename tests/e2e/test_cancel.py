"""Cancelling RUNNING jobs with real workers: ``manage.py jobs cancel``, the
heartbeat telling the worker, JobCancelled in the thread pool, the kill after
CANCEL_GRACE in the process pool, and exactly one outcome when a cancel races
a completion."""

from __future__ import annotations

import os
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import children_of, ids, wait_for
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

# Heartbeats every 0.3 s: a cancel is heard within about that.
FAST = {"DJANGO_JOBS_TEST_HEARTBEAT": "0.3", "DJANGO_JOBS_TEST_CANCEL_GRACE": "1.5"}


def cancel(*job_ids: int) -> str:
    out = StringIO()
    call_command("jobs", "cancel", *[str(i) for i in job_ids], stdout=out)
    return out.getvalue()


def started(job: Job, timeout: float = 30) -> Event:
    return wait_until(
        lambda: Event.objects.filter(job_id=job.pk, name="started").first(),
        timeout,
        message=f"job {job.pk} started",
    )


def assert_cancelled_once(job: Job) -> Job:
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.attempts == 1, "a cancelled job is never retried"
    assert job.cancel_requested_at is not None and job.finished_at is not None
    assert [e["exception_class"] for e in job.errors] == ["django_jobs.exceptions.JobCancelled"]
    assert job.result is None
    assert not DeadLetter.objects.filter(job_id=job.pk).exists()
    return job


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_running_job_cancelled_by_the_command_ends_cancelled_and_the_slot_is_reused(
    start_worker, pool
):
    job = tasks.loops_until_cancelled.enqueue(120)
    worker = start_worker("--pool", pool, "--concurrency", "1", env=FAST)
    started(job)
    asked = time.monotonic()
    assert f"job {job.pk} is running: cancel requested" in cancel(job.pk)
    wait_for([job.pk], JobStatus.CANCELLED, 10, "the running job, cancelled")
    took = time.monotonic() - asked
    assert took < 5, f"cancel took {took:.1f}s"
    job = assert_cancelled_once(job)
    if pool == "thread":
        # JobCancelled was raised into the loop; the task's finally saw cancel_requested.
        stopping = Event.objects.get(job_id=job.pk, name="stopping")
        assert stopping.value == {"cancel_requested": True}
        assert "time.sleep(0.1)" in job.errors[0]["traceback"]  # where it was interrupted
    else:
        # The child was told (cancel_requested), did not stop, and was killed.
        assert "was killed after CANCEL_GRACE" in job.errors[0]["message"]
        assert not Event.objects.filter(job_id=job.pk, name="stopping").exists()
    # The worker kept its one slot: the next job runs.
    later = tasks.add.enqueue(2, 3)
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the cancel")
    time.sleep(1)  # no retry comes
    assert Job.objects.get(pk=job.pk).attempts == 1
    assert Event.objects.filter(job_id=job.pk, name="started").count() == 1
    assert worker.terminate() == 0


def test_thread_pool_rolls_back_an_atomic_body_it_cancels(start_worker, is_postgres):
    job = tasks.writes_then_loops.enqueue(120 if is_postgres else 3)
    start_worker("--concurrency", "2", env=FAST)
    # The body's write is not committed while it runs: wait for the job to run.
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 30)
    time.sleep(0.5)
    if not is_postgres:
        # SQLite: the atomic body holds the database's write lock until it ends, so
        # the cancel (like every write) waits for its commit: the job has finished.
        assert job.cancel() is False
        assert job.status == JobStatus.SUCCESSFUL and job.cancel_requested_at is None
        assert Event.objects.filter(job_id=job.pk, name="atomic write").count() == 1
        return
    cancel(job.pk)
    wait_for([job.pk], JobStatus.CANCELLED, 10, "the atomic job, cancelled")
    assert_cancelled_once(job)
    assert not Event.objects.filter(job_id=job.pk).exists(), "the atomic body's write rolled back"


def test_process_pool_kills_a_child_stuck_in_c_after_cancel_grace(start_worker):
    job = tasks.sleeps_in_c.enqueue(600)
    worker = start_worker("--pool", "process", "--concurrency", "1", env=FAST)
    child = started(job).value["pid"]
    assert child in children_of(worker.pid)
    asked = time.monotonic()
    cancel(job.pk)
    wait_for([job.pk], JobStatus.CANCELLED, 15, "the stuck job, cancelled")
    took = time.monotonic() - asked
    assert 1.5 <= took < 8, f"killed after {took:.1f}s (CANCEL_GRACE 1.5 s + a heartbeat)"
    job = assert_cancelled_once(job)
    assert "was killed after CANCEL_GRACE" in job.errors[0]["message"]
    wait_until(lambda: not os.path.exists(f"/proc/{child}"), 10, message="the child is gone")
    # A new child took its place.
    wait_until(lambda: len(children_of(worker.pid)) == 1, 10, message="a replacement child")
    later = tasks.add.enqueue(1, 1)
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the kill")
    assert worker.terminate() == 0


def test_process_pool_task_can_stop_itself_on_cancel_requested(start_worker):
    job = tasks.cooperative_stop.enqueue(120)
    start_worker(
        "--pool",
        "process",
        "--concurrency",
        "1",
        env={**FAST, "DJANGO_JOBS_TEST_CANCEL_GRACE": "30"},
    )
    started(job)
    cancel(job.pk)
    wait_for([job.pk], JobStatus.CANCELLED, 10, "the cooperative job, cancelled")
    job = assert_cancelled_once(job)
    assert job.errors[0]["message"] == "stopping on request"  # its own JobCancelled, not a kill
    assert Event.objects.filter(job_id=job.pk, name="saw cancel").exists()


@pytest.mark.parametrize("pool", ["thread", "process"])
@pytest.mark.parametrize("atomic", [False, True], ids=["plain", "atomic"])
def test_cancel_racing_completion_leaves_exactly_one_outcome(start_worker, pool, atomic):
    task = tasks.busy_for_atomic if atomic else tasks.busy_for
    # Jobs ending at staggered times around the moment the cancel is heard.
    # Process pool on SQLite: fresh interpreters, slow to start on a busy machine.
    # SQLite and atomic: each running atomic job holds the database's one write
    # lock, so 16 of them queue the test's own cancels past the busy timeout.
    count = 16 if pool == "thread" and not (atomic and connection.vendor == "sqlite") else 4
    jobs = task.enqueue_many([(0.5 + 0.1 * n,) for n in range(count)])
    env = {**FAST, "DJANGO_JOBS_TEST_CANCEL_GRACE": "30"}
    start_worker("--pool", pool, "--concurrency", str(count), env=env)
    # Every job started (none READY): on a loaded machine the first may already
    # have finished when the last starts, so "all RUNNING at once" is not waited for.
    wait_until(
        lambda: not Job.objects.filter(pk__in=ids(jobs), status=JobStatus.READY).exists(),
        60,
        message="every job started",
    )
    for job in jobs:  # Job.cancel(), one by one while they finish
        job.cancel()
    wait_until(
        lambda: (
            not Job.objects.filter(
                pk__in=ids(jobs), status__in=[JobStatus.READY, JobStatus.RUNNING]
            ).exists()
        ),
        30,
        message="every job ended",
    )
    ends = {JobStatus.SUCCESSFUL: 0, JobStatus.CANCELLED: 0}
    for job in Job.objects.filter(pk__in=ids(jobs)):
        assert job.attempts == 1, f"job {job.pk} ran again"
        if job.status == JobStatus.SUCCESSFUL:
            assert job.errors == [] and job.result == pytest.approx(job.args[0])
            if atomic:
                assert Event.objects.filter(job_id=job.pk, name="atomic write").count() == 1
        else:
            assert job.status == JobStatus.CANCELLED, job.status
            assert [e["exception_class"] for e in job.errors] == [
                "django_jobs.exceptions.JobCancelled"
            ]
            assert job.result is None
            if atomic:
                assert not Event.objects.filter(job_id=job.pk).exists()
        ends[job.status] += 1
    assert not DeadLetter.objects.filter(job_id__in=ids(jobs)).exists()
    assert sum(ends.values()) == len(jobs)


def test_cancel_command_rejects_unknown_and_finished_jobs_writing_nothing():
    ready = tasks.noop.enqueue()
    done = tasks.noop.enqueue()
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCESSFUL)
    with pytest.raises(
        CommandError,
        match=rf"job 99999999 does not exist; job {done.pk} has "
        r"finished \(SUCCESSFUL\) and cannot be cancelled; nothing cancelled",
    ):
        cancel(ready.pk, 99999999, done.pk)
    assert Job.objects.get(pk=ready.pk).status == JobStatus.READY  # nothing written
    with pytest.raises(CommandError, match=r"job ids are positive integers, got 'x1'"):
        call_command("jobs", "cancel", str(ready.pk), "x1")
    with pytest.raises(CommandError, match=r"got '0'"):
        call_command("jobs", "cancel", "0")
    assert Job.objects.get(pk=ready.pk).status == JobStatus.READY
    # A READY job is cancelled at once, no worker involved.
    assert cancel(ready.pk).strip() == f"job {ready.pk} cancelled"
    ready.refresh_from_db()
    assert ready.status == JobStatus.CANCELLED and ready.cancel_requested_at is None
    with pytest.raises(CommandError, match="has finished \\(CANCELLED\\)"):
        cancel(ready.pk)


def test_thread_pool_gives_up_on_a_thread_blocked_in_c_and_keeps_its_slot(start_worker):
    job = tasks.sleeps_in_c.enqueue(600)
    start_worker("--concurrency", "1", env=FAST)
    started(job)
    asked = time.monotonic()
    cancel(job.pk)
    wait_for([job.pk], JobStatus.CANCELLED, 15, "the blocked job, cancelled")
    took = time.monotonic() - asked
    assert 1.5 <= took < 8, f"given up after {took:.1f}s (CANCEL_GRACE 1.5 s + a heartbeat)"
    job = assert_cancelled_once(job)
    assert "its thread (blocked in a C call?) was abandoned" in job.errors[0]["message"]
    later = tasks.add.enqueue(1, 1)  # the one slot went to a new thread
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the abandoned one")


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_with_the_default_heartbeat_a_cancel_lands_within_ten_seconds(start_worker, pool):
    job = tasks.cooperative_stop.enqueue(120)
    start_worker("--pool", pool, "--concurrency", "2")  # HEARTBEAT_INTERVAL 5 s
    started(job)
    asked = time.monotonic()
    assert job.cancel() is True
    wait_for([job.pk], JobStatus.CANCELLED, 10, "cancelled within 10 s")
    assert time.monotonic() - asked < 10
    assert_cancelled_once(job)
