"""Eager mode: jobs run on commit of the enqueueing transaction, in-process,
through the worker's runner; a rollback runs nothing; exceptions propagate or
are stored as EAGER_EXCEPTIONS says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings

from django_jobs import checks
from django_jobs.models import DeadLetter, Job
from tests.testapp import tasks
from tests.testapp.models import Event, Execution

pytestmark = pytest.mark.django_db(transaction=True)


def eager(**extra: Any) -> Any:
    from django.conf import settings

    return override_settings(DJANGO_JOBS={**settings.DJANGO_JOBS, "EAGER": True, **extra})


def test_commit_runs_the_job_rollback_does_not() -> None:
    with eager():
        with transaction.atomic():
            job = tasks.record.enqueue("a")
            assert Execution.objects.count() == 0  # not before the commit
        assert Job.objects.get(pk=job.pk).status == "SUCCESSFUL"
        assert Job.objects.get(pk=job.pk).result == job.pk
        with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
            tasks.record.enqueue("b")
            raise RuntimeError("roll back")
    assert Execution.objects.count() == 1
    assert Job.objects.count() == 1


def test_autocommit_enqueue_runs_at_once_and_atomic_tasks_work() -> None:
    with eager():
        job = tasks.record_atomic.enqueue("x")
    assert Job.objects.get(pk=job.pk).status == "SUCCESSFUL"
    assert Execution.objects.filter(job_id=job.pk).count() == 1


def test_retries_run_at_once_until_success() -> None:
    with eager():
        job = tasks.fail_times.enqueue(2)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == ("SUCCESSFUL", 3, 3)
    assert Event.objects.filter(job_id=job.pk).count() == 3


def test_exhausted_job_propagates_after_being_recorded() -> None:
    with eager(), pytest.raises(ValueError, match="always fails"):
        tasks.always_fails.enqueue()
    job = Job.objects.get()
    assert (job.status, job.attempts) == ("FAILED", 2)
    assert DeadLetter.objects.filter(job_id=job.pk).exists()


def test_store_mode_raises_nothing() -> None:
    with eager(EAGER_EXCEPTIONS="store"):
        tasks.always_fails.enqueue()
    assert Job.objects.get().status == "FAILED"


def test_without_retries_one_attempt_and_its_retry_left_ready() -> None:
    with eager(EAGER_RETRIES=False), pytest.raises(RuntimeError, match="planned failure 1/1"):
        tasks.fail_times.enqueue(1)
    job = Job.objects.get()
    assert (job.status, job.attempts) == ("READY", 1)


def test_every_job_of_a_commit_runs_before_the_exception_propagates() -> None:
    with eager(), pytest.raises(ValueError, match="always fails"), transaction.atomic():
        tasks.always_fails.enqueue()
        later = tasks.add.enqueue(1, 2)
    assert Job.objects.get(pk=later.pk).result == 3


def test_scheduled_jobs_are_left_for_a_worker() -> None:
    with eager():
        job = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    assert Job.objects.get(pk=job.pk).status == "READY"


def test_eager_inside_a_testcase_transaction_with_capture() -> None:
    # TransactionTestCase here; the same holds under TestCase: on_commit runs
    # inside captureOnCommitCallbacks(execute=True).
    from django.test import TestCase

    with eager(), transaction.atomic():
        with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
            job = tasks.add.enqueue(2, 3)
        assert len(callbacks) == 1
        assert Job.objects.get(pk=job.pk).result == 5


def test_system_check_warns_when_not_debug() -> None:
    with eager(), override_settings(DEBUG=False):
        ids = [m.id for m in checks.check_settings()]
    assert "django_jobs.W030" in ids
    with eager(), override_settings(DEBUG=True):
        assert "django_jobs.W030" not in [m.id for m in checks.check_settings()]
    with eager(EAGER_EXCEPTIONS="raise"), override_settings(DEBUG=True):
        (message,) = [m for m in checks.check_settings() if m.id == "django_jobs.E031"]
    assert "'raise'" in message.msg


def test_runworker_burst_refuses_eager() -> None:
    with eager(), pytest.raises(CommandError, match=r"EAGER'\] is on"):
        call_command("runworker", "--burst")


@pytest.mark.django_db
def test_eager_under_a_testcase_transaction() -> None:
    from django.test import TestCase

    with eager():
        with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
            job = tasks.add.enqueue(1, 2)
        # Never committed: nothing ran until the callbacks are executed.
        assert Job.objects.get(pk=job.pk).status == "READY"
        for callback in callbacks:
            callback()
    assert Job.objects.get(pk=job.pk).result == 3


def test_published_events_reach_subscribers_on_commit() -> None:
    from django_jobs import outbox

    with eager(), transaction.atomic():
        outbox.publish("order.created", {"order_id": 9}, key="9")
        assert not Event.objects.exists()
    done = Job.objects.filter(status="SUCCESSFUL").values_list("task_name", flat=True)
    assert sorted(name.rsplit(".", 1)[1] for name in done) == ["on_any_order", "on_order_created"]
    assert Event.objects.get(name="on_order_created").value["payload"] == {"order_id": 9}
