"""JobsBackend against django.tasks' contract where a job runs more than once:
``started_at`` / ``last_attempted_at``, the enqueued ``run_after``,
``task_finished`` while the exception is current, and ``task_enqueued`` once
per created job, also under concurrent enqueues."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.signals import task_enqueued
from django.utils import timezone

from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.rows import Failure
from django_jobs.worker.runner import error_entry, run_job
from tests.conftest import wait_until
from tests.testapp import dtasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


def claim_one():
    [job] = get_engine().claim_jobs(WORKER, None, 1, 30)
    return job


def fail(job, retry_at):
    error = error_entry(job, RuntimeError("attempt failed"))
    assert get_engine().fail_job(Failure(job, error, retry_at, "gave up"))


@pytest.fixture
def enqueued_signals():
    seen: list[str] = []
    lock = threading.Lock()

    def receiver(sender, task_result, **kwargs):
        with lock:
            seen.append(task_result.id)

    task_enqueued.connect(receiver)
    yield seen
    task_enqueued.disconnect(receiver)


# -- started_at / last_attempted_at ---------------------------------------------


def test_started_at_is_the_first_attempt_and_last_attempted_at_the_latest():
    result = dtasks.add.enqueue(1, 2)
    first = claim_one()
    first_start = Job.objects.get(pk=first.id).started_at
    fail(first, retry_at=timezone.now())
    second = claim_one()
    assert second.attempts == 2
    row = Job.objects.get(pk=second.id)

    fetched = default_task_backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.RUNNING
    assert fetched.started_at == first_start
    assert fetched.last_attempted_at == row.last_attempted_at
    assert fetched.last_attempted_at > fetched.started_at
    # The worker's own view of the attempt agrees.
    assert (second.started_at, second.last_attempted_at) == (first_start, row.last_attempted_at)


def test_a_released_first_attempt_and_an_operator_retry_start_afresh():
    result = dtasks.add.enqueue(1, 2)
    get_engine().release_jobs([claim_one()])  # graceful shutdown: attempt not counted
    fetched = default_task_backend.get_result(result.id)
    assert (fetched.started_at, fetched.last_attempted_at) == (None, None)

    job = claim_one()
    fail(job, retry_at=None)  # dead-lettered
    assert get_engine().retry_jobs([job.id]) == 1  # an operator's retry: a new run
    fetched = default_task_backend.get_result(result.id)
    assert (fetched.started_at, fetched.last_attempted_at) == (None, None)
    claim_one()
    fetched = default_task_backend.get_result(result.id)
    assert fetched.started_at is not None and fetched.started_at == fetched.last_attempted_at


def test_admin_timeline_shows_the_first_and_the_latest_attempt_start():
    from django_jobs.admin.jobs import timeline

    result = dtasks.add.enqueue(1, 2)
    fail(claim_one(), retry_at=timezone.now())
    claim_one()
    job = Job.objects.get(pk=int(result.id))
    starts = {e.label: e.at for e in timeline(job, [], timezone.now()) if "started" in e.label}
    assert starts == {
        "Attempt 1 started": job.started_at,
        "Attempt 2 started": job.last_attempted_at,
    }


# -- run_after as enqueued ---------------------------------------------------------


def test_run_after_is_what_was_enqueued_also_after_a_retry():
    past = timezone.now() - timedelta(hours=1)
    deferred = dtasks.add.using(run_after=past).enqueue(1, 2)
    plain = dtasks.add.enqueue(3, 4)
    assert default_task_backend.get_result(deferred.id).task.run_after == past
    assert default_task_backend.get_result(plain.id).task.run_after is None

    later = timezone.now() + timedelta(hours=1)
    for _ in range(2):
        fail(claim_one(), retry_at=later)
    assert default_task_backend.get_result(deferred.id).task.run_after == past
    assert default_task_backend.get_result(plain.id).task.run_after is None
    assert Job.objects.get(pk=int(plain.id)).run_after == later  # the retry's time


def test_future_run_after_is_kept():
    future = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    result = dtasks.add.using(run_after=future).enqueue(1, 2)
    assert default_task_backend.get_result(result.id).task.run_after == future


# -- task_finished while the exception is current ----------------------------------


@pytest.mark.parametrize(("max_attempts", "level"), [(2, logging.INFO), (1, logging.ERROR)])
def test_task_finished_of_a_failed_attempt_logs_its_traceback(caplog, max_attempts, level):
    result = dtasks.raises_value_error.enqueue()
    Job.objects.filter(pk=int(result.id)).update(max_attempts=max_attempts)
    job = claim_one()
    with caplog.at_level(logging.INFO, logger="django.tasks"):
        run_job(job)
    [record] = [
        r for r in caplog.records if "state=" in r.getMessage() and "RUNNING" not in r.getMessage()
    ]
    assert record.levelno == level
    assert record.exc_info is not None, "task_finished was sent outside the except block"
    assert record.exc_info[0] is ValueError
    assert "bad value in the task" in caplog.text


# -- task_enqueued once per created job ----------------------------------------------


def test_enqueue_with_a_held_key_sends_no_task_enqueued(enqueued_signals):
    first = dtasks.add.using(idempotency_key="once").enqueue(1, 2)
    again = dtasks.add.using(idempotency_key="once").enqueue(1, 2)
    assert again.id == first.id
    assert enqueued_signals == [first.id]


@pytest.mark.postgres
def test_concurrent_enqueues_with_one_key_make_one_job_and_one_signal(enqueued_signals):
    """Two connections enqueue the same key at once: the second waits on the
    first's uncommitted row (unique index), then gets that job, no signal."""
    inserted, commit = threading.Event(), threading.Event()
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def enqueue(name: str, before: threading.Event | None, after: threading.Event | None) -> None:
        try:
            if before is not None:
                before.wait(30)
            with transaction.atomic():
                results[name] = dtasks.add.using(idempotency_key="race").enqueue(1, 2).id
                if after is not None:
                    after.set()
                    commit.wait(30)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            inserted.set()
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=enqueue, args=("first", None, inserted)),
        threading.Thread(target=enqueue, args=("second", inserted, None)),
    ]
    for thread in threads:
        thread.start()
    try:
        # The first commits only once the second is waiting on its row.
        wait_until(_waiting_on_a_lock, message="the second enqueue to wait on the first")
    finally:
        commit.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert results["first"] == results["second"]
    assert Job.objects.filter(idempotency_key="race").count() == 1
    assert enqueued_signals == [results["first"]]


def _waiting_on_a_lock() -> bool:
    # Another backend of the test database waits for a lock (the first's
    # uncommitted row). Run in autocommit: pg_stat_activity is a snapshot per
    # transaction.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0])
