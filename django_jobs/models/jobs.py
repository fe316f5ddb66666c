"""Job and DeadLetter, with intent-named querysets.

Hot-path indexes are partial, so millions of finished rows never slow
claiming: the claim index holds READY rows only, the lease index RUNNING rows
only, and the idempotency index READY/RUNNING rows only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from django_jobs.codec import encode_payload
from django_jobs.conf import jobs_settings
from django_jobs.context import is_cancel_requested
from django_jobs.status import FINISHED_STATUSES, JobStatus

_ACTIVE = Q(status__in=[JobStatus.READY, JobStatus.RUNNING])


class JobQuerySet(models.QuerySet["Job"]):
    def ready(self) -> JobQuerySet:
        """READY jobs, due or scheduled."""
        return self.filter(status=JobStatus.READY)

    def runnable(self) -> JobQuerySet:
        """READY jobs whose run_after has come."""
        return self.filter(status=JobStatus.READY, run_after__lte=Now())

    def scheduled(self) -> JobQuerySet:
        """READY jobs waiting for a future run_after (delayed or retrying)."""
        return self.filter(status=JobStatus.READY, run_after__gt=Now())

    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def successful(self) -> JobQuerySet:
        return self.filter(status=JobStatus.SUCCESSFUL)

    def failed(self) -> JobQuerySet:
        return self.filter(status=JobStatus.FAILED)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def for_queues(self, queues: Sequence[str] | None) -> JobQuerySet:
        """Jobs in these queues; ``None`` or empty means every queue."""
        return self.filter(queue_name__in=queues) if queues else self

    def expired_leases(self) -> JobQuerySet:
        """RUNNING jobs whose worker stopped renewing the lease."""
        return self.filter(status=JobStatus.RUNNING, lease_expires_at__lt=Now())

    def claim_order(self) -> JobQuerySet:
        """Higher priority first, then oldest due first (FIFO), then id."""
        return self.order_by("-priority", "run_after", "id")


class Job(models.Model):
    """One run (with retries) of a task."""

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=255, help_text="Dotted import path of the task.")
    queue_name = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0, help_text="-100..100, higher runs sooner.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.READY)
    run_after = models.DateTimeField(db_default=Now(), help_text="Not claimed before this time.")
    requested_run_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="run_after as given at enqueue (empty: as soon as possible); "
        "run_after moves with retries.",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts started so far.")
    max_attempts = models.PositiveIntegerField(default=3)
    timeout = models.FloatField(default=300.0, help_text="Seconds before the job is failed.")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="One entry per failed attempt.")
    progress = models.JSONField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True, help_text="Free-form metadata.")
    enqueued_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="Start of the first attempt of this run."
    )
    last_attempted_at = models.DateTimeField(
        null=True, blank=True, help_text="Start of the latest attempt."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.UUIDField(
        null=True, blank=True, help_text="Worker running it (last attempt)."
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, help_text="Fences writes after a claim.")
    cancel_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When an operator cancelled it while RUNNING; its worker stops it.",
    )
    flow_lane = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="Concurrency / rate gate (FlowLane key); empty: claimed without one.",
    )
    workflow = models.ForeignKey(
        "django_jobs.Workflow",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
        db_index=False,  # jobs_job_workflow below: partial, plain jobs never touch it
        help_text="The workflow this job is a step of.",
    )
    workflow_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its step's position in the workflow."
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Claiming, all queues: READY rows in claim order.
            models.Index(
                models.F("priority").desc(),
                "run_after",
                "id",
                name="jobs_job_ready_claim",
                condition=Q(status=JobStatus.READY, flow_lane__isnull=True),
            ),
            # Claiming from named queues.
            models.Index(
                "queue_name",
                models.F("priority").desc(),
                "run_after",
                "id",
                name="jobs_job_ready_queue",
                condition=Q(status=JobStatus.READY, flow_lane__isnull=True),
            ),
            # Gated claiming: the lanes with READY jobs (skip scan), each
            # lane's head jobs in claim order.
            models.Index(
                "flow_lane",
                models.F("priority").desc(),
                "run_after",
                "id",
                name="jobs_job_ready_lane",
                condition=Q(status=JobStatus.READY, flow_lane__isnull=False),
            ),
            # Gated claiming: RUNNING jobs per lane.
            models.Index(
                fields=["flow_lane"],
                name="jobs_job_running_lane",
                condition=Q(status=JobStatus.RUNNING, flow_lane__isnull=False),
            ),
            # Recovery of jobs whose worker died.
            models.Index(
                fields=["lease_expires_at"],
                name="jobs_job_running_lease",
                condition=Q(status=JobStatus.RUNNING),
            ),
            # Pruning and "finished in the last hour" statistics.
            models.Index(
                fields=["finished_at"],
                name="jobs_job_finished",
                condition=Q(status__in=sorted(FINISHED_STATUSES)),
            ),
            # Admin: filter by status newest first.
            models.Index(fields=["status", "-id"], name="jobs_job_status_id"),
            # Admin: filter by task / queue newest first, and list their distinct
            # values with a skip scan instead of SELECT DISTINCT over the table.
            models.Index(fields=["task_name", "-id"], name="jobs_job_task_id"),
            models.Index(fields=["queue_name", "-id"], name="jobs_job_queue_id"),
            # Admin: search by idempotency key, finished jobs included (the unique
            # index only holds active ones). Rows without a key stay out of it.
            models.Index(
                fields=["idempotency_key"],
                name="jobs_job_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
            # A workflow's jobs (admin, cancel). Partial: inserting a plain job
            # (workflow_id NULL) does not touch it.
            models.Index(
                fields=["workflow"],
                name="jobs_job_workflow",
                condition=Q(workflow__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=_ACTIVE & Q(idempotency_key__isnull=False),
                name="jobs_job_active_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100),
                name="jobs_job_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1), name="jobs_job_max_attempts_positive"
            ),
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="jobs_job_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} {self.task_name} [{self.status}]"

    @property
    def attempt(self) -> int:
        """The attempt number being run (1 = first run)."""
        return self.attempts

    @property
    def is_scheduled(self) -> bool:
        return self.status == JobStatus.READY and self.run_after > timezone.now()

    def set_progress(self, progress: Any) -> bool:
        """Record JSON progress for a running job.

        Fenced by the claim token: returns False (and writes nothing) if this
        worker no longer owns the job.
        """
        # Raise here, not in SQL, for what cannot be stored.
        encode_payload(progress, "progress", jobs_settings.MAX_PAYLOAD_BYTES)
        rows = Job.objects.filter(
            pk=self.pk, claim_token=self.claim_token, status=JobStatus.RUNNING
        ).update(progress=progress)
        if rows:
            self.progress = progress
        return bool(rows)

    @property
    def cancel_requested(self) -> bool:
        """Whether this job's cancel was requested; inside the task, once its
        worker heard of it (within a heartbeat interval)."""
        return self.cancel_requested_at is not None or (
            self.pk is not None and is_cancel_requested(self.pk)
        )

    def cancel(self) -> bool:
        """Cancel this job: a READY one ends CANCELLED now; a RUNNING one gets
        ``cancel_requested_at`` and its worker stops it within a few seconds (it
        ends CANCELLED, never retried). False (nothing written) when the job has
        finished already. Reloads the instance."""
        # engine imports this module (the models): not at its import time.
        from django_jobs.engine import get_engine

        report = get_engine(self._state.db or "default").cancel([self.pk])
        self.refresh_from_db()
        return bool(report.total)

    def refresh(self) -> Job:
        """Reload every field from the database and return self."""
        self.refresh_from_db()
        return self

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def wait(self, timeout: float | None = None, *, interval: float = 0.05) -> Job:
        """Block until the job is SUCCESSFUL, FAILED or CANCELLED; return self, refreshed.

        Polls the database, starting every ``interval`` seconds and backing off
        to 1 s. Raises ``TimeoutError`` after ``timeout`` seconds (``None``:
        wait forever). A job enqueued in a transaction that is still open cannot
        run yet: commit before waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh_from_db()
            if self.is_finished:
                return self
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"job {self.pk} ({self.task_name}) is still {self.status} "
                        f"after {timeout:g}s"
                    )
                interval = min(interval, remaining)
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)


class Overview(Job):
    """No table of its own: gives the admin overview page its place in the admin index."""

    class Meta:
        proxy = True
        verbose_name = "overview"
        verbose_name_plural = "overview"


class DeadLetter(models.Model):
    """A job that will not be retried automatically, kept after jobs are pruned."""

    id = models.BigAutoField(primary_key=True)
    job_id = models.BigIntegerField(db_index=True, help_text="The original job.")
    task_name = models.CharField(max_length=255)
    queue_name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    retried_at = models.DateTimeField(null=True, blank=True)
    retried_job_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Admin: filter by task / queue, and their distinct values (skip scan).
            models.Index(fields=["task_name", "-id"], name="jobs_deadletter_task_id"),
            models.Index(fields=["queue_name", "-id"], name="jobs_deadletter_queue_id"),
        ]

    def __str__(self) -> str:
        return f"Dead letter {self.pk} (job {self.job_id} {self.task_name})"
