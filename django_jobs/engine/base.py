"""The engine interface: every database operation the worker, admin and
outbox need, named verb_noun. Implementations: ``generic`` (Django ORM, any
database) and ``postgres`` (raw SQL on the hot path).

Rules every implementation keeps:

- Every write after a claim is fenced on ``id`` AND ``claim_token`` AND
  ``status = RUNNING``; a rowcount of 0 means the claim was lost (the lease
  expired and another worker took over): log it and move on.
- A job that gives up moves to FAILED and gets its DeadLetter row in the same
  transaction.
"""

from __future__ import annotations

import abc
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models.functions import Now
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.rows import (
    ClaimedJob,
    Completion,
    Failure,
    Inserted,
    NewJob,
    RecoveryReport,
    WorkerInfo,
)
from django_jobs.status import JobStatus

logger = logging.getLogger("django_jobs.engine")


# Texts of recovery, shared by every engine (PostgreSQL formats them in SQL).
LOST_WORKER_MESSAGE = (
    "worker {worker} stopped renewing its lease (killed, crashed, paused or cut off "
    "from the database); job recovered"
)
LOST_WORKER_REASON = (
    "worker lost during attempt {attempts} of {max_attempts} (killed, crashed, paused "
    "or cut off from the database); no attempts left"
)


def lost_worker_error(job_id: int, attempts: int, worker_id: str | None) -> dict[str, Any]:
    return {
        "attempt": attempts,
        "exception_class": "django_jobs.exceptions.WorkerLost",
        "message": LOST_WORKER_MESSAGE.format(worker=worker_id or ""),
        "traceback": "",
        "at": timezone.now().isoformat(),
        "worker_id": worker_id,
    }


class Engine(abc.ABC):
    """Database operations for one database alias."""

    # True if claim wake-ups can use LISTEN/NOTIFY.
    supports_notify: bool = False

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    # -- enqueue ---------------------------------------------------------

    @abc.abstractmethod
    def insert_jobs(self, rows: Sequence[NewJob]) -> list[Inserted]:
        """Insert jobs in the caller's transaction; return them in input order.

        A row whose idempotency key is held by a READY/RUNNING job returns
        that existing job (``created`` False) and inserts nothing. The answer
        comes from the insert itself, so it holds under concurrent enqueues.
        """

    # -- worker hot path -------------------------------------------------

    @abc.abstractmethod
    def claim_jobs(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` runnable jobs in claim order (one statement on PG)."""

    @abc.abstractmethod
    def complete_jobs(self, completions: Sequence[Completion]) -> set[int]:
        """Mark jobs SUCCESSFUL; returns the ids whose claim still held."""

    def complete_and_claim(
        self,
        completions: Sequence[Completion],
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """``complete_jobs`` then ``claim_jobs`` (``limit`` > 0), in one round trip where
        the database allows: the worker's steady state."""
        done = self.complete_jobs(completions) if completions else set()
        claimed = self.claim_jobs(worker_id, queues, limit, lease_seconds) if limit > 0 else []
        return done, claimed

    @abc.abstractmethod
    def fail_job(self, failure: Failure) -> bool:
        """Record a failed attempt: retry at ``retry_at`` or FAILED + dead letter."""

    @abc.abstractmethod
    def release_jobs(self, jobs: Sequence[ClaimedJob]) -> int:
        """Hand unfinished jobs back to READY, attempt not counted (graceful shutdown)."""

    @abc.abstractmethod
    def heartbeat(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> int:
        """Renew the leases of ``jobs``, the claims this worker still holds.

        Renewal is by id AND claim token, never "every job of this worker": a
        claim whose answer was lost with the connection is unknown to the
        worker, is not renewed, and expires into recovery instead of staying
        RUNNING forever. Returns the number of leases renewed.
        """

    @abc.abstractmethod
    def recover_expired(self, limit: int = 500) -> RecoveryReport:
        """Re-queue (or dead-letter) RUNNING jobs whose lease expired.

        The attempt that was running counts: a WorkerLost entry is appended to
        the job's errors. Jobs being written right now (row locked) are skipped.
        """

    def drop_stale_connection(self) -> None:
        """Before a job: close this thread's connection if it is broken, or older
        than a positive CONN_MAX_AGE, so the job starts on a working one instead
        of failing (and spending an attempt) on its first query.

        CONN_MAX_AGE = 0 (Django's default, "close after each request") is not
        applied per job: reconnecting for every job would cost more than the job.
        """
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
        """Record a heartbeat on the Worker row; re-create the row if it was pruned
        (a worker paused for longer than the pruning threshold comes back)."""
        workers = Worker.objects.using(self.alias)
        if not workers.filter(id=info.id).update(last_heartbeat_at=Now()):
            self.register_worker(info)

    def unregister_worker(self, worker_id: uuid.UUID) -> None:
        Worker.objects.using(self.alias).filter(id=worker_id).delete()

    def prune_dead_workers(self, older_than_seconds: float) -> int:
        """Delete Worker rows whose heartbeat stopped long ago."""
        cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
        deleted, _ = Worker.objects.using(self.alias).filter(last_heartbeat_at__lt=cutoff).delete()
        return deleted

    # -- operator actions (admin, CLI) ----------------------------------

    def retry_jobs(self, ids: Sequence[int]) -> int:
        """FAILED/CANCELLED -> READY now with fresh attempts; history kept."""
        return (
            Job.objects.using(self.alias)
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
            )
        )

    def cancel_jobs(self, ids: Sequence[int]) -> int:
        """READY -> CANCELLED. Running jobs are not touched."""
        return (
            Job.objects.using(self.alias)
            .filter(pk__in=ids, status=JobStatus.READY)
            .update(status=JobStatus.CANCELLED, finished_at=Now())
        )

    def run_jobs_now(self, ids: Sequence[int]) -> int:
        """Scheduled READY jobs become due now."""
        return (
            Job.objects.using(self.alias)
            .filter(pk__in=ids, status=JobStatus.READY)
            .update(run_after=Now())
        )

    def retry_dead_letters(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Re-enqueue dead letters not retried yet; returns (dead letter id, new job id)."""
        done: list[tuple[int, int]] = []
        with transaction.atomic(using=self.alias):
            letters = (
                DeadLetter.objects.using(self.alias)
                .select_for_update()
                .filter(pk__in=ids, retried_at__isnull=True)
                .order_by("pk")
            )
            for letter in letters:
                job = Job.objects.using(self.alias).create(
                    task_name=letter.task_name,
                    queue_name=letter.queue_name,
                    priority=letter.priority,
                    args=letter.args,
                    kwargs=letter.kwargs,
                    max_attempts=max(letter.max_attempts, 1),
                    meta={"retried_from_dead_letter": letter.pk, "original_job": letter.job_id},
                )
                letter.retried_at = timezone.now()
                letter.retried_job_id = job.pk
                letter.save(update_fields=["retried_at", "retried_job_id"])
                done.append((letter.pk, job.pk))
        return done

    def prune_finished(self, finished_before: datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` finished jobs older than ``finished_before``.

        One bounded statement per call; callers loop (see ``django_jobs.pruning``).
        """
        old = Job.objects.using(self.alias).finished().filter(finished_at__lt=finished_before)
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
        """How many finished jobs are older than ``finished_before`` (for dry runs)."""
        return (
            Job.objects.using(self.alias).finished().filter(finished_at__lt=finished_before).count()
        )
