"""Circuit breakers: one row per circuit, and the history of its states."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from django_jobs.status import CircuitState


class Circuit(models.Model):
    """A circuit's state. A circuit without a row is closed."""

    name = models.CharField(max_length=100, primary_key=True)
    state = models.CharField(
        max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    opened_at = models.DateTimeField(null=True, blank=True)
    probe_job_id = models.BigIntegerField(
        null=True, blank=True, help_text="The half-open circuit's probe job."
    )
    # Times (epoch seconds) of the recent failures, within the circuit's WINDOW.
    failures = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"circuit {self.name} [{self.state}]"


class CircuitEvent(models.Model):
    """One state change of a circuit."""

    id = models.BigAutoField(primary_key=True)
    circuit = models.ForeignKey(
        Circuit, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    old_state = models.CharField(max_length=10, choices=CircuitState.choices)
    new_state = models.CharField(max_length=10, choices=CircuitState.choices)
    reason = models.TextField(blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.circuit_id}: {self.old_state} -> {self.new_state}"
