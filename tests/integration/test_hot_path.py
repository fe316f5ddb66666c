"""The worker's hot path on PostgreSQL: acknowledge + claim in one statement,
prepared statements, queue-friendly autovacuum. (complete_and_claim and the
heartbeat on every engine are in engine_contract/.)"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.rows import Completion
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


@pytest.mark.postgres
def test_complete_and_claim_is_one_statement_on_postgres():
    tasks.noop.enqueue_many([(), (), ()])
    engine = get_engine()
    running = engine.claim_jobs(WORKER, None, 2, 30)
    with CaptureQueriesContext(connection) as queries:
        done, claimed = engine.complete_and_claim(
            [Completion(j, "null") for j in running], WORKER, None, 10, 30
        )
    assert len(queries) == 1
    assert done == {j.id for j in running} and len(claimed) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["django_jobs_job", "django_jobs_outboxevent"])
def test_queue_tables_have_queue_friendly_autovacuum_settings(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        (options,) = cursor.fetchone()
    assert options is not None, f"{table} has default autovacuum settings"
    assert "autovacuum_vacuum_scale_factor=0.01" in options
    assert "autovacuum_vacuum_threshold=1000" in options


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _run_hot_statements_twice() -> None:
    """Each hot statement twice on one fresh session: with PREPARED_STATEMENTS
    on, the second run of each prepares it."""
    connection.close()  # a fresh session: no prepared statement yet
    engine = get_engine()
    for _ in range(2):
        tasks.noop.enqueue()
        tasks.noop.enqueue_many([(), ()])
        (job,) = engine.claim_jobs(WORKER, None, 1, 30)
        engine.complete_and_claim([Completion(job, "null")], WORKER, None, 1, 30)


@pytest.mark.postgres
def test_hot_path_statements_are_prepared_on_their_second_run_and_the_projects_never():
    connection.close()  # a fresh session: no prepared statement yet
    tasks.noop.enqueue()
    assert _prepared_statements() == [], "a one-off enqueue (web request) pays no PREPARE"
    _run_hot_statements_twice()
    for _ in range(10):  # psycopg's own threshold would prepare these after 5 runs
        list(Job.objects.filter(status=JobStatus.READY).values_list("pk", flat=True))
    prepared = _prepared_statements()
    assert len(prepared) == 4, prepared  # INSERT one, INSERT many, claim, complete+claim
    assert all("django_jobs_job" in text for text in prepared)
    assert not any('"django_jobs_job"."id"' in text for text in prepared), "an ORM query"


@pytest.mark.postgres
@pytest.mark.parametrize(("enabled", "expected"), [(False, 0), (True, 4)], ids=["off", "on"])
def test_prepared_statements_setting_off_prepares_nothing(settings, enabled, expected):
    """PgBouncer in transaction mode before 1.21 cannot hold prepared
    statements. The same runs that prepare 4 statements with the setting on
    (the test's own control) prepare none with it off."""
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "PREPARED_STATEMENTS": enabled}
    _run_hot_statements_twice()
    assert len(_prepared_statements()) == expected, _prepared_statements()
