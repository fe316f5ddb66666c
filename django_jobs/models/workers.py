"""Worker: one row per running ``runworker`` process."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class Worker(models.Model):
    """A running ``runworker`` process; the row goes away on clean exit."""

    id = models.UUIDField(primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True, help_text="Empty: every queue.")
    concurrency = models.PositiveIntegerField()
    pool = models.CharField(max_length=16, default="thread")
    started_at = models.DateTimeField(db_default=Now())
    last_heartbeat_at = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"Worker {self.hostname}:{self.pid}"
