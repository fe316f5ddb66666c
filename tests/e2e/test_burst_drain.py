"""--burst drains everything even when every slot is busy at the moment it looks."""

from __future__ import annotations

import pytest

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_burst_with_one_slot_runs_every_job(run_burst):
    # With one slot the loop often finds it busy (nothing asked for, nothing
    # found): that must not read as "queue empty".
    tasks.noop.enqueue_many([() for _ in range(300)])
    run_burst("--concurrency", "1")
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 300
