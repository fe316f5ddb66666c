"""Distinct names of an indexed column by skip scan, for the admin's filters."""

from __future__ import annotations

from django_jobs.engine.base import NameColumn, NamedTable


def _skip_scan(table: str, column: str) -> str:
    # Distinct values of an indexed column, one index probe each ("loose index
    # scan"): MIN(col) WHERE col > previous walks the btree whose first column
    # is col. Plain SQL that PostgreSQL and SQLite both run. Read-only, so
    # safe under any concurrency (it sees one snapshot, or on SQLite one read).
    # ``table`` and ``column`` are the constants below, never user input.
    return f"""
WITH RECURSIVE names(name) AS (
    SELECT MIN({column}) FROM {table}
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > names.name)
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL LIMIT %s
"""


# Indexes jobs_job_task_id / jobs_job_queue_id, jobs_deadletter_task_id /
# jobs_deadletter_queue_id.
DISTINCT_NAMES: dict[tuple[NamedTable, NameColumn], str] = {
    ("job", "task_name"): _skip_scan("django_jobs_job", "task_name"),
    ("job", "queue_name"): _skip_scan("django_jobs_job", "queue_name"),
    ("dead_letter", "task_name"): _skip_scan("django_jobs_deadletter", "task_name"),
    ("dead_letter", "queue_name"): _skip_scan("django_jobs_deadletter", "queue_name"),
}
