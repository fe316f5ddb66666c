"""Database outages: every connection of the worker terminated mid-run."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import ids, wait_for, worker_id
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# Every other client of the test database: the worker's loop, heartbeat, LISTEN
# and job connections (and its children's in process mode).
TERMINATE_OTHERS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
LISTENERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query = 'LISTEN django_jobs'
"""


def sql(statement: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_terminated_connections_worker_carries_on_and_no_job_is_lost_or_doubled(start_worker, pool):
    jobs = tasks.record_atomic_slowly.enqueue_many([(0.05,)] * 200)
    worker = start_worker("--pool", pool, "--concurrency", "4")
    me = worker_id(worker)
    wait_until(lambda: Execution.objects.count() >= 20, 30, message="work under way")
    wait_until(lambda: sql(LISTENERS) == 1, 10, message="the worker listens")
    terminated = 0
    for _ in range(3):
        terminated += sql(TERMINATE_OTHERS)
        time.sleep(0.7)
    outage_over = timezone.now()
    assert terminated >= 3 * 3, "loop, heartbeat and LISTEN connections at least"
    wait_for(ids(jobs), JobStatus.SUCCESSFUL, 60, "200 jobs after the outages")
    # Exactly once: one Execution per job (unique), no job given up.
    assert Execution.objects.count() == 200
    assert not DeadLetter.objects.exists()
    for job in Job.objects.filter(pk__in=ids(jobs)):
        assert Execution.objects.get(job_id=job.pk).attempt == job.attempts
    # The worker noticed, backed off and reconnected everything.
    assert worker.popen.poll() is None
    output = worker.output()
    assert "database unavailable" in output or "heartbeat failed" in output
    wait_until(lambda: sql(LISTENERS) == 1, 15, message="LISTEN connection back")
    wait_until(
        lambda: Worker.objects.get(id=me).last_heartbeat_at > outage_over,
        15,
        message="heartbeats after the outage",
    )
    later = tasks.add.enqueue(2, 3)
    wait_for([later.pk], JobStatus.SUCCESSFUL, 20, "a job after the outage")
    assert worker.terminate() == 0
