"""PostgreSQL engine: the hot path in raw SQL; the rest (workers, operator
actions, dead-letter retries) is inherited from the ORM engine, ``generic``.

The statements, each with its concurrency comment, are in ``postgres_sql``;
the connection plumbing (prepared cursor, channels) is in ``pg``.
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
    claimed_from_flagged_rows,
    claimed_from_rows,
    in_claim_order,
)
from django_jobs.engine.generic import GenericEngine
from django_jobs.engine.instances import builder, new_job_model
from django_jobs.engine.pg import JOBS_CHANNEL, hot_cursor, notify_enabled
from django_jobs.engine.postgres_sql import (
    CLAIM_JOBS_ALL_QUEUES,
    CLAIM_JOBS_IN_QUEUES,
    COMPLETE_AND_CLAIM_ALL_QUEUES,
    COMPLETE_AND_CLAIM_IN_QUEUES,
    COMPLETE_JOBS,
    EXPLAIN_ROWS_PREFIX,
    INSERT_JOBS,
    INSERT_ONE_JOB,
    PRUNE_FINISHED,
    RECOVER_EXPIRED,
    RELEASE_JOBS,
    RENEW_LEASES,
    SELECT_ACTIVE_BY_KEYS,
)
from django_jobs.engine.workflows_postgres_sql import LOCK_WORKFLOW, NOTIFY_QUEUES
from django_jobs.models import Job, Workflow
from django_jobs.rows import ClaimedJob, Completion, Inserted, NewJob, RecoveryReport
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.engine")


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
        if any(c.job.workflow_id is not None for c in completions):
            # Workflow steps: completion and advance in their own transaction,
            # before the claim (see engine.workflows: no lock held across both).
            return self.complete_jobs(completions), self.claim_jobs(
                worker_id, queues, limit, lease_seconds
            )
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
        if any(c.job.workflow_id is not None for c in completions):
            with transaction.atomic(using=self.alias):
                done = self._complete(completions)
                self.advance_completed([c for c in completions if c.job.id in done])
            return done
        return self._complete(completions)

    def _complete(self, completions: Sequence[Completion]) -> set[int]:
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

    # -- workflows (the rest: engine.workflows) ------------------------------

    def _lock_workflow(self, workflow_id: int) -> Workflow | None:
        found = list(Workflow.objects.using(self.alias).raw(LOCK_WORKFLOW, [workflow_id]))
        return found[0] if found else None

    def _insert_step_jobs(self, jobs: list[Job]) -> None:
        super()._insert_step_jobs(jobs)
        if self.notify_enabled:
            with self.connection.cursor() as cursor:
                queues = sorted({job.queue_name for job in jobs})
                cursor.execute(NOTIFY_QUEUES, [JOBS_CHANNEL, queues])

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
