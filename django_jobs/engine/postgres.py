"""PostgreSQL engine: the hot path in raw SQL; the rest (workers, operator
actions, dead-letter retries) is inherited from the ORM engine, ``generic``.

Every statement is a named constant with a comment saying why it is safe
under concurrency. Parameters (the NOTIFY channel too) are always bound,
never formatted in; the connection plumbing is in ``pg``.
"""

from __future__ import annotations

import logging
import select
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import transaction
from django.db.models import QuerySet

from django_jobs.codec import from_jsonb
from django_jobs.engine.base import LOST_WORKER_MESSAGE, LOST_WORKER_REASON
from django_jobs.engine.claimed import (
    NULL_PADDING,
    RETURNING_CLAIMED,
    claimed_from_flagged_rows,
    claimed_from_rows,
    in_claim_order,
)
from django_jobs.engine.generic import GenericEngine
from django_jobs.engine.instances import builder, new_job_model
from django_jobs.engine.pg import JOBS_CHANNEL, hot_cursor, notify_enabled
from django_jobs.models import Job
from django_jobs.rows import ClaimedJob, Completion, Inserted, NewJob, RecoveryReport
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.engine")

# Insert a batch of jobs in input order (ORDER BY ord; ids come from one
# sequence, so they increase in that order). A row whose idempotency key is
# held by a READY/RUNNING job is skipped by ON CONFLICT on the partial unique
# index: if the other transaction has not committed yet, PostgreSQL waits for
# it, so two concurrent enqueues can never both insert. RETURNING lists only
# the rows inserted (a skipped row returns nothing): that is how the caller
# tells created from existing jobs; it looks the skipped keys up afterwards.
# When %(notify)s, each due job's queue is sent to the NOTIFY channel
# %(channel)s (pg.JOBS_CHANNEL, bound like every parameter);
# PostgreSQL delivers it on commit (never for a rollback) and folds identical
# notifications of one transaction into one.
INSERT_JOBS = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, requested_run_after,
    attempts, max_attempts, timeout, idempotency_key, errors, meta, enqueued_at
)
SELECT t.task_name, t.queue_name, t.priority, t.args, t.kwargs, 'READY',
       COALESCE(t.run_after, now()), t.run_after, 0, t.max_attempts, t.timeout,
       t.idempotency_key, '[]'::jsonb, '{}'::jsonb, now()
FROM unnest(
    %(task_name)s::text[], %(queue_name)s::text[], %(priority)s::smallint[],
    %(args)s::jsonb[], %(kwargs)s::jsonb[], %(run_after)s::timestamptz[],
    %(max_attempts)s::int[], %(timeout)s::float8[], %(idempotency_key)s::text[]
) WITH ORDINALITY AS t(
    task_name, queue_name, priority, args, kwargs, run_after, max_attempts, timeout,
    idempotency_key, ord
)
ORDER BY t.ord
ON CONFLICT (idempotency_key) WHERE status IN ('READY', 'RUNNING')
    AND idempotency_key IS NOT NULL DO NOTHING
RETURNING id, run_after, enqueued_at, idempotency_key,
    CASE WHEN %(notify)s AND run_after <= now()
         THEN pg_notify(%(channel)s, queue_name) END
"""

# Same for one job without an idempotency key: the common case, without the
# unnest machinery.
INSERT_ONE_JOB = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, requested_run_after,
    attempts, max_attempts, timeout, idempotency_key, errors, meta, enqueued_at
) VALUES (
    %(task_name)s, %(queue_name)s, %(priority)s, %(args)s::jsonb, %(kwargs)s::jsonb, 'READY',
    COALESCE(%(run_after)s, now()), %(run_after)s, 0, %(max_attempts)s, %(timeout)s, NULL,
    '[]'::jsonb, '{}'::jsonb, now()
)
RETURNING id, run_after, enqueued_at,
    CASE WHEN %(notify)s AND run_after <= now() THEN pg_notify(%(channel)s, queue_name) END
"""

