"""OutboxEvent: an event written in the caller's transaction, relayed after commit."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from django_jobs.status import OutboxStatus


class OutboxEventQuerySet(models.QuerySet["OutboxEvent"]):
    def pending(self) -> OutboxEventQuerySet:
        """Committed events the relay has not dispatched yet."""
        return self.filter(status=OutboxStatus.PENDING)

    def dispatched(self) -> OutboxEventQuerySet:
        return self.filter(status=OutboxStatus.DISPATCHED)

    def failed(self) -> OutboxEventQuerySet:
        """Events an external publisher gave up on; operators can re-dispatch them."""
        return self.filter(status=OutboxStatus.FAILED)

    def dispatch_order(self) -> OutboxEventQuerySet:
        """Oldest first: ids come from one sequence, in publish order."""
        return self.order_by("id")


class OutboxEvent(models.Model):
    """An event written in the caller's transaction, relayed after commit."""

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=255)
    key = models.CharField(max_length=255, null=True, blank=True, help_text="Ordering key.")
    payload = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    status = models.CharField(
        max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    failed_publishers = models.JSONField(
        default=list,
        blank=True,
        help_text="External publishers that gave up on this event; re-dispatch retries them.",
    )

    objects = OutboxEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Relay claims: PENDING rows in id order.
            models.Index(
                fields=["id"], name="jobs_outbox_pending", condition=Q(status=OutboxStatus.PENDING)
            ),
            # Admin search by key.
            models.Index(fields=["key", "id"], name="jobs_outbox_key_id"),
            models.Index(fields=["status", "-id"], name="jobs_outbox_status_id"),
            # Retention: prune dispatched events oldest first.
            models.Index(
                fields=["dispatched_at"],
                name="jobs_outbox_dispatched",
                condition=Q(status=OutboxStatus.DISPATCHED),
            ),
        ]

    def __str__(self) -> str:
        return f"Event {self.pk} {self.topic} [{self.status}]"
