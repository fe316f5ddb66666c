"""The portable engine: every operation of :class:`~django_jobs.engine.base.Engine`
through the Django ORM, correct on SQLite, MySQL/MariaDB and PostgreSQL.
PostgreSQL subclasses it and replaces the hot path with raw SQL.

Concurrency on SQLite relies on ``transaction_mode = "IMMEDIATE"``: every
``atomic()`` block takes the write lock when it begins, so a claim's
read-then-update can never interleave with another writer's. On MySQL and
PostgreSQL, ``select_for_update(skip_locked=True)`` does the same per row.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from django_jobs import signals
from django_jobs.conf import jobs_settings
from django_jobs.engine.base import (
    LOST_WORKER_MESSAGE,
    LOST_WORKER_REASON,
    Engine,
    NameColumn,
    NamedTable,
)
from django_jobs.engine.cancel import CancelOperations
from django_jobs.engine.flow import FlowOperations
from django_jobs.engine.instances import new_job_model
from django_jobs.engine.orm_claim import RELEASED, OrmClaims
from django_jobs.engine.schedules import ScheduleOperations
from django_jobs.engine.skip_scan import DISTINCT_NAMES
from django_jobs.engine.workflows import WorkflowOperations
from django_jobs.models import DeadLetter, Job, JobQuerySet, Worker
from django_jobs.observability.tracing import with_trace
from django_jobs.rows import (
    ClaimedJob,
    Completion,
    Failure,
    Inserted,
    NewJob,
    RecoveryReport,
    RetriedLetter,
    TaskFilter,
    WorkerInfo,
)
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.engine")


def lost_worker_error(job_id: int, attempts: int, worker_id: str | None) -> dict[str, Any]:
    return {
        "attempt": attempts,
        "exception_class": "django_jobs.exceptions.WorkerLost",
        "message": LOST_WORKER_MESSAGE.format(worker=worker_id or ""),
        "traceback": "",
        "at": timezone.now().isoformat(),
        "worker_id": worker_id,
    }


def dead_letter_for(job: Job, reason: str) -> Any:
    """An unsaved DeadLetter row describing ``job``."""
    return DeadLetter(
        job_id=job.pk,
        task_name=job.task_name,
        queue_name=job.queue_name,
        priority=job.priority,
        args=job.args,
        kwargs=job.kwargs,
        reason=reason,
        errors=job.errors,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
    )


class GenericEngine(
    WorkflowOperations, FlowOperations, OrmClaims, ScheduleOperations, CancelOperations, Engine
):
    """The Django ORM engine (PostgresEngine inherits what it does not replace)."""

    def _jobs(self) -> JobQuerySet:
        return Job.objects.using(self.alias)

    def _lockable(self, qs: JobQuerySet) -> JobQuerySet:
        features = self.connection.features
        if features.has_select_for_update_skip_locked:
            return qs.select_for_update(skip_locked=True)
        return qs  # SQLite: the IMMEDIATE transaction already serializes writers

    # -- enqueue ---------------------------------------------------------

    def _model_for(self, row: NewJob) -> Job:
        now = timezone.now()
        return new_job_model(row, run_after=row.run_after or now, enqueued_at=now)

    def insert_jobs(self, rows: Sequence[NewJob]) -> list[Inserted]:
        results: list[Inserted | None] = [None] * len(rows)
        plain: list[int] = []
        by_key: dict[str, Job] = {}
        created: list[Job] = []
        with transaction.atomic(using=self.alias):
            self._ensure_lanes(rows)
            for index, row in enumerate(rows):
                key = row.idempotency_key
                if key is None:
                    plain.append(index)
                    continue
                if key in by_key:
                    results[index] = Inserted(by_key[key], created=False)
                    continue
                # A savepoint per keyed row: a unique violation only undoes this row.
                # ``created`` is what the insert did, not what a read saw before
                # it: the partial unique index decides between concurrent enqueues
                # (unique_for: SQLite's IMMEDIATE transaction serializes them).
                for _ in range(5):
                    existing = self._existing_for(key, row.unique_for)
                    if existing is not None:
                        results[index] = Inserted(existing, created=False)
                        break
                    try:
                        with transaction.atomic(using=self.alias):
                            existing = self._model_for(row)
                            existing.save(using=self.alias, force_insert=True)
                        created.append(existing)
                        results[index] = Inserted(existing, created=True)
                        break
                    except IntegrityError:
                        continue  # someone else inserted it: read theirs
                else:
                    raise IntegrityError(f"could not enqueue with idempotency key {key!r}")
                by_key[key] = existing
            if plain:
                models = [self._model_for(rows[i]) for i in plain]
                inserted = self._jobs().bulk_create(models)
                created.extend(inserted)
                for index, job in zip(plain, inserted, strict=True):
                    results[index] = Inserted(job, created=True)
        self._after_enqueue(created)
        return [result for result in results if result is not None]

    def _after_enqueue(self, jobs: list[Job]) -> None:
        if jobs and signals.job_enqueued.has_listeners():

            def send() -> None:
                for job in jobs:
                    signals.job_enqueued.send_robust(sender=None, job=job)

            transaction.on_commit(send, using=self.alias)
        if jobs and jobs_settings.EAGER:
            # django_jobs.eager runs jobs through the worker's runner, which uses the engine.
            from django_jobs import eager

            eager.run_on_commit(self.alias, [job.pk for job in jobs])

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
        return self._claim_both(worker_id, queues, limit, lease_seconds, limit, tasks)

    def _claim_both(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        lane_limit: int,
        tasks: TaskFilter | None,
    ) -> list[ClaimedJob]:
        # Gated jobs first: a flood of lane-free jobs must not starve them.
        with transaction.atomic(using=self.alias):
            claimed = self.claim_gated(worker_id, queues, min(limit, lane_limit), lease_seconds)
            claimed += self._claim_free(
                worker_id, queues, limit - len(claimed), lease_seconds, tasks
            )
        claimed.sort(key=lambda job: (-job.priority, job.run_after, job.id))
        return claimed

    def _claim_free(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        """Claim jobs without a lane, of queues not paused (and of ``tasks``)."""
        if limit <= 0:
            return []
        now = timezone.now()
        due = Q(run_after__lte=now)
        if tasks is not None:
            named = Q(task_name__in=tasks.names)
            due &= named if tasks.include else ~named
        return self._claim(worker_id, queues, limit, lease_seconds, due, now, lanes=False)

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
        done = self.complete_jobs(completions) if completions else set()
        lanes = limit if lane_limit is None else lane_limit
        claimed = (
            self._claim_both(worker_id, queues, limit, lease_seconds, lanes, tasks)
            if limit > 0
            else []
        )
        return done, claimed

    def complete_jobs(self, completions: Sequence[Completion]) -> set[int]:
        done: set[int] = set()
        now = timezone.now()
        with transaction.atomic(using=self.alias):
            for completion in completions:
                job = completion.job
                updated = (
                    self._jobs()
                    .filter(pk=job.id, claim_token=job.claim_token, status=JobStatus.RUNNING)
                    .update(
                        status=JobStatus.SUCCESSFUL,
                        result=json.loads(completion.result_json),
                        finished_at=now,
                        lease_expires_at=None,
                    )
                )
                if updated:
                    done.add(job.id)
            if any(c.job.workflow_id is not None for c in completions):  # workflow steps
                self.advance_completed([c for c in completions if c.job.id in done])
        self.record_circuit_successes(
            {c.job.id: c.job.task_name for c in completions if c.job.id in done}
        )
        return done

    def fail_job(self, failure: Failure) -> bool:
        job = failure.job
        with transaction.atomic(using=self.alias):
            row = (
                self._jobs()
                .select_for_update()
                .filter(pk=job.id, claim_token=job.claim_token, status=JobStatus.RUNNING)
                .first()
            )
            if row is None:
                return False
            row.errors = [*row.errors, failure.error]
            row.lease_expires_at = None
            self.record_circuit_failure(row.task_name, row.pk)
            if row.cancel_requested_at is not None:  # cancelled: never retried
                row.status, row.finished_at = JobStatus.CANCELLED, timezone.now()
                row.save(update_fields=["status", "finished_at", "errors", "lease_expires_at"])
            elif failure.retry_at is not None:
                row.status = JobStatus.READY
                row.run_after = failure.retry_at
                row.save(update_fields=["status", "run_after", "errors", "lease_expires_at"])
            else:
                row.status = JobStatus.FAILED
                row.finished_at = timezone.now()
                row.save(update_fields=["status", "finished_at", "errors", "lease_expires_at"])
                dead_letter_for(row, failure.reason).save(using=self.alias)
                if row.workflow_id is not None:
                    self.advance_failed(row.pk, row.workflow_id, failure.reason)
        return True

    def release_jobs(self, jobs: Sequence[ClaimedJob]) -> int:
        released = 0
        with transaction.atomic(using=self.alias):
            for job in jobs:
                released += (
                    self._jobs()
                    .filter(pk=job.id, claim_token=job.claim_token, status=JobStatus.RUNNING)
                    .update(**RELEASED)
                )
        return released

    def release_orphans(self, worker_id: uuid.UUID, held: Sequence[int]) -> int:
        # Each row changed is RUNNING under our id and not held: no other
        # worker's claim, none of our running jobs. A concurrent recovery of
        # the row waits on its lock, then finds it released (or the reverse).
        running = self._jobs().filter(worker_id=worker_id, status=JobStatus.RUNNING)
        return running.exclude(pk__in=list(held)).update(**RELEASED)

    def recover_expired(self, limit: int = 500) -> RecoveryReport:
        retried = dead = cancelled = 0
        now = timezone.now()
        with transaction.atomic(using=self.alias):
            expired = self._lockable(
                self._jobs()
                .filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
                .order_by("lease_expires_at")
            )[:limit]
            for row in expired:
                worker = str(row.worker_id) if row.worker_id else None
                row.errors = [*row.errors, lost_worker_error(row.pk, row.attempts, worker)]
                row.lease_expires_at = None
                if row.cancel_requested_at is not None:  # cancelled: not run again
                    row.status, row.finished_at = JobStatus.CANCELLED, now
                    cancelled += 1
                    logger.warning(
                        "job %s (%s) cancelled; its worker was lost", row.pk, row.task_name
                    )
                elif row.attempts >= row.max_attempts:
                    row.status = JobStatus.FAILED
                    row.finished_at = now
                    reason = LOST_WORKER_REASON.format(
                        attempts=row.attempts, max_attempts=row.max_attempts
                    )
                    dead_letter_for(row, reason).save(using=self.alias)
                    dead += 1
                    logger.error(
                        "job %s (%s) dead-lettered: %s",
                        row.pk,
                        row.task_name,
                        reason,
                        extra={"job_id": row.pk, "task_name": row.task_name},
                    )
                else:
                    row.status = JobStatus.READY
                    row.run_after = now
                    retried += 1
                    logger.warning(
                        "job %s (%s) recovered from lost worker %s",
                        row.pk,
                        row.task_name,
                        worker,
                        extra={"job_id": row.pk, "task_name": row.task_name},
                    )
                row.save(
                    update_fields=[
                        "status",
                        "run_after",
                        "finished_at",
                        "errors",
                        "lease_expires_at",
                    ]
                )
        return RecoveryReport(retried=retried, dead_lettered=dead, cancelled=cancelled)

    def drop_stale_connection(self) -> None:
        # CONN_MAX_AGE = 0 (Django's default) is not applied per job: reconnecting costs more.
        conn = self.connection
        if conn.connection is None or conn.in_atomic_block:
            return
        aged = bool(conn.settings_dict.get("CONN_MAX_AGE")) and conn.close_at is not None
        if (conn.errors_occurred and not conn.is_usable()) or (
            aged and time.monotonic() >= conn.close_at
        ):
            conn.close()
        else:
            conn.errors_occurred = False

    # -- workers ---------------------------------------------------------

    def register_worker(self, info: WorkerInfo) -> None:
        Worker.objects.using(self.alias).create(
            id=info.id,
            hostname=info.hostname,
            pid=info.pid,
            queues=info.queues,
            concurrency=info.concurrency,
            pool=info.pool,
        )

    def touch_worker(self, info: WorkerInfo) -> None:
        workers = Worker.objects.using(self.alias)
        if not workers.filter(id=info.id).update(last_heartbeat_at=Now()):
            self.register_worker(info)

    def unregister_worker(self, worker_id: uuid.UUID) -> None:
        Worker.objects.using(self.alias).filter(id=worker_id).delete()

    def prune_dead_workers(self, older_than_seconds: float) -> int:
        cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
        deleted, _ = Worker.objects.using(self.alias).filter(last_heartbeat_at__lt=cutoff).delete()
        return deleted

    # -- operator actions (admin, CLI) ----------------------------------

    def wake_queues(self, names: Iterable[str]) -> None:
        pass  # no wake-ups here: workers find the jobs at their next poll

    def retry_jobs(self, ids: Sequence[int]) -> int:
        return (
            self._jobs()
            .filter(pk__in=ids, status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
            .update(
                status=JobStatus.READY,
                attempts=0,
                run_after=Now(),
                started_at=None,  # a new run: its first attempt sets them again
                last_attempted_at=None,
                finished_at=None,
                claim_token=None,
                lease_expires_at=None,
                cancel_requested_at=None,
            )
        )

    def run_jobs_now(self, ids: Sequence[int]) -> int:
        return self._jobs().filter(pk__in=ids, status=JobStatus.READY).update(run_after=Now())

    def retry_dead_letters(self, ids: Sequence[int]) -> list[RetriedLetter]:
        done: list[RetriedLetter] = []
        with transaction.atomic(using=self.alias):
            # Locked: a concurrent retry of the same letter waits, then sees it retried.
            letters = (
                DeadLetter.objects.using(self.alias)
                .select_for_update()
                .filter(pk__in=ids, retried_at__isnull=True)
                .order_by("pk")
            )
            for letter in letters:
                job = self._jobs().create(
                    task_name=letter.task_name,
                    queue_name=letter.queue_name,
                    priority=letter.priority,
                    args=letter.args,
                    kwargs=letter.kwargs,
                    max_attempts=max(letter.max_attempts, 1),
                    meta=with_trace(
                        {"retried_from_dead_letter": letter.pk, "original_job": letter.job_id}
                    ),
                )
                letter.retried_at = timezone.now()
                letter.retried_job_id = job.pk
                letter.save(update_fields=["retried_at", "retried_job_id"])
                done.append(RetriedLetter(letter.pk, job.pk))
        return done

    def prune_finished(self, finished_before: datetime, batch_size: int) -> int:
        old = self._jobs().finished().filter(finished_at__lt=finished_before)
        doomed = old.order_by("finished_at")
        if self.connection.features.has_select_for_update_skip_locked:
            # Several workers' pruners take disjoint rows, and a row locked right
            # now (an operator's retry) is skipped instead of waited for.
            doomed = doomed.select_for_update(skip_locked=True)
        with transaction.atomic(using=self.alias):
            ids = list(doomed.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return 0
            # The conditions again: a job an operator retried since the read is
            # READY now (finished_at cleared) and must survive.
            deleted, _ = old.filter(pk__in=ids).delete()
        return deleted

    def count_finished(self, finished_before: datetime) -> int:
        return self._jobs().finished().filter(finished_at__lt=finished_before).count()

    # -- admin reads (read-only) ------------------------------------------

    def distinct_names(self, table: NamedTable, column: NameColumn, limit: int) -> list[str]:
        with self.connection.cursor() as cursor:
            cursor.execute(DISTINCT_NAMES[table, column], [limit])
            return [row[0] for row in cursor.fetchall()]

    def estimate_rows(self, queryset: QuerySet[Any]) -> int:
        raise NotImplementedError(f"no row estimates on {self.connection.vendor}")
