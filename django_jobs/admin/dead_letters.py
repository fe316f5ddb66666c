"""Dead letter admin: inspect jobs that gave up, and re-enqueue them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from django_jobs.engine import get_engine
from django_jobs.models import DeadLetter

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[DeadLetter]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(DeadLetter)
class DeadLetterAdmin(ModelAdmin):
    list_display = ("id", "job_id", "task_name", "queue_name", "reason", "created_at", "retried_at")
    list_filter = ("queue_name",)
    search_fields = ("=id", "=job_id")
    ordering = ("-id",)
    show_full_result_count = False
    actions = ("retry_dead_letters",)

    def get_readonly_fields(self, request: HttpRequest, obj: DeadLetter | None = None) -> list[str]:
        return [field.name for field in DeadLetter._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(
        description="Retry selected dead letters (enqueue a new job)", permissions=["change"]
    )
    def retry_dead_letters(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        done = get_engine(queryset.db).retry_dead_letters(ids)
        skipped = len(ids) - len(done)
        text = f"{len(done)} dead letter(s) re-enqueued"
        if skipped:
            text += f", {skipped} skipped: already retried"
        self.message_user(request, text + ".", messages.SUCCESS if done else messages.WARNING)
