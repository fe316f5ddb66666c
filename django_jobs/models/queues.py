"""Flow control state: Queue (pause) and FlowLane (a concurrency / rate gate).

A job whose ``flow_lane`` is NULL (the common case) is claimed by the fast
path; one with a lane is claimed only through its lane's row, which every
claimer locks (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's write lock)
before counting the lane's RUNNING jobs and recent starts.
"""

from __future__ import annotations

from django.db import models


class Queue(models.Model):
    """A queue's operator state. A queue without a row is not paused."""

    name = models.CharField(max_length=100, primary_key=True)
    paused = models.BooleanField(default=False, help_text="Its jobs are not claimed.")
    paused_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"queue {self.name}{' (paused)' if self.paused else ''}"


class FlowLane(models.Model):
    """One gate: at most ``concurrency_limit`` RUNNING jobs, at most
    ``rate_limit`` starts per ``rate_period`` seconds. Made (or its limits
    updated) when a job naming it is enqueued."""

    key = models.CharField(max_length=255, primary_key=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_period = models.FloatField(null=True, blank=True, help_text="Seconds.")
    # Sliding window of the starts: [[bucket number, starts], ...] for the
    # last RATE_BUCKETS + 1 buckets of rate_period / RATE_BUCKETS seconds.
    rate_buckets = models.JSONField(default=list, blank=True)
    circuit = models.CharField(
        max_length=100, null=True, blank=True, help_text="Circuit breaker its jobs obey."
    )

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(concurrency_limit__isnull=True)
                | models.Q(concurrency_limit__gte=1),
                name="jobs_flowlane_concurrency_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"lane {self.key}"
