"""runworker --burst and jobs held back by flow control: it waits for jobs
that a rate (or concurrency) limit will let through, up to --burst-wait
seconds without a claim, exits past that saying what it left, and does not
wait for a paused queue."""

from __future__ import annotations

import time

import pytest

from django_jobs import queues
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import flow_tasks

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def test_burst_waits_for_rate_limited_jobs_but_not_past_its_bound_nor_for_a_pause(run_burst):
    rated = [flow_tasks.five_per_second.enqueue(n).pk for n in range(8)]  # two windows at 5/s
    hourly = [flow_tasks.once_an_hour.enqueue(n).pk for n in range(2)]  # the second: in an hour
    queues.pause("burst-paused")
    paused = flow_tasks.pausable.using(queue_name="burst-paused").enqueue("p").pk
    began = time.monotonic()
    proc = run_burst("--concurrency", "10", "--burst-wait", "3", timeout=60)
    took = time.monotonic() - began
    status = dict(Job.objects.values_list("pk", "status"))
    assert {status[pk] for pk in rated} == {JobStatus.SUCCESSFUL}, "it exited before the window"
    assert sorted(status[pk] for pk in hourly) == [JobStatus.READY, JobStatus.SUCCESSFUL]
    assert status[paused] == JobStatus.READY
    assert Job.objects.get(pk=paused).attempts == 0
    output = proc.output()
    assert (
        "exiting with 2 due job(s) left READY: 1 behind a concurrency limit, a rate limit or "
        "a circuit" in output
    ), output[-2000:]
    assert "1 in paused queues" in output
    # The 8 rated jobs need a second window (about 1 s), then 3 s without a claim.
    assert 3.5 <= took < 20, took
