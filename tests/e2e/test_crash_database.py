"""Database outages: every connection of the worker terminated mid-run."""

from __future__ import annotations

import time

import psycopg
import psycopg.sql
import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, LEASE, ids, wait_for, worker_id
from tests.testapp import tasks
from tests.testapp.models import Event, Execution

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


def test_outage_longer_than_the_lease_does_not_rescue_live_jobs(start_worker):
    """Every lease expires during the outage; live workers renew before anyone recovers."""
    jobs = tasks.long_event.enqueue_many([(LEASE * 4,)] * 4)
    # The owner renews slowly, the bystander scans fast: without the recovery
    # gate the bystander would win the race after the outage.
    owner = start_worker(
        "--concurrency", "4", env={**FAST_LEASES, "DJANGO_JOBS_TEST_HEARTBEAT": "1.0"}
    )
    owner_id = worker_id(owner)
    wait_until(lambda: Event.objects.filter(job_id__in=ids(jobs)).count() == 4, 20)
    eager = {**FAST_LEASES, "DJANGO_JOBS_TEST_HEARTBEAT": "0.2", "DJANGO_JOBS_TEST_RECOVERY": "0.2"}
    bystander = start_worker("--concurrency", "4", env=eager)
    worker_id(bystander)
    time.sleep(LEASE)  # the bystander may recover by now: its heartbeats are healthy
    settings = connection.settings_dict
    database = psycopg.sql.Identifier(settings["NAME"])
    with psycopg.connect(
        dbname="postgres",
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"],
        autocommit=True,
    ) as admin:
        admin.execute(psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
        try:
            sql(TERMINATE_OTHERS)
            time.sleep(LEASE * 1.5)  # nobody can renew: every lease expires
            assert Job.objects.filter(lease_expires_at__lt=timezone.now()).count() == 4
        finally:
            admin.execute(
                psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database)
            )
    wait_for(ids(jobs), JobStatus.SUCCESSFUL, 30, "the long jobs, on their first attempt")
    for job in Job.objects.filter(pk__in=ids(jobs)):
        assert (job.attempts, job.errors, job.worker_id) == (1, [], owner_id)
    assert Event.objects.filter(job_id__in=ids(jobs)).count() == 4, "each ran once"
    assert "heartbeat failed" in bystander.output()
    assert owner.terminate() == 0 and bystander.terminate() == 0


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_jobs_reuse_their_connection_when_it_is_healthy(run_burst, pool):
    """The per-job connection check must not turn into a reconnect per job."""
    jobs = tasks.backend_pid.enqueue_many([()] * 10)
    run_burst("--pool", pool, "--concurrency", "1")
    pids = {Job.objects.get(pk=job.pk).result for job in jobs}
    assert len(pids) == 1
