"""Bulk enqueue by COPY on PostgreSQL (``PostgresEngine.insert_jobs`` for large
batches): the rows are COPYed into a temporary staging table, then moved into
the job table by one INSERT ... SELECT with the same ON CONFLICT and unique_for
rules as ``postgres_sql.INSERT_JOBS_UNIQUE_FOR``.

Binding 100,000 rows as eleven arrays costs more client CPU (psycopg dumps each
array element in Python) than COPY's row writer, and RETURNING every row's
timestamps costs more again: this path returns ids and keys only and takes the
timestamps from the transaction's now(), which is what the statement stored.

Everything happens inside the caller's transaction (the staging table is
dropped at commit, or right after use), so it works through PgBouncer in
transaction mode: no session state outlives the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django_jobs.rows import NewJob

# Rows from which enqueue_many uses COPY instead of the array-bound INSERT.
# Below it the temporary table's create and drop (catalog writes) cost more
# than COPY saves (measured: bench/RESULTS.md, "Bulk enqueue with COPY").
COPY_THRESHOLD = 1_000

# The staging table, private to this session and transaction (TEMP), dropped at
# commit at the latest (ON COMMIT DROP); DROP_STAGING drops it right after use
# so a second enqueue_many in the same transaction creates it afresh. No other
# session can see it, so nothing here is shared.
CREATE_STAGING = """
CREATE TEMPORARY TABLE django_jobs_staging (
    ord bigint, task_name text, queue_name text, priority smallint, args jsonb, kwargs jsonb,
    run_after timestamptz, max_attempts int, timeout float8, idempotency_key text, meta jsonb,
    flow_lane text, unique_for float8
) ON COMMIT DROP
"""
COPY_STAGING = """
COPY django_jobs_staging (
    ord, task_name, queue_name, priority, args, kwargs, run_after, max_attempts, timeout,
    idempotency_key, meta, flow_lane, unique_for
) FROM STDIN
"""
# Sorting the staged rows by ord (INSERT_FROM_STAGING) spills to disk at the
# default work_mem from about 10,000 rows; for this transaction only (the
# third argument of set_config: SET LOCAL) it gets enough to sort in memory,
# and the caller's value is back right after the insert (RESTORE_AFTER).
# Sent with CREATE_STAGING, in one round trip; returns the caller's value.
SORT_MEMORY = "SELECT current_setting('work_mem'), set_config('work_mem', '64MB', true)"
# After the insert, one round trip: drop the staging table, give work_mem back
# (SET LOCAL again, so the session's own value returns at commit as before),
# and read the transaction's start time: every now() of this transaction, so
# the enqueued_at (and default run_after) the insert stored. No parameters:
# the old work_mem is bound in a second statement, RESTORE_WORK_MEM.
DROP_STAGING_AND_NOW = "DROP TABLE django_jobs_staging; SELECT now()"
RESTORE_WORK_MEM = "SELECT set_config('work_mem', %s, true)"

# INSERT_JOBS_UNIQUE_FOR with the staging table in place of the arrays, in
# input order (ord). Same concurrency story: a row whose key is held by a
# READY/RUNNING job is skipped by ON CONFLICT on the partial unique index
# (waiting for an uncommitted holder); a row with unique_for is skipped when a
# job with its key was enqueued within the period, checked after
# LOCK_IDEMPOTENCY_KEYS in the same transaction, so no other unique_for
# enqueue of these keys can commit in between. RETURNING lists the rows
# inserted (id and key only: the caller knows the rest).
_INSERT_SELECT = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, requested_run_after,
    attempts, max_attempts, timeout, idempotency_key, errors, meta, enqueued_at, flow_lane
)
SELECT t.task_name, t.queue_name, t.priority, t.args, t.kwargs, 'READY',
       COALESCE(t.run_after, now()), t.run_after, 0, t.max_attempts, t.timeout,
       t.idempotency_key, '[]'::jsonb, COALESCE(t.meta, '{}'::jsonb), now(), t.flow_lane
FROM django_jobs_staging AS t
WHERE t.unique_for IS NULL OR NOT EXISTS (
    SELECT 1 FROM django_jobs_job AS held
    WHERE held.idempotency_key = t.idempotency_key
      AND held.enqueued_at >= now() - t.unique_for * interval '1 second'
)
ORDER BY t.ord
"""
INSERT_FROM_STAGING = (
    _INSERT_SELECT
    + """ON CONFLICT (idempotency_key)
    WHERE status IN ('READY', 'RUNNING')
    AND idempotency_key IS NOT NULL DO NOTHING
RETURNING id, idempotency_key
"""
)
# The same for a batch without idempotency keys: nothing can conflict, and an
# INSERT without ON CONFLICT skips the speculative insertion (a token and one
# more WAL record per row). No unique_for either (it needs a key).
INSERT_FROM_STAGING_NO_KEYS = _INSERT_SELECT + "RETURNING id, idempotency_key\n"


def copy_insert(cursor: Any, rows: Sequence[NewJob]) -> tuple[list[Any], datetime]:
    """Insert ``rows`` through the staging table with ``cursor`` (inside a
    transaction, after any advisory locks). Returns the inserted rows' (id,
    key) in input order and the transaction's now()."""
    cursor.execute(CREATE_STAGING + ";" + SORT_MEMORY)  # one round trip, two results
    cursor.nextset()
    work_mem = cursor.fetchone()[0]
    with cursor.copy(COPY_STAGING) as copy:
        write = copy.write_row
        for ord_, r in enumerate(rows):
            write(
                (
                    ord_,
                    r.task_name,
                    r.queue_name,
                    r.priority,
                    r.args_json,
                    r.kwargs_json,
                    r.run_after,
                    r.max_attempts,
                    r.timeout,
                    r.idempotency_key,
                    r.meta_json,
                    r.lane.key if r.lane is not None else None,
                    r.unique_for,
                )
            )
    keyed = any(r.idempotency_key is not None for r in rows)
    cursor.execute(INSERT_FROM_STAGING if keyed else INSERT_FROM_STAGING_NO_KEYS)
    inserted = sorted(cursor.fetchall())  # by id == input order
    cursor.execute(RESTORE_WORK_MEM, [work_mem])
    cursor.execute(DROP_STAGING_AND_NOW)
    cursor.nextset()
    now = cursor.fetchone()[0]
    return inserted, now
