"""PostgreSQL engine: the hot path in raw SQL; the rest (workers, operator
actions, dead-letter retries) is inherited from the ORM engine, ``generic``.

The statements, each with its concurrency comment, are in ``postgres_sql``;
the connection plumbing (prepared cursor, channels) is in ``pg``.
"""

from __future__ import annotations

import logging
import select
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import transaction
from django.db.models import QuerySet

from django_jobs.codec import from_jsonb
from django_jobs.conf import jobs_settings
from django_jobs.engine import postgres_notify
from django_jobs.engine.base import LOST_WORKER_MESSAGE, LOST_WORKER_REASON
from django_jobs.engine.claimed import (
    claimed_from_flagged_rows,
    claimed_from_rows,
    in_claim_order,
)
from django_jobs.engine.flow_postgres import PostgresFlowOperations
from django_jobs.engine.generic import GenericEngine
from django_jobs.engine.instances import builder, new_job_model
from django_jobs.engine.pg import JOBS_CHANNEL, hot_cursor, notify_enabled, task_params
from django_jobs.engine.postgres_bulk import COPY_THRESHOLD, copy_insert
from django_jobs.engine.postgres_notify import notify_on_commit
from django_jobs.engine.postgres_sql import (
    CANCEL_JOBS,
    CLAIM_JOBS_ALL_QUEUES,
    CLAIM_JOBS_IN_QUEUES,
    COMPLETE_AND_CLAIM_ALL_QUEUES,
    COMPLETE_AND_CLAIM_IN_QUEUES,
    COMPLETE_JOBS,
    EXPLAIN_ROWS_PREFIX,
    INSERT_JOBS,
    INSERT_JOBS_UNIQUE_FOR,
    INSERT_ONE_JOB,
    LOCK_IDEMPOTENCY_KEYS,
    PRUNE_FINISHED,
    RECOVER_EXPIRED,
    RELEASE_JOBS,
    RENEW_LEASES,
    SELECT_HOLDERS_BY_KEYS,
    VACUUM_JOBS,
)
from django_jobs.engine.schedules_postgres import PostgresScheduleOperations
from django_jobs.engine.workflows_postgres import PostgresWorkflowOperations
from django_jobs.models import Job
from django_jobs.rows import (
    CancelReport,
    ClaimedJob,
    Completion,
    Inserted,
    NewJob,
    RecoveryReport,
    Renewal,
    TaskFilter,
)
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.engine")

# The first key of our advisory locks (LOCK_IDEMPOTENCY_KEYS): "jobs" in ASCII.
ADVISORY_NAMESPACE = 0x6A6F6273


