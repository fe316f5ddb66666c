"""AlertState (one row per rule) and AlertEvent (the history of transitions).

Workers change an AlertState only inside a transaction that holds its row
lock (``SELECT ... FOR UPDATE SKIP LOCKED``) and with a compare-and-set on
``status``: one transition, one event and one message, whatever the number
of workers evaluating the rule.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class AlertState(models.Model):
    """The current verdict of one rule of ``DJANGO_JOBS["ALERTS"]``."""

    class Status(models.TextChoices):
        # Below the threshold (or no data); may be "breached" but not yet for ``for`` seconds.
        OK = "ok", "OK"
        # At or above the threshold (for ``for`` seconds): one message was sent.
        FIRING = "firing", "Firing"

    rule = models.CharField(max_length=200, unique=True, help_text="The rule's name.")
    kind = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    since = models.DateTimeField(db_default=Now(), help_text="When the status last changed.")
    value = models.FloatField(null=True, blank=True, help_text="The last value measured.")
    message = models.TextField(blank=True, default="", help_text="The last evaluation, in words.")
    breached_since = models.DateTimeField(
        null=True, blank=True, help_text="At or above the threshold since (for the rule's 'for')."
    )
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rule"]
        verbose_name = "alert"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["ok", "firing"]), name="jobs_alertstate_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} [{self.status}]"


class AlertEvent(models.Model):
    """A rule fired or resolved (one row per transition, one message each)."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        RESOLVED = "resolved", "Resolved"

    id = models.BigAutoField(primary_key=True)
    rule = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    message = models.TextField()
    at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]
        verbose_name = "alert event"
        indexes = [
            # Admin: one rule's history, newest first.
            models.Index(fields=["rule", "-id"], name="jobs_alertevent_rule_id"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"
