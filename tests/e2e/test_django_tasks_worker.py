"""django.tasks tasks run by the real runworker subprocess through JobsBackend:
success, failure, retries with TaskContext, async, atomic, scheduling,
priority, signals, and recovery after SIGKILL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone

from django_jobs.exceptions import WorkerLost
from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import dtasks
from tests.testapp.models import Event, Execution

pytestmark = pytest.mark.django_db(transaction=True)
PROBE = "DJANGO_JOBS_TEST_SIGNAL_PROBE"


def burst_until_finished(run_burst, *results, env=None, timeout=60):
    """Run bursts (retries wait for their backoff) until every result is finished."""

    def finished():
        run_burst(env=env)
        for result in results:
            result.refresh()
        return all(result.is_finished for result in results)

    wait_until(finished, timeout, interval=0.2, message="tasks finished")


# -- 5. success and failure ------------------------------------------------------


def test_success_sync_and_async(run_burst):
    added = dtasks.add.enqueue(2, 3)
    multiplied = dtasks.async_multiply.enqueue(6, 7)
    with_context = dtasks.async_with_context.enqueue()
    proc = run_burst()
    assert "Traceback" not in proc.output()
    for result, value in [(added, 5), (multiplied, 42), (with_context, 1)]:
        assert result.status == TaskResultStatus.READY  # a snapshot until refreshed
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.enqueued_at <= result.started_at <= result.finished_at
        assert result.last_attempted_at == result.started_at
        assert result.attempts == 1 and len(result.worker_ids) == 1 and result.errors == []
        assert result.return_value == value
    job = Job.objects.get(pk=int(added.id))
    assert added.worker_ids == [str(job.worker_id)]


def test_failures_keep_each_error_and_return_value_raises(run_burst):
    value_error = dtasks.raises_value_error.enqueue()
    system_exit = dtasks.raises_system_exit.enqueue()
    non_json = dtasks.returns_set.enqueue()
    burst_until_finished(run_burst, value_error, system_exit, non_json)
    expected = [
        (value_error, 2, ValueError, "bad value in the task"),
        (system_exit, 1, SystemExit, "SystemExit: 3"),
        (non_json, 1, TypeError, "not JSON-serializable"),
    ]
    for result, attempts, exc_class, text in expected:
        assert result.status == TaskResultStatus.FAILED
        assert result.attempts == attempts == len(result.errors) == len(result.worker_ids)
        assert result.errors[-1].exception_class is exc_class
        assert text in result.errors[-1].traceback
        assert result.finished_at is not None
        with pytest.raises(ValueError, match="Task failed"):
            _ = result.return_value
        assert DeadLetter.objects.filter(job_id=int(result.id)).exists()


def test_context_attempt_counts_up_across_retries(run_burst):
    result = dtasks.fails_then_succeeds.enqueue(times=2)
    burst_until_finished(run_burst, result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 3}
    assert result.attempts == 3 and len(result.errors) == 2
    assert all(e.exception_class is ConnectionError for e in result.errors)
    seen = [
        e.value for e in Event.objects.filter(job_id=int(result.id), name="context").order_by("id")
    ]
    assert [s["attempt"] for s in seen] == [1, 2, 3]
    assert [len(s["worker_ids"]) for s in seen] == [1, 2, 3]
    assert [s["errors"] for s in seen] == [
        [],
        ["builtins.ConnectionError"],
        ["builtins.ConnectionError", "builtins.ConnectionError"],
    ]
    assert seen[-1]["worker_ids"] == result.worker_ids


def test_atomic_option_rolls_back_a_failed_body(run_burst):
    failed = dtasks.atomic_fails_after_write.enqueue("lost")
    kept = dtasks.atomic_succeeds.enqueue("kept")
    burst_until_finished(run_burst, failed, kept)
    assert failed.status == TaskResultStatus.FAILED
    assert kept.status == TaskResultStatus.SUCCESSFUL and kept.return_value == "kept"
    atomic_events = Event.objects.filter(name="atomic")
    assert list(atomic_events.values_list("value", flat=True)) == [{"tag": "kept"}]


# -- 6. scheduling, priority, signals ----------------------------------------------


def test_run_after_is_respected(start_worker):
    result = dtasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
    marker = dtasks.add.enqueue(2, 2)  # due now: once it ran, a claim passed the deferred task
    start_worker("--concurrency", "1")
    wait_until(lambda: marker.refresh() or marker.is_finished, 20, message="marker task")
    result.refresh()
    assert result.status == TaskResultStatus.READY, "ran an hour early"
    when = timezone.now() + timedelta(seconds=0.5)
    Job.objects.filter(pk=result.id).update(run_after=when)  # the worker finds it by polling
    wait_until(lambda: result.refresh() or result.is_finished, 20, message="deferred task")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= when


def test_priority_order_with_fifo_inside_a_priority(run_burst):
    low = dtasks.record.using(priority=-100).enqueue("low")
    mid_1 = dtasks.record.enqueue("mid-1")
    high = dtasks.record.using(priority=100).enqueue("high")
    mid_2 = dtasks.record.enqueue("mid-2")
    mid_3 = dtasks.record.enqueue("mid-3")
    run_burst("--concurrency", "1")
    order = [str(i) for i in Execution.objects.order_by("id").values_list("job_id", flat=True)]
    assert order == [high.id, mid_1.id, mid_2.id, mid_3.id, low.id]


def _signals_of(result_id: str) -> list[tuple[str, object]]:
    events = Event.objects.filter(job_id=int(result_id)).exclude(name="context").order_by("id")
    return [(e.name, e.value.get("status")) for e in events]


def test_signals_fire_once_each_with_the_right_statuses(run_burst):
    ok = dtasks.add.enqueue(20, 22)
    failing = dtasks.raises_value_error.enqueue()
    burst_until_finished(run_burst, ok, failing, env={PROBE: "record"})
    assert _signals_of(ok.id) == [
        ("job_started", None),
        ("task_started", "RUNNING"),
        ("job_finished", "SUCCESSFUL"),
        ("task_finished", "SUCCESSFUL"),
    ]
    assert _signals_of(failing.id) == [
        ("job_started", None),
        ("task_started", "RUNNING"),
        ("job_finished", "READY"),  # attempt 1 failed, retry scheduled
        ("task_finished", "READY"),
        ("job_started", None),
        ("task_started", "RUNNING"),
        ("job_finished", "FAILED"),
        ("task_finished", "FAILED"),
    ]
    finished = Event.objects.get(job_id=int(ok.id), name="task_finished").value
    assert finished["sender"] == "django_jobs.backend.JobsBackend"
    assert finished["return_value"] == 42 and finished["attempts"] == 1
    last = Event.objects.filter(job_id=int(failing.id), name="task_finished").last()
    assert last is not None and (last.value["attempts"], last.value["errors"]) == (2, 2)


def test_raising_receivers_change_nothing(run_burst):
    ok = dtasks.atomic_succeeds.enqueue("fine")
    failing = dtasks.raises_value_error.enqueue()
    burst_until_finished(run_burst, ok, failing, env={PROBE: "raise"})
    assert ok.status == TaskResultStatus.SUCCESSFUL and ok.return_value == "fine"
    assert failing.status == TaskResultStatus.FAILED and failing.attempts == 2
    # The receivers did run (and raised) in the worker.
    assert Event.objects.filter(job_id=int(ok.id), name="task_finished").count() == 1
    assert Event.objects.filter(job_id=int(failing.id), name="task_started").count() == 2


# -- 7. crash recovery -----------------------------------------------------------------


def test_sigkilled_worker_task_runs_again_after_the_lease(start_worker):
    fast_lease = {
        "DJANGO_JOBS_TEST_LEASE": "2",
        "DJANGO_JOBS_TEST_HEARTBEAT": "0.5",
        "DJANGO_JOBS_TEST_RECOVERY": "0.5",
    }
    result = dtasks.sleep_for.enqueue(2.0)
    doomed = start_worker("--concurrency", "1", env=fast_lease)
    wait_until(
        lambda: Event.objects.filter(job_id=int(result.id), name="started").exists(),
        30,
        message="first attempt started",
    )
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    first_worker = result.worker_ids
    doomed.kill()  # SIGKILL: no cleanup, the job stays RUNNING until its lease expires
    start_worker("--concurrency", "1", env=fast_lease)
    wait_until(lambda: result.refresh() or result.is_finished, 60, message="task recovered")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2.0
    assert result.attempts == 2 and len(set(result.worker_ids)) == 2
    assert result.worker_ids[0] == first_worker[0]
    assert [e.exception_class for e in result.errors] == [WorkerLost]
    job = Job.objects.get(pk=int(result.id))
    assert job.attempts == 2 and len(job.errors) == 1
    assert Event.objects.filter(job_id=job.pk, name="started").count() == 2
    assert job.status == JobStatus.SUCCESSFUL