# The active job holding each idempotency key (read after ON CONFLICT skipped
# ours; the row committed before our statement, so it is visible now).
SELECT_ACTIVE_BY_KEYS = """
SELECT id, task_name, queue_name, priority, args, kwargs, status, run_after,
       requested_run_after, attempts, max_attempts, timeout, idempotency_key, enqueued_at,
       started_at, last_attempted_at
FROM django_jobs_job
WHERE idempotency_key = ANY(%s) AND status IN ('READY', 'RUNNING')
"""

# started_at is the run's start (its first attempt's), last_attempted_at this
# attempt's. RETURNING lists claimed.CLAIMED_COLUMNS (constants, not input).
_CLAIM_SET_AND_RETURN = f"""
UPDATE django_jobs_job AS job
SET status = 'RUNNING',
    attempts = job.attempts + 1,
    started_at = COALESCE(job.started_at, now()),
    last_attempted_at = now(),
    worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(),
    lease_expires_at = now() + %(lease)s * interval '1 second'
FROM candidates
WHERE job.id = candidates.id
RETURNING {RETURNING_CLAIMED}
"""

# Claim up to %(limit)s due jobs of every queue in one statement. FOR UPDATE
# SKIP LOCKED inside a MATERIALIZED CTE: each worker locks a disjoint set of
# rows and never waits for another; a row updated since our snapshot is
# re-checked against the WHERE clause after locking (READ COMMITTED
# re-evaluation), so a job is never claimed twice. Every eligibility check is
# inside the CTE; the UPDATE only writes the locked rows. The partial index
# jobs_job_ready_claim serves the ORDER BY ... LIMIT.
CLAIM_JOBS_ALL_QUEUES = (
    """
WITH candidates AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND run_after <= now()
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""
    + _CLAIM_SET_AND_RETURN
)

# The same for named queues (partial index jobs_job_ready_queue).
CLAIM_JOBS_IN_QUEUES = (
    """
WITH candidates AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND run_after <= now() AND queue_name = ANY(%(queues)s)
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""
    + _CLAIM_SET_AND_RETURN
)

# Mark a batch of jobs SUCCESSFUL in one round trip. Fenced per row on id AND
# claim token AND RUNNING: a job whose lease expired and was re-claimed has a
# new token, so a late completion from the old owner matches nothing.
COMPLETE_JOBS = """
UPDATE django_jobs_job AS job
SET status = 'SUCCESSFUL', result = done.result, finished_at = now(), lease_expires_at = NULL
FROM unnest(%s::bigint[], %s::uuid[], %s::jsonb[]) AS done(id, claim_token, result)
WHERE job.id = done.id AND job.claim_token = done.claim_token AND job.status = 'RUNNING'
RETURNING job.id
"""

# The worker's steady state in ONE statement and one commit: acknowledge the
# finished jobs (fenced exactly like COMPLETE_JOBS) and claim up to %(limit)s
# new ones (exactly like CLAIM_JOBS_*). The two data-modifying CTEs touch
# disjoint rows (RUNNING ones we own vs READY ones), so running them in one
# snapshot is safe; both commit or neither does. Claimed rows come first with
# is_claim true, then one row per acknowledged id with is_claim false: its id
# where a claim has ``id`` (CLAIMED_COLUMNS' first), NULL for the other columns.
_COMPLETE_CTE = """
done AS (
    UPDATE django_jobs_job AS job
    SET status = 'SUCCESSFUL', result = d.result, finished_at = now(), lease_expires_at = NULL
    FROM unnest(%(done_ids)s::bigint[], %(done_tokens)s::uuid[], %(done_results)s::jsonb[])
        AS d(id, claim_token, result)
    WHERE job.id = d.id AND job.claim_token = d.claim_token AND job.status = 'RUNNING'
    RETURNING job.id
)"""
_CANDIDATES = """
candidates AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND run_after <= now() {queue_filter}
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)"""
_CLAIMED_THEN_DONE = (
    ", claimed AS ("
    + _CLAIM_SET_AND_RETURN
    + """)
SELECT true AS is_claim, claimed.* FROM claimed
UNION ALL
SELECT false, done.id"""
    + NULL_PADDING
    + """
FROM done
"""
)
COMPLETE_AND_CLAIM_ALL_QUEUES = (
    "WITH" + _COMPLETE_CTE + "," + _CANDIDATES.format(queue_filter="") + _CLAIMED_THEN_DONE
)
COMPLETE_AND_CLAIM_IN_QUEUES = (
    "WITH"
    + _COMPLETE_CTE
    + ","
    + _CANDIDATES.format(queue_filter="AND queue_name = ANY(%(queues)s)")
    + _CLAIMED_THEN_DONE
)

