"""A concurrency limit survives a SIGKILLed worker: the dead worker's RUNNING
job keeps its slot until its lease expires (the database cannot tell a dead
worker from a slow one), then it is recovered and rerun, and the limit holds
for every run that follows."""

from __future__ import annotations

import itertools
import time

import pytest

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, LEASE, wait_for
from tests.testapp import flow_tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def _starts() -> list[tuple[float, int]]:
    return sorted((e.value["t"], e.job_id) for e in Event.objects.filter(name="one_per_key:start"))


def test_sigkill_mid_job_holds_the_slot_until_the_lease_then_the_limit_still_holds(
    start_worker,
):
    ids = [flow_tasks.one_per_key.enqueue("crash", 0.5).pk for _ in range(6)]
    victim = start_worker("--concurrency", "4", env=FAST_LEASES)
    wait_until(lambda: _starts(), 30, message="the first keyed job to start")
    victim.kill()
    killed_at = time.time()
    (first_start, killed_job), *_ = _starts()
    for _ in range(2):
        start_worker("--concurrency", "4", env=FAST_LEASES)
    wait_for(ids, JobStatus.SUCCESSFUL, 60, "every keyed job, the killed one rerun")

    starts = _starts()
    ends = {e.job_id: e.value["t"] for e in Event.objects.filter(name="one_per_key:end")}
    # The killed run has no end; every other job ran once, the killed one twice.
    assert [job for _, job in starts].count(killed_job) == 2
    assert len(starts) == len(ids) + 1
    assert Job.objects.get(pk=killed_job).attempts == 2
    assert {Job.objects.get(pk=pk).attempts for pk in ids if pk != killed_job} == {1}
    # Nothing else of the key started while the dead worker's lease could still be live.
    later = [t for t, _ in starts if t > first_start]
    assert min(later) >= killed_at + LEASE - 0.5, (killed_at, later)
    # After recovery the limit of one holds for every completed run.
    runs = sorted((t, ends[job]) for t, job in starts if t > first_start)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(runs)), runs
