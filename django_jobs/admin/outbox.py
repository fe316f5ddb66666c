"""Outbox admin: inspect events (topic, key, status, attempts, last error) and
re-dispatch the ones an external publisher gave up on.

Usable at millions of rows: the status filter and the default ordering ride
the (status, -id) index, search is exact on id or key (both indexed), only
the id column sorts, counts are estimated above ``ADMIN_EXACT_COUNT_LIMIT``
(the admin's EstimatedCountPaginator) and the list never reads payloads.
The event page is read-only (pretty payload and headers, the last error) with
a one-click Re-dispatch for a failed event: the relay and delivery jobs update
events, so a form save could write back a stale status.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.actions import ObjectAction, ObjectActionsMixin, first_selected
from django_jobs.admin.changelist import IndexedChangeList
from django_jobs.admin.filters import exact_search
from django_jobs.admin.readonly import ReadOnlyDetailMixin
from django_jobs.counts import EstimatedCountPaginator
from django_jobs.engine.outbox import get_outbox_engine
from django_jobs.models import OutboxEvent
from django_jobs.outbox.delivery import plan_redispatch
from django_jobs.status import OutboxStatus

OBJECT_ACTIONS = (ObjectAction("redispatch_events", "Re-dispatch"),)


def outbox_status_badge(status: str) -> SafeString:
    label = OutboxStatus(status).label if status in OutboxStatus.values else status
    return format_html(
        '<span class="jobs-status jobs-status-{}">{}</span>', str(status).lower(), label
    )


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyDetailMixin, ObjectActionsMixin):
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
    object_actions = ("redispatch_events",)
    change_form_template = "admin/django_jobs/outboxevent/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

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

    def detail_context(self, request: HttpRequest, event: OutboxEvent) -> dict[str, Any]:
        return {
            "event": event,
            "status_badge": outbox_status_badge(event.status),
            "created": display.relative_time(event.created_at),
            "dispatched": display.relative_time(event.dispatched_at),
            "json_blocks": [
                ("Payload", display.pretty_json(event.payload)),
                ("Headers", display.pretty_json(event.headers)),
            ],
            "object_actions": self.available_object_actions(
                request, lambda name: event.status == OutboxStatus.FAILED, OBJECT_ACTIONS
            ),
        }

    @admin.action(
        description="Re-dispatch selected failed events to the publishers that gave up",
        permissions=["change"],
    )
    def redispatch_events(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        rows, truncated = first_selected(queryset, "pk", "status")
        ids = [pk for pk, status in rows if status == OutboxStatus.FAILED]
        skipped = Counter(
            str(OutboxStatus(status).label).lower()
            for _, status in rows
            if status != OutboxStatus.FAILED
        )
        done = get_outbox_engine(queryset.db).redispatch_failed(ids, plan_redispatch) if ids else 0
        self.report(
            request,
            noun="event",
            verb="re-dispatched",
            done=done,
            skipped=skipped,
            lost=len(ids) - done,
            truncated=truncated,
            rule="only failed events are re-dispatched",
        )
