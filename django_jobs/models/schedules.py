"""Schedule: a cron or interval schedule, from code, settings or the admin."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from django_jobs.scheduling.plans import ScheduleDefinition
from django_jobs.scheduling.ticks import Cadence


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def enabled(self) -> ScheduleQuerySet:
        return self.filter(enabled=True)

    def from_definitions(self) -> ScheduleQuerySet:
        """Rows synced from code and settings (not those made in the admin)."""
        return self.filter(source__in=["code", "settings"])


class Schedule(models.Model):
    """One schedule; the scheduler enqueues one job per tick (``next_run_at``)."""

    class Source(models.TextChoices):
        CODE = "code", "@task(schedule=...)"
        SETTINGS = "settings", "DJANGO_JOBS['SCHEDULES']"
        ADMIN = "admin", "Admin"

    class CatchUp(models.TextChoices):
        LATEST = "latest", "latest: one job for the missed ticks"
        ALL = "all", "all: one job per missed tick (bounded)"
        SKIP = "skip", "skip: missed ticks do not run"

    name = models.CharField(max_length=200, unique=True)
    task_name = models.CharField(max_length=255)
    cron = models.CharField(max_length=100, blank=True, default="", help_text="5 fields.")
    interval = models.DurationField(null=True, blank=True, help_text="Instead of cron.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="Cron's time zone.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=100, null=True, blank=True)
    priority = models.SmallIntegerField(null=True, blank=True)
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.LATEST)
    overlap = models.BooleanField(
        default=True, help_text="Off: skip a tick while the previous job is READY or RUNNING."
    )
    enabled = models.BooleanField(default=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    removed_from_code = models.BooleanField(
        default=False, help_text="No longer defined in code or settings: disabled, kept."
    )
    next_run_at = models.DateTimeField(help_text="The next tick (UTC).")
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    last_job_id = models.BigIntegerField(null=True, blank=True)
    skipped_ticks = models.PositiveIntegerField(default=0)
    last_skipped_at = models.DateTimeField(null=True, blank=True)
    last_skip_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            # The scheduler: enabled schedules, earliest tick first.
            models.Index(
                fields=["next_run_at"], name="jobs_schedule_due", condition=Q(enabled=True)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval__isnull=False))
                | (~Q(cron="") & Q(interval__isnull=True)),
                name="jobs_schedule_cron_xor_interval",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def cadence(self) -> Cadence:
        return Cadence(cron=self.cron or None, interval=self.interval, timezone=self.timezone)

    def definition(self) -> ScheduleDefinition:
        """What this row says, as the planner takes it."""
        return ScheduleDefinition(
            name=self.name,
            task_name=self.task_name,
            cadence=self.cadence,
            args=list(self.args or []),
            kwargs=dict(self.kwargs or {}),
            queue_name=self.queue_name,
            priority=self.priority,
            catch_up=self.catch_up,
            overlap=self.overlap,
            source=self.source,
        )