# Renew the leases of the jobs this worker still holds, named by id AND claim
# token. A claim the worker never heard back about (connection lost between the
# claim's commit and its answer) is not in the list, is not renewed, and expires
# into recovery instead of staying RUNNING forever under a live worker.
# SKIP LOCKED: a row locked right now (a completion in flight from this very
# worker, or an atomic task's own transaction after set_progress) is skipped
# instead of waited for: locking in another order than that statement could
# deadlock, and a heartbeat stalled behind a job would let every other lease of
# this worker run out. The next beat renews whatever is still running.
RENEW_LEASES = """
WITH held AS MATERIALIZED (
    SELECT job.id FROM django_jobs_job AS job
    JOIN unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS mine(id, claim_token)
        ON job.id = mine.id AND job.claim_token = mine.claim_token
    WHERE job.status = 'RUNNING'
    FOR UPDATE OF job SKIP LOCKED
)
UPDATE django_jobs_job AS job SET lease_expires_at = now() + %(lease)s * interval '1 second'
FROM held
WHERE job.id = held.id
"""

# Hand unfinished jobs back on graceful shutdown, the attempt not counted.
# Fenced like COMPLETE_JOBS. Each released job's queue is notified (on commit)
# so an idle worker takes it at once. A released first attempt never started
# the run: its start times go back to NULL.
RELEASE_JOBS = """
UPDATE django_jobs_job AS job
SET status = 'READY', attempts = job.attempts - 1,
    started_at = CASE WHEN job.attempts <= 1 THEN NULL ELSE job.started_at END,
    last_attempted_at = CASE WHEN job.attempts <= 1 THEN NULL ELSE job.last_attempted_at END,
    lease_expires_at = NULL, worker_id = NULL, claim_token = NULL
FROM unnest(%s::bigint[], %s::uuid[]) AS held(id, claim_token)
WHERE job.id = held.id AND job.claim_token = held.claim_token AND job.status = 'RUNNING'
RETURNING job.id, CASE WHEN %s THEN pg_notify(%s, job.queue_name) END
"""

