"""Circuit breakers admin: each circuit's state and its history of changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from django_jobs.models import Circuit, CircuitEvent

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Circuit]
    Inline = admin.TabularInline[CircuitEvent, Circuit]
else:
    ModelAdmin = admin.ModelAdmin
    Inline = admin.TabularInline


class CircuitEventInline(Inline):
    model = CircuitEvent
    fields = ("at", "old_state", "new_state", "reason", "job_id")
    readonly_fields = fields
    extra = 0
    ordering = ("-id",)
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Circuit)
class CircuitAdmin(ModelAdmin):
    """Read-only: workers change circuits (DJANGO_JOBS["CIRCUITS"] configures them)."""

    list_display = ("name", "state", "opened_at", "probe_job_id", "updated_at")
    list_filter = ("state",)
    readonly_fields = ("name", "state", "opened_at", "probe_job_id", "failures", "updated_at")
    inlines = [CircuitEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
