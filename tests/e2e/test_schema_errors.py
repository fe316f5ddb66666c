"""A database that rejects the worker's statements (schema not migrated) is not an outage.

An outage is retried with backoff for as long as it lasts; a rejected
statement (ProgrammingError: a missing table) stops the worker with a
message that says what to do, instead of "database unavailable" forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection, transaction

from django_jobs.models import Job
from django_jobs.status import JobStatus
from django_jobs.worker.rejections import rejection_hint
from tests.e2e.crash_support import ids, wait_for
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@contextlib.contextmanager
def table_renamed(table: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def test_worker_stops_with_exit_code_1_when_the_job_table_is_gone(start_worker):
    first = tasks.record.enqueue_many([("before",)] * 3)
    worker = start_worker("--concurrency", "2")
    wait_for(ids(first), JobStatus.SUCCESSFUL, 20, "jobs done before the table went away")
    with table_renamed("django_jobs_job"):
        assert worker.wait(30) == 1
    output = worker.output()
    assert "rejected the worker's statements 3 times in a row" in output
    assert "manage.py migrate" in output
    assert "database unavailable" not in output
    assert Job.objects.filter(status=JobStatus.SUCCESSFUL).count() == 3


def test_runworker_on_an_unmigrated_database_says_so(start_worker):
    with table_renamed("django_jobs_worker"):
        worker = start_worker("--concurrency", "1")
        assert worker.wait(30) == 1
    output = worker.output()
    assert "rejects django_jobs' statements" in output
    assert 'relation "django_jobs_worker" does not exist' in output
    assert "Run `manage.py migrate`" in output
    assert "Traceback" not in output


def _error_of(*statements: str) -> DatabaseError:
    """The Django-wrapped error the real server raises for ``statements`` (rolled back)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    except DatabaseError as exc:
        return exc
    raise AssertionError(f"no error from {statements}")


def test_only_statements_rejected_for_good_stop_a_worker():
    missing = _error_of("SELECT * FROM no_such_table")
    assert "manage.py migrate" in (rejection_hint(missing) or "")
    lost_prepared = _error_of("EXECUTE no_such_prepared_statement")
    assert "PREPARED_STATEMENTS" in (rejection_hint(lost_prepared) or "")
    # What PgBouncer < 1.22 also does: another client's "_pg3_0" is there already.
    duplicate = _error_of("PREPARE twice AS SELECT 1", "PREPARE twice AS SELECT 1")
    assert "PREPARED_STATEMENTS" in (rejection_hint(duplicate) or "")
    # Passing states are outages, retried with backoff: never a reason to exit.
    read_only = _error_of(
        "SET TRANSACTION READ ONLY",
        "INSERT INTO django_jobs_worker (id) VALUES (gen_random_uuid())",
    )
    timeout = _error_of("SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)")
    for passing in (read_only, timeout):
        assert rejection_hint(passing) is None, passing
