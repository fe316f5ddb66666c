"""Run jobs in the calling thread, through the worker's own runner.

Used by ``django_jobs.testing.run_jobs`` and by eager mode
(``DJANGO_JOBS["EAGER"]``). A job is claimed (``Engine.claim_jobs_at``, fenced
by a claim token like any claim), run by :func:`~django_jobs.worker.runner.run_job`
(retry policy, ``atomic=True``, ``current_job()``, signals) and its outcome
written with ``complete_jobs`` / ``fail_job``: the same rows, dead letters and
retries a worker would write. Being the calling thread, it uses the calling
thread's connection, so jobs enqueued in an uncommitted transaction (a
``TestCase``) are visible to it. Not done here: timeouts (nothing can stop the
calling thread) and leases' renewal (a run is expected to end quickly).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction

from django_jobs import clock
from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine
from django_jobs.rows import ClaimedJob, Completion, Failure
from django_jobs.status import JobStatus
from django_jobs.worker.runner import Settled, run_job

logger = logging.getLogger("django_jobs.worker")


@dataclasses.dataclass(frozen=True)
class JobRun:
    """One attempt run in-process, as the database recorded it afterwards."""

    job_id: int
    task_name: str
    queue_name: str
    attempt: int  # 1 for the first attempt
    status: str  # JobStatus after the attempt: SUCCESSFUL, READY (a retry is due), FAILED...
    result: Any  # the task's return value (SUCCESSFUL), else None
    error: dict[str, Any] | None  # this attempt's entry of Job.errors, if it failed
    retry_at: datetime | None  # when the retry is due (status READY), else None
    database: str = "default"

    @property
    def succeeded(self) -> bool:
        return self.status == JobStatus.SUCCESSFUL

    @property
    def job(self) -> Any:
        """The Job row now (one query)."""
        # Imported here: django_jobs.models needs the app registry, this module does not.
        from django_jobs.models import Job

        return Job.objects.using(self.database).get(pk=self.job_id)


def run_claimed(
    job: ClaimedJob, *, skip_backoff: bool = False, raised: list[BaseException] | None = None
) -> JobRun:
    """Run one claimed job here and write its outcome; ``skip_backoff`` makes a
    retry due at once (at the clock's now) instead of after its delay;
    ``raised`` collects the exception the task raised, if any."""
    engine = get_engine(job.database)
    # Inside a transaction (a TestCase), a savepoint stands in for autocommit: a
    # database error in the body would otherwise abort the test's transaction.
    if connections[job.database].in_atomic_block:
        with transaction.atomic(using=job.database):
            outcome = run_job(job, raised=raised)
            if isinstance(outcome, Failure):
                transaction.set_rollback(True, using=job.database)
    else:
        outcome = run_job(job, raised=raised)
    if isinstance(outcome, Completion):
        if job.id not in engine.complete_jobs([outcome]):
            logger.warning("job %s: completion ignored, the claim was lost", job.id)
    elif isinstance(outcome, Failure):
        if skip_backoff and outcome.retry_at is not None:
            outcome = dataclasses.replace(outcome, retry_at=clock.now())
        if not engine.fail_job(outcome):
            logger.warning("job %s: failure ignored, the claim was lost", job.id)
    elif outcome is Settled.LOST:
        logger.warning("job %s: claim lost while running", job.id)
    return _recorded(job)


def _recorded(job: ClaimedJob) -> JobRun:
    # Imported here: django_jobs.models needs the app registry, this module does not.
    from django_jobs.models import Job

    row = (
        Job.objects.using(job.database)
        .filter(pk=job.id)
        .values("status", "result", "errors", "run_after")
        .first()
    )
    status = row["status"] if row else "DELETED"
    errors = row["errors"] if row else []
    error = errors[-1] if errors and errors[-1].get("attempt") == job.attempts else None
    return JobRun(
        job_id=job.id,
        task_name=job.task_name,
        queue_name=job.queue_name,
        attempt=job.attempts,
        status=status,
        result=row["result"] if row and status == JobStatus.SUCCESSFUL else None,
        error=error,
        retry_at=row["run_after"] if row and status == JobStatus.READY else None,
        database=job.database,
    )


def claim_one(
    database: str,
    queues: Sequence[str] | None,
    worker_id: uuid.UUID,
    *,
    ids: Sequence[int] | None = None,
) -> ClaimedJob | None:
    """Claim the next due job (claim order) at the clock's now, or None."""
    claimed = get_engine(database).claim_jobs_at(
        worker_id,
        queues,
        1,
        float(jobs_settings.LEASE_SECONDS),
        now=clock.now(),
        ids=ids,
    )
    return claimed[0] if claimed else None
