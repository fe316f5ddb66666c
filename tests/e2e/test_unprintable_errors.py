"""An exception whose ``__str__`` (or ``__repr__``) raises fails its job like any other.

It used to escape the runner while the failure was being formatted: the thread
died, the job stayed RUNNING (its lease kept being renewed), the slot was lost
and ``--burst`` never ended; with ``--pool process`` the child died and the job
was recorded as a WorkerCrashed, the task's exception class lost.
"""

from __future__ import annotations

import json

import pytest

from django_jobs import outbox
from django_jobs.models import DeadLetter, Job
from django_jobs.outbox.delivery import DELIVERY_TASK
from django_jobs.status import JobStatus, OutboxStatus
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_an_unprintable_exception_fails_its_job_per_its_retry_policy(run_burst, pool):
    unprintable = tasks.raises_unprintable.enqueue(reprable=True)
    unreprable = tasks.raises_unprintable.enqueue(reprable=False)
    fine = tasks.add.enqueue(2, 3)
    outputs: list[str] = []

    def burst_until_failed() -> bool:
        # One burst per attempt: a retry is due 0.2s after the failure (fixed backoff).
        outputs.append(run_burst("--pool", pool, "--concurrency", "2", timeout=60).output())
        return Job.objects.filter(status=JobStatus.FAILED).count() == 2

    wait_until(burst_until_failed, 60, message="both unprintable jobs FAILED")

    assert Job.objects.get(pk=fine.pk).result == 5
    module = "tests.testapp.tasks"
    cases = [
        (unprintable, f"{module}.UnprintableError", "UnprintableError('the real message')"),
        (unreprable, f"{module}.UnreprableError", "<unprintable UnreprableError>"),
    ]
    for job, cls, message in cases:
        job.refresh_from_db()
        assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
        assert [e["attempt"] for e in job.errors] == [1, 2]
        for error in job.errors:
            assert error["exception_class"] == cls
            assert error["message"].startswith(message)
            assert "str() raised RuntimeError" in error["message"]
            assert "raises_unprintable" in error["traceback"]  # the task's frame is there
        reason = DeadLetter.objects.get(job_id=job.pk).reason
        assert reason.startswith(f"attempts exhausted (2/2): {cls.rsplit('.', 1)[1]}: {message}")
    log = "".join(outputs)
    assert "--- Logging error ---" not in log
    assert "attempt 2/2 failed: UnprintableError: UnprintableError('the real message')" in log


def test_an_unprintable_delivery_error_is_recorded_on_the_event(run_burst):
    config = {"broken": {"BACKEND": "tests.testapp.tasks.UnprintablePublisher", "MAX_ATTEMPTS": 1}}
    event = outbox.publish("order.created", {"order": 1})
    worker = run_burst(env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": json.dumps(config)}, timeout=60)
    event.refresh_from_db()
    assert event.status == OutboxStatus.FAILED
    assert event.last_error == (
        f"broken: UnprintableError: UnprintableError('event {event.pk} not accepted') "
        "(str() raised RuntimeError) (attempt 1/1)"
    )
    delivery = Job.objects.get(task_name=DELIVERY_TASK)
    assert delivery.status == JobStatus.FAILED
    assert delivery.errors[-1]["exception_class"] == "tests.testapp.tasks.UnprintableError"
    assert "--- Logging error ---" not in worker.output()