# Recover RUNNING jobs whose lease expired: their worker stopped renewing it
# (killed, crashed, paused, cut off from the database). The attempt counts: a
# WorkerLost entry joins the errors; the job is READY again now, or FAILED with
# its dead letter (same statement, same commit) when no attempt is left.
# FOR UPDATE SKIP LOCKED: two recovering workers take disjoint rows, and a row
# being written right now (a fenced completion, an atomic task committing) is
# skipped. After the lock PostgreSQL re-checks status and lease on the newest
# row version (READ COMMITTED re-evaluation), so a lease renewed or a job
# completed meanwhile is left alone. Only the database clock is used: lease
# and expiry are both now() on one server, so host clock skew cannot expire a
# live lease. Due queues are notified so idle workers re-claim at once.
RECOVER_EXPIRED = """
WITH expired AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'RUNNING' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), recovered AS (
    UPDATE django_jobs_job AS job
    SET status = CASE WHEN job.attempts >= job.max_attempts THEN 'FAILED' ELSE 'READY' END,
        run_after = CASE WHEN job.attempts >= job.max_attempts THEN job.run_after ELSE now() END,
        finished_at = CASE WHEN job.attempts >= job.max_attempts THEN now() END,
        lease_expires_at = NULL,
        errors = job.errors || jsonb_build_array(jsonb_build_object(
            'attempt', job.attempts,
            'exception_class', 'django_jobs.exceptions.WorkerLost',
            'message', format(%(message)s, job.worker_id),
            'traceback', '',
            'at', to_jsonb(now()),
            'worker_id', job.worker_id
        ))
    FROM expired
    WHERE job.id = expired.id
    RETURNING job.id, job.task_name, job.queue_name, job.priority, job.args, job.kwargs,
        job.status, job.errors, job.attempts, job.max_attempts, job.worker_id
), letters AS (
    INSERT INTO django_jobs_deadletter (
        job_id, task_name, queue_name, priority, args, kwargs, reason, errors,
        attempts, max_attempts, created_at
    )
    SELECT id, task_name, queue_name, priority, args, kwargs,
           format(%(reason)s, attempts, max_attempts), errors, attempts, max_attempts, now()
    FROM recovered
    WHERE status = 'FAILED'
)
SELECT id, task_name, status, attempts, max_attempts, worker_id,
    CASE WHEN %(notify)s AND status = 'READY' THEN pg_notify(%(channel)s, queue_name) END
FROM recovered
"""

# Delete up to %(limit)s finished jobs that finished before %(before)s, oldest
# first (partial index jobs_job_finished). SKIP LOCKED: the pruners of several
# workers take disjoint rows instead of queueing on each other. Status and
# finished_at are re-checked on the locked row, so a job an operator retried
# since (READY, finished_at cleared) is never deleted.
PRUNE_FINISHED = """
WITH doomed AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED') AND finished_at < %(before)s
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM django_jobs_job AS job
USING doomed
WHERE job.id = doomed.id
"""


# The planner's estimate of the rows an ORM query returns, without running it:
# EXPLAIN before the ORM's own SELECT, whose parameters stay bound. Read-only
# and takes no row locks (no ANALYZE), so safe beside any writer.
EXPLAIN_ROWS_PREFIX = "EXPLAIN (FORMAT JSON) "


