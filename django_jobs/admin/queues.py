"""Queues admin: paused state with pause/resume actions, and the POST
endpoints behind the overview's per-queue Pause / Resume buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from django_jobs import queues
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Queue

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Queue]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(Queue)
class QueueAdmin(ModelAdmin):
    list_display = ("name", "paused", "paused_at", "updated_at")
    list_filter = ("paused",)
    search_fields = ("name",)
    readonly_fields = ("paused_at", "updated_at")
    actions = ["pause_queues", "resume_queues"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pause a queue (overview, CLI) to give it a row

    @admin.action(description="Pause selected queues", permissions=["change"])
    def pause_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        changed = sum(queues.pause(q.name, database=queryset.db) for q in queryset)
        self.message_user(request, f"Paused {changed} queue(s).", messages.SUCCESS)

    @admin.action(description="Resume selected queues", permissions=["change"])
    def resume_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        changed = sum(queues.resume(q.name, database=queryset.db) for q in queryset)
        self.message_user(request, f"Resumed {changed} queue(s).", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.toggle_view)
        return [path("toggle/", view, name="django_jobs_queue_toggle"), *super().get_urls()]

    def toggle_view(self, request: HttpRequest) -> HttpResponse:
        """POST queue=NAME&action=pause|resume (the overview's buttons)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        name, action = request.POST.get("queue", ""), request.POST.get("action")
        try:
            if action == "pause":
                queues.pause(name)
                self.message_user(request, f"Queue {name!r} paused.", messages.SUCCESS)
            elif action == "resume":
                queues.resume(name)
                self.message_user(request, f"Queue {name!r} resumed.", messages.SUCCESS)
            else:
                self.message_user(request, f"Unknown action {action!r}.", messages.ERROR)
        except InvalidJobOptions as exc:
            self.message_user(request, str(exc), messages.ERROR)
        back: Any = request.POST.get("next") or reverse("admin:django_jobs_overview_changelist")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:django_jobs_overview_changelist")
        return HttpResponseRedirect(back)
