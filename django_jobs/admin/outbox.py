"""Outbox admin: inspect events (topic, key, status, attempts, last error) and
re-dispatch the ones an external publisher gave up on.

Usable at millions of rows: the status filter and the default ordering ride
the (status, -id) index, search is exact on id or key (both indexed), only
the id column sorts, counts are estimated above ``ADMIN_EXACT_COUNT_LIMIT``
(the admin's EstimatedCountPaginator) and the list never reads payloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.changelist import IndexedChangeList
from django_jobs.admin.counts import EstimatedCountPaginator
from django_jobs.admin.filters import exact_search
from django_jobs.engine.outbox import get_outbox_engine
from django_jobs.models import OutboxEvent
from django_jobs.status import OutboxStatus

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[OutboxEvent]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(OutboxEvent)
class OutboxEventAdmin(ModelAdmin):
    list_display = (
        "id",
        "topic",
        "key",
        "status",
        "attempts",
        "short_error",
        "created_at",
        "dispatched_at",
    )
    list_filter = ("status",)
    search_fields = ("=id", "=key")  # shows the box; see get_search_results
    search_help_text = "Event id or key (exact)."
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("redispatch_events",)
    fields = (
        "id",
        "topic",
        "key",
        "status",
        "attempts",
        "last_error",
        "failed_publishers",
        "created_at",
        "dispatched_at",
        "pretty_payload",
        "pretty_headers",
    )

    def get_readonly_fields(
        self, request: HttpRequest, obj: OutboxEvent | None = None
    ) -> tuple[str, ...]:
        return self.fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events are written by outbox.publish(), in the business transaction

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[IndexedChangeList]:
        return IndexedChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "django_jobs_outboxevent_changelist":
            queryset = queryset.defer("payload", "headers")
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        return exact_search(queryset, search_term, "key"), False

    @admin.display(description="last error")
    def short_error(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80] + ("…" if len(obj.last_error) > 80 else "")

    @admin.display(description="payload")
    def pretty_payload(self, obj: OutboxEvent) -> SafeString:
        return display.pretty_json(obj.payload)

    @admin.display(description="headers")
    def pretty_headers(self, obj: OutboxEvent) -> SafeString:
        return display.pretty_json(obj.headers)

    @admin.action(
        description="Re-dispatch selected failed events to the publishers that gave up",
        permissions=["change"],
    )
    def redispatch_events(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        from django_jobs.outbox.delivery import plan_redispatch

        ids = list(queryset.values_list("pk", flat=True))
        done = get_outbox_engine(queryset.db).redispatch_failed(ids, plan_redispatch)
        text = f"{done} event(s) re-dispatched"
        if len(ids) > done:
            text += f", {len(ids) - done} skipped: not {OutboxStatus.FAILED.label.lower()}"
        self.message_user(request, text + ".", messages.SUCCESS if done else messages.WARNING)
