"""Timeouts are enforced and never cost the worker a slot, in both pools."""

from __future__ import annotations

import pytest

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import children_of, ids, wait_for
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_job_past_its_timeout_fails_retries_and_others_keep_flowing(start_worker, pool):
    hung = tasks.sleeps_past_timeout.enqueue(60)  # timeout=1s, max_attempts=2
    quick = tasks.add.enqueue_many([(n, 1) for n in range(30)])
    # One slot only: the quick jobs can run only if the hung job's slot is
    # given back at its timeout (its sleep lasts a minute).
    worker = start_worker("--pool", pool, "--concurrency", "1")
    wait_for(ids(quick), JobStatus.SUCCESSFUL, 30, "quick jobs behind a hung one")
    wait_for([hung.pk], JobStatus.FAILED, 30, "the hung job, twice timed out")
    hung.refresh_from_db()
    assert hung.attempts == 2
    assert [e["exception_class"] for e in hung.errors] == ["django_jobs.exceptions.JobTimeout"] * 2
    assert f"job {hung.pk} ran longer than its timeout of 1s" in hung.errors[0]["message"]
    reason = DeadLetter.objects.get(job_id=hung.pk).reason
    assert reason.startswith("attempts exhausted (2/2): JobTimeout")
    assert not Job.objects.filter(pk__in=ids(quick)).exclude(attempts=1).exists()
    if pool == "process":  # the timed-out children were killed and replaced
        wait_until(lambda: len(children_of(worker.pid)) == 1, 10, message="one child left")
    later = tasks.add.enqueue(1, 1)
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the timeouts")
    assert worker.terminate() == 0
