"""Alert admin: each rule's state (status, since, value) and the history of
transitions, read-only (workers write them under a row lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.alerts.rules import KINDS
from django_jobs.models import AlertEvent, AlertState

if TYPE_CHECKING:
    StateAdminBase = admin.ModelAdmin[AlertState]
    EventAdminBase = admin.ModelAdmin[AlertEvent]
else:
    StateAdminBase = EventAdminBase = admin.ModelAdmin


class ReadOnlyAdmin:
    """No add, change or delete: the rows belong to the evaluator."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def format_value(kind: str, value: float | None) -> str:
    """The value in the kind's unit: 35%, 120s, 3."""
    spec = KINDS.get(kind)
    if value is None:
        return "no data"
    if spec is not None and spec.unit == "ratio":
        return f"{value:.0%}"
    if spec is not None and spec.unit == "seconds":
        return display.human_seconds(value)
    return f"{value:g}"


def alert_badge(status: str) -> SafeString:
    css = {"firing": "failed", "ok": "successful", "fired": "failed", "resolved": "successful"}
    return format_html(
        '<span class="jobs-status jobs-status-{}">{}</span>', css.get(status, "ready"), status
    )


@admin.register(AlertState)
class AlertStateAdmin(ReadOnlyAdmin, StateAdminBase):
    list_display = ("rule", "kind", "status_badge", "since_display", "value_display", "evaluated")
    list_filter = ("status", "kind")
    search_fields = ("rule",)
    ordering = ("rule",)
    readonly_fields = (
        "rule",
        "kind",
        "status",
        "since",
        "value",
        "message",
        "breached_since",
        "last_evaluated_at",
    )
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: AlertState) -> SafeString:
        return alert_badge(obj.status)

    @admin.display(description="since", ordering="since")
    def since_display(self, obj: AlertState) -> SafeString | str:
        return display.relative_time(obj.since)

    @admin.display(description="value", ordering="value")
    def value_display(self, obj: AlertState) -> str:
        return format_value(obj.kind, obj.value)

    @admin.display(description="last evaluated", ordering="last_evaluated_at")
    def evaluated(self, obj: AlertState) -> SafeString | str:
        return display.relative_time(obj.last_evaluated_at) if obj.last_evaluated_at else "never"


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin, EventAdminBase):
    list_display = ("at", "rule", "kind_badge", "value_display", "threshold", "message")
    list_filter = ("kind", "rule")
    search_fields = ("rule",)
    ordering = ("-id",)
    readonly_fields = ("rule", "kind", "value", "threshold", "message", "at")
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    @admin.display(description="event", ordering="kind")
    def kind_badge(self, obj: AlertEvent) -> SafeString:
        return alert_badge(obj.kind)

    @admin.display(description="value", ordering="value")
    def value_display(self, obj: AlertEvent) -> str:
        return format_value(getattr(obj, "rule_kind", None) or "", obj.value)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertEvent]:
        # The rule's kind (the value's unit) in the same query: one row per rule.
        kind = AlertState.objects.filter(rule=OuterRef("rule")).values("kind")[:1]
        events: QuerySet[AlertEvent] = super().get_queryset(request)
        return events.annotate(rule_kind=Subquery(kind))