class PostgresEngine(
    PostgresScheduleOperations, PostgresWorkflowOperations, PostgresFlowOperations, GenericEngine
):
    """Raw SQL for enqueue, the worker's hot path, recovery and pruning; the
    rest (workers, operator actions, dead-letter retries, admin name lists) is
    inherited from :class:`GenericEngine`, whose ORM queries are as good here."""

    supports_notify = True
    estimates_rows = True

    @property
    def notify_enabled(self) -> bool:
        return notify_enabled()

    def wake_queues(self, names: Iterable[str]) -> None:
        if self._enqueue_wakes:
            notify_on_commit(self.alias, names)

    @property
    def _enqueue_wakes(self) -> bool:
        """Whether an enqueue wakes workers: not in eager mode, where the
        enqueuing process runs the job on commit itself."""
        return notify_enabled() and not jobs_settings.EAGER

    # -- enqueue ---------------------------------------------------------

    def insert_jobs(self, rows: Sequence[NewJob]) -> list[Inserted]:
        if len(rows) == 1 and rows[0].idempotency_key is None and rows[0].lane is None:
            return [Inserted(self._insert_one(rows[0]), created=True)]
        unique = any(r.unique_for is not None for r in rows)
        with transaction.atomic(using=self.alias), hot_cursor(self.connection) as cursor:
            self._ensure_lanes(rows)
            if unique:
                keys = [r.idempotency_key for r in rows if r.unique_for is not None]
                cursor.execute(
                    LOCK_IDEMPOTENCY_KEYS, {"namespace": ADVISORY_NAMESPACE, "keys": keys}
                )
            if len(rows) >= COPY_THRESHOLD:
                # A plain cursor: nothing to prepare, and the staging table is new each time.
                with self.connection.cursor() as plain, self.connection.wrap_database_errors:
                    inserted, now = copy_insert(plain, rows)
            else:
                inserted, now = self._insert_bound(cursor, rows, unique), None
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
                if position < len(inserted) and (key is None or inserted[position][1] == key):
                    found = inserted[position]
                    position += 1
                    job_id = found[0]
                    if now is None:
                        run_after, enqueued_at = found[2], found[3]
                    else:  # COPY: what the insert stored, from now()
                        run_after, enqueued_at = row.run_after or now, now
                    job = build(
                        row.model_fields(id=job_id, run_after=run_after, enqueued_at=enqueued_at)
                    )
                    created.append(job)
                    results[index] = Inserted(job, created=True)
                    if key is not None:
                        taken[key] = job
            missing = [r for i, r in enumerate(rows) if results[i] is None and r.idempotency_key]
            if missing:
                holders = Job.objects.using(self.alias).raw(
                    SELECT_HOLDERS_BY_KEYS,
                    [[r.idempotency_key for r in missing], [r.unique_for for r in missing]],
                )
                # Ordered by id: the newest holder of a key is kept.
                existing = {job.idempotency_key: job for job in holders}
                for index, row in enumerate(rows):
                    if results[index] is None and row.idempotency_key is not None:
                        found = existing.get(row.idempotency_key)
                        # None: the holder finished between our insert and our
                        # read (and was enqueued before any unique_for period);
                        # insert again (and report what that insert did).
                        results[index] = (
                            Inserted(found, created=False)
                            if found is not None
                            else self.insert_jobs([row])[0]
                        )
        self.wake_queues(j.queue_name for j in created if j.run_after <= j.enqueued_at)
        self._after_enqueue(created)
        return [result for result in results if result is not None]

    def _insert_bound(
        self, cursor: Any, rows: Sequence[NewJob], unique: bool
    ) -> list[tuple[int, str | None, datetime, datetime]]:
        """INSERT_JOBS(_UNIQUE_FOR) with the rows bound as arrays: the
        inserted rows' (id, key, run_after, enqueued_at) in input order."""
        params: dict[str, Any] = {
            "task_name": [r.task_name for r in rows],
            "queue_name": [r.queue_name for r in rows],
            "priority": [r.priority for r in rows],
            "args": [r.args_json for r in rows],
            "kwargs": [r.kwargs_json for r in rows],
            "run_after": [r.run_after for r in rows],
            "max_attempts": [r.max_attempts for r in rows],
            "timeout": [r.timeout for r in rows],
            "idempotency_key": [r.idempotency_key for r in rows],
            "meta": [r.meta_json for r in rows],
            "flow_lane": [r.lane.key if r.lane else None for r in rows],
            "notify": self._enqueue_wakes and postgres_notify.NOTIFY_IN_STATEMENT,
            "channel": JOBS_CHANNEL,
        }
        if unique:
            params["unique_for"] = [r.unique_for for r in rows]
        cursor.execute(INSERT_JOBS_UNIQUE_FOR if unique else INSERT_JOBS, params)
        # RETURNING yields exactly the rows this statement inserted: ON
        # CONFLICT DO NOTHING returns nothing for a skipped one. So a row
        # is "created" by what the database did, not by an earlier read.
        return sorted((i, key, ra, ea) for i, ra, ea, key, _ in cursor.fetchall())

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
                    "meta": row.meta_json,
                    "flow_lane": None,
                    "notify": self._enqueue_wakes and postgres_notify.NOTIFY_IN_STATEMENT,
                    "channel": JOBS_CHANNEL,
                },
            )
            job_id, run_after, enqueued_at, _ = cursor.fetchone()
        if run_after <= enqueued_at:
            self.wake_queues([row.queue_name])
        job = new_job_model(
            row, self.alias, id=job_id, run_after=run_after, enqueued_at=enqueued_at
        )
        self._after_enqueue([job])
        return job

    # -- worker hot path -------------------------------------------------

    def claim_jobs(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        *,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        gated = self.claim_gated(worker_id, queues, limit, lease_seconds)
        free = self._claim_free(worker_id, queues, limit - len(gated), lease_seconds, tasks)
        return in_claim_order([*gated, *free])

    def _claim_free(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        params: dict[str, Any] = {"worker_id": worker_id, "lease": lease_seconds, "limit": limit}
        params.update(task_params(tasks))
        if queues:
            statement, params["queues"] = CLAIM_JOBS_IN_QUEUES, list(queues)
        else:
            statement = CLAIM_JOBS_ALL_QUEUES
        with hot_cursor(self.connection) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        return claimed_from_rows(rows, worker_id, self.alias)

    # Whether the last combined claim saw due jobs with a lane waiting (the
    # next one leaves them half the slots). A hint only (what is claimed is
    # decided under the lanes' locks), racy between threads at no cost.
    _lanes_waiting = False

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
        *,
        tasks: TaskFilter | None = None,
        lane_limit: int | None = None,
    ) -> tuple[set[int], list[ClaimedJob]]:
        if limit <= 0:
            return self.complete_jobs(completions), []
        lanes = limit if lane_limit is None else min(lane_limit, limit)
        if any(c.job.workflow_id is not None for c in completions):
            # Workflow steps: completion and advance in their own transaction,
            # before the claim (see engine.workflows: no lock held across both).
            return self.complete_jobs(completions), self.claim_jobs(
                worker_id, queues, limit, lease_seconds, tasks=tasks
            )
        if self._lanes_waiting:
            # Jobs with a lane wait: completions, lane-free claims (half the
            # slots at most, so a flood of them cannot starve the lanes) and
            # the gated claim in one statement (engine.flow_postgres).
            done, claimed, self._lanes_waiting = self.complete_and_claim_gated(
                completions, worker_id, queues, limit, lease_seconds, lanes, tasks
            )
            if done:
                self.record_circuit_successes(
                    {c.job.id: c.job.task_name for c in completions if c.job.id in done}
                )
            return done, in_claim_order(claimed)
        params: dict[str, Any] = {
            "worker_id": worker_id,
            "lease": lease_seconds,
            "limit": limit,
            "done_ids": [c.job.id for c in completions],
            "done_tokens": [c.job.claim_token for c in completions],
            "done_results": [c.result_json for c in completions],
            **task_params(tasks),
        }
        if queues:
            statement, params["queues"] = COMPLETE_AND_CLAIM_IN_QUEUES, list(queues)
        else:
            statement = COMPLETE_AND_CLAIM_ALL_QUEUES
        with hot_cursor(self.connection) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        done = {row[1] for row in rows if row[0] is False}
        if done:
            self.record_circuit_successes(
                {c.job.id: c.job.task_name for c in completions if c.job.id in done}
            )
        claimed = self._claimed_combined(rows, worker_id)
        self._lanes_waiting = waiting = any(row[0] is None for row in rows)
        if not waiting or len(claimed) >= limit:
            return done, claimed
        # Lane jobs wait and slots are left: the gated claim now (the next
        # cycle claims both in one statement, above).
        gated = self.claim_gated(worker_id, queues, min(limit - len(claimed), lanes), lease_seconds)
        return done, in_claim_order([*gated, *claimed])

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
            done = {row[0] for row in cursor.fetchall()}
        self.record_circuit_successes(
            {c.job.id: c.job.task_name for c in completions if c.job.id in done}
        )
        return done

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

    def renew_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> Renewal:
        if not jobs:
            return Renewal()
        with self.connection.cursor() as cursor:
            cursor.execute(
                RENEW_LEASES,
                {
                    "ids": [job.id for job in jobs],
                    "tokens": [job.claim_token for job in jobs],
                    "lease": lease_seconds,
                },
            )
            rows = cursor.fetchall()
        return Renewal(len(rows), frozenset(job_id for job_id, asked in rows if asked))

    def cancel(self, ids: Sequence[int]) -> CancelReport:
        if not ids:
            return CancelReport()
        with self.connection.cursor() as cursor:
            cursor.execute(CANCEL_JOBS, [list(ids)])
            rows = cursor.fetchall()
        return CancelReport(
            cancelled=tuple(sorted(i for i, status in rows if status == JobStatus.CANCELLED)),
            requested=tuple(sorted(i for i, status in rows if status == JobStatus.RUNNING)),
        )

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
        retried = dead = cancelled = 0
        for job_id, task_name, status, attempts, max_attempts, worker_id, _ in rows:
            extra = {"job_id": job_id, "task_name": task_name}
            if status == JobStatus.CANCELLED:
                cancelled += 1
                logger.warning(
                    "job %s (%s) cancelled; its worker %s was lost",
                    job_id,
                    task_name,
                    worker_id,
                    extra=extra,
                )
            elif status == JobStatus.READY:
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
        return RecoveryReport(retried=retried, dead_lettered=dead, cancelled=cancelled)

    def prune_finished(self, finished_before: datetime, batch_size: int) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(PRUNE_FINISHED, {"before": finished_before, "limit": batch_size})
            return int(cursor.rowcount)

    def vacuum_jobs(self) -> bool:
        if self.connection.in_atomic_block:
            raise RuntimeError("VACUUM cannot run inside a transaction (atomic block)")
        with self.connection.cursor() as cursor:
            cursor.execute(VACUUM_JOBS)
        return True

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
