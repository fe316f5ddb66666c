"""The thread pool's cancel, in this process against the real database: the
executor raises JobCancelled into the running task, the outcome is a
Cancellation, job_finished says CANCELLED, the worker's write ends the job;
and the pipe's wire format carries a Cancellation."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

from django_jobs import signals
from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.rows import Cancellation
from django_jobs.status import JobStatus
from django_jobs.worker.executor import ThreadExecutor
from django_jobs.worker.process_child import decode_outcome, encode_outcome
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def test_thread_pool_raises_job_cancelled_into_the_task_and_signals_cancelled():
    finished: list[dict[str, Any]] = []

    def on_finished(sender: Any, job: Any, status: str, error: Any = None, **kw: Any) -> None:
        finished.append({"job": job.id, "status": status, "error": error})

    signals.job_finished.connect(on_finished, dispatch_uid="test-cancel-runner")
    engine = get_engine("default")
    job = tasks.loops_until_cancelled.enqueue(60)
    quick = tasks.add.enqueue(1, 2)
    woke = threading.Event()
    pool = ThreadExecutor(2, woke.set)
    try:
        pool.start()
        pool.submit(engine.claim_jobs(uuid.uuid4(), None, 2, 30))
        wait_until(lambda: Event.objects.filter(job_id=job.pk, name="started").exists(), 10)
        wait_until(lambda: any(j.id == quick.pk for j, _ in pool._outcomes), 10)
        engine.cancel([job.pk])
        asked = time.monotonic()
        pool.cancel(frozenset({job.pk, 424242}))  # unknown ids are ignored
        pool.cancel(frozenset({job.pk}))  # asking twice raises nothing twice
        outcomes = wait_until(
            lambda: [o for j, o in pool._outcomes if j.id == job.pk], 5, message="cancelled"
        )
        assert time.monotonic() - asked < 2
    finally:
        pool.stop()
        signals.job_finished.disconnect(dispatch_uid="test-cancel-runner")
    (outcome,) = outcomes
    assert isinstance(outcome, Cancellation)
    assert outcome.error["exception_class"] == "django_jobs.exceptions.JobCancelled"
    assert "loops_until_cancelled" in outcome.error["traceback"]
    stopping = Event.objects.get(job_id=job.pk, name="stopping")
    assert stopping.value == {"cancel_requested": True}
    assert {"job": job.pk, "status": JobStatus.CANCELLED, "error": outcome.error} in finished
    assert engine.cancel_running(outcome) is True
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.CANCELLED, 1)
    # The cancel did not reach the job that had finished.
    assert [o.result_json for j, o in pool._outcomes if j.id == quick.pk] == ["3"]


def test_cancellation_crosses_the_process_pipe():
    tasks.noop.enqueue()
    (claimed,) = get_engine("default").claim_jobs(uuid.uuid4(), None, 1, 30)
    error = {"exception_class": "django_jobs.exceptions.JobCancelled", "message": "m"}
    data = encode_outcome(Cancellation(claimed, error), retire=False)
    assert decode_outcome(claimed, json.loads(data)) == Cancellation(claimed, error)