class PostgresEngine(GenericEngine):
    """Raw SQL for enqueue, the worker's hot path, recovery and pruning; the
    rest (workers, operator actions, dead-letter retries, admin name lists) is
    inherited from :class:`GenericEngine`, whose ORM queries are as good here."""

    supports_notify = True
    estimates_rows = True

    @property
    def notify_enabled(self) -> bool:
        return notify_enabled()

    # -- enqueue ---------------------------------------------------------

    def insert_jobs(self, rows: Sequence[NewJob]) -> list[Inserted]:
        if len(rows) == 1 and rows[0].idempotency_key is None:
            return [Inserted(self._insert_one(rows[0]), created=True)]
        with transaction.atomic(using=self.alias), hot_cursor(self.connection) as cursor:
            cursor.execute(
                INSERT_JOBS,
                {
                    "task_name": [r.task_name for r in rows],
                    "queue_name": [r.queue_name for r in rows],
                    "priority": [r.priority for r in rows],
                    "args": [r.args_json for r in rows],
                    "kwargs": [r.kwargs_json for r in rows],
                    "run_after": [r.run_after for r in rows],
                    "max_attempts": [r.max_attempts for r in rows],
                    "timeout": [r.timeout for r in rows],
                    "idempotency_key": [r.idempotency_key for r in rows],
                    "notify": self.notify_enabled,
                    "channel": JOBS_CHANNEL,
                },
            )
            # RETURNING yields exactly the rows this statement inserted: ON
            # CONFLICT DO NOTHING returns nothing for a skipped one. So a row
            # is "created" by what the database did, not by an earlier read.
            inserted = sorted(cursor.fetchall())  # by id == input order
            build = builder(Job, database=self.alias)
            results: list[Inserted | None] = [None] * len(rows)
            created: list[Job] = []
            taken: dict[str, Job] = {}
            position = 0
            for index, row in enumerate(rows):
                key = row.idempotency_key
                if key is not None and key in taken:
                    results[index] = Inserted(taken[key], created=False)  # same key twice
                    continue
                if position < len(inserted) and (key is None or inserted[position][3] == key):
                    job_id, run_after, enqueued_at, _, _ = inserted[position]
                    position += 1
                    job = build(
                        row.model_fields(id=job_id, run_after=run_after, enqueued_at=enqueued_at)
                    )
                    created.append(job)
                    results[index] = Inserted(job, created=True)
                    if key is not None:
                        taken[key] = job
            missing = [
                r.idempotency_key
                for i, r in enumerate(rows)
                if results[i] is None and r.idempotency_key is not None
            ]
            if missing:
                existing = {
                    job.idempotency_key: job
                    for job in Job.objects.using(self.alias).raw(SELECT_ACTIVE_BY_KEYS, [missing])
                }
                for index, row in enumerate(rows):
                    if results[index] is None and row.idempotency_key is not None:
                        found = existing.get(row.idempotency_key)
                        # None: the holder finished between our insert and our
                        # read; insert again (and report what that insert did).
                        results[index] = (
                            Inserted(found, created=False)
                            if found is not None
                            else self.insert_jobs([row])[0]
                        )
        self._after_enqueue(created)
        return [result for result in results if result is not None]

    def _insert_one(self, row: NewJob) -> Job:
        with hot_cursor(self.connection) as cursor:
            cursor.execute(
                INSERT_ONE_JOB,
                {
                    "task_name": row.task_name,
                    "queue_name": row.queue_name,
                    "priority": row.priority,
                    "args": row.args_json,
                    "kwargs": row.kwargs_json,
                    "run_after": row.run_after,
                    "max_attempts": row.max_attempts,
                    "timeout": row.timeout,
                    "notify": self.notify_enabled,
                    "channel": JOBS_CHANNEL,
                },
            )
            job_id, run_after, enqueued_at, _ = cursor.fetchone()
        job = new_job_model(
            row, self.alias, id=job_id, run_after=run_after, enqueued_at=enqueued_at
        )
        self._after_enqueue([job])
        return job

    # -- worker hot path -------------------------------------------------

    def claim_jobs(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_seconds, "limit": limit}
        if queues:
            statement, params["queues"] = CLAIM_JOBS_IN_QUEUES, list(queues)
        else:
            statement = CLAIM_JOBS_ALL_QUEUES
        with hot_cursor(self.connection) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        return self._claimed(rows, worker_id)

    def _claimed(self, rows: Sequence[Sequence[Any]], worker_id: uuid.UUID) -> list[ClaimedJob]:
        return in_claim_order(claimed_from_rows(rows, worker_id, self.alias))

    def _claimed_combined(
        self, rows: Sequence[Sequence[Any]], worker_id: uuid.UUID
    ) -> list[ClaimedJob]:
        """The claims among COMPLETE_AND_CLAIM_* rows (is_claim true, then the columns)."""
        return in_claim_order(claimed_from_flagged_rows(rows, worker_id, self.alias))

    def complete_and_claim(
        self,
        completions: Sequence[Completion],
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
    ) -> tuple[set[int], list[ClaimedJob]]:
        if limit <= 0:
            return self.complete_jobs(completions), []
        params: dict[str, Any] = {
            "worker_id": worker_id,
            "lease": lease_seconds,
            "limit": limit,
            "done_ids": [c.job.id for c in completions],
            "done_tokens": [c.job.claim_token for c in completions],
            "done_results": [c.result_json for c in completions],
        }
        if queues:
            statement, params["queues"] = COMPLETE_AND_CLAIM_IN_QUEUES, list(queues)
        else:
            statement = COMPLETE_AND_CLAIM_ALL_QUEUES
        with hot_cursor(self.connection) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        done = {row[1] for row in rows if not row[0]}
        return done, self._claimed_combined(rows, worker_id)

    def complete_jobs(self, completions: Sequence[Completion]) -> set[int]:
        if not completions:
            return set()
        with hot_cursor(self.connection) as cursor:
            cursor.execute(
                COMPLETE_JOBS,
                [
                    [c.job.id for c in completions],
                    [c.job.claim_token for c in completions],
                    [c.result_json for c in completions],
                ],
            )
            return {row[0] for row in cursor.fetchall()}

    def release_jobs(self, jobs: Sequence[ClaimedJob]) -> int:
        if not jobs:
            return 0
        with self.connection.cursor() as cursor:
            cursor.execute(
                RELEASE_JOBS,
                [
                    [j.id for j in jobs],
                    [j.claim_token for j in jobs],
                    self.notify_enabled,
                    JOBS_CHANNEL,
                ],
            )
            return len(cursor.fetchall())

    def heartbeat(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> int:
        if not jobs:
            return 0
        with self.connection.cursor() as cursor:
            cursor.execute(
                RENEW_LEASES,
                {
                    "ids": [job.id for job in jobs],
                    "tokens": [job.claim_token for job in jobs],
                    "lease": lease_seconds,
                },
            )
            return int(cursor.rowcount)

    def recover_expired(self, limit: int = 500) -> RecoveryReport:
        with self.connection.cursor() as cursor:
            cursor.execute(
                RECOVER_EXPIRED,
                {
                    "limit": limit,
                    "message": LOST_WORKER_MESSAGE.replace("{worker}", "%s"),
                    "reason": LOST_WORKER_REASON.replace("{attempts}", "%s").replace(
                        "{max_attempts}", "%s"
                    ),
                    "notify": self.notify_enabled,
                    "channel": JOBS_CHANNEL,
                },
            )
            rows = cursor.fetchall()
        retried = dead = 0
        for job_id, task_name, status, attempts, max_attempts, worker_id, _ in rows:
            extra = {"job_id": job_id, "task_name": task_name}
            if status == JobStatus.READY:
                retried += 1
                logger.warning(
                    "job %s (%s) recovered from lost worker %s (attempt %s/%s counted)",
                    job_id,
                    task_name,
                    worker_id,
                    attempts,
                    max_attempts,
                    extra=extra,
                )
            else:
                dead += 1
                logger.error(
                    "job %s (%s) dead-lettered: %s",
                    job_id,
                    task_name,
                    LOST_WORKER_REASON.format(attempts=attempts, max_attempts=max_attempts),
                    extra=extra,
                )
        return RecoveryReport(retried=retried, dead_lettered=dead)

    def prune_finished(self, finished_before: datetime, batch_size: int) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(PRUNE_FINISHED, {"before": finished_before, "limit": batch_size})
            return int(cursor.rowcount)

    def drop_stale_connection(self) -> None:
        # A backend terminated while idle (pg_terminate_backend, server restart)
        # has already sent its last message and closed the socket: it is
        # readable although no query is pending. One poll() instead of a
        # "SELECT 1" round trip before every job.
        raw = self.connection.connection
        if raw is not None and not self.connection.in_atomic_block:
            try:
                poller = select.poll()
                poller.register(raw.fileno(), select.POLLIN | select.POLLHUP)
                readable = bool(poller.poll(0))
            except (OSError, ValueError, psycopg.Error):
                readable = True
            if readable:
                logger.info("database connection was closed by the server; reconnecting")
                self.connection.close()
                return
        super().drop_stale_connection()

    def estimate_rows(self, queryset: QuerySet[Any]) -> int:
        sql, params = queryset.order_by().query.sql_with_params()
        with self.connection.cursor() as cursor:
            cursor.execute(EXPLAIN_ROWS_PREFIX + sql, params)
            plan: Any = from_jsonb(cursor.fetchone()[0])
        return int(plan[0]["Plan"]["Plan Rows"])
