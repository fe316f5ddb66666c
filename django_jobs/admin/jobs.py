"""Job admin: list, filter, inspect, and act on jobs in bulk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from django_jobs.engine import get_engine
from django_jobs.models import Job

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Job]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(Job)
class JobAdmin(ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "queue_name",
        "status",
        "priority",
        "attempts",
        "run_after",
        "finished_at",
    )
    list_filter = ("status", "queue_name")
    search_fields = ("=id", "=idempotency_key")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ("retry_jobs", "cancel_jobs", "run_jobs_now")

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return [field.name for field in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _report(self, request: HttpRequest, verb: str, done: int, total: int, why: str) -> None:
        skipped = total - done
        text = f"{done} job(s) {verb}"
        if skipped:
            text += f", {skipped} skipped: {why}"
        self.message_user(request, text + ".", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Retry selected failed/cancelled jobs now", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        done = get_engine(queryset.db).retry_jobs(ids)
        self._report(request, "retried", done, len(ids), "not failed or cancelled")

    @admin.action(description="Cancel selected ready jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        done = get_engine(queryset.db).cancel_jobs(ids)
        self._report(request, "cancelled", done, len(ids), "not ready (running or finished)")

    @admin.action(description="Run selected scheduled jobs now", permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        done = get_engine(queryset.db).run_jobs_now(ids)
        self._report(request, "made due now", done, len(ids), "not ready")
