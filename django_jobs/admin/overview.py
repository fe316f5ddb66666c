"""The overview page: queues, throughput charts, dead letters, workers, outbox.

Registered on the ``Overview`` proxy model so that it sits in the admin index
next to the tables. Seeing it takes the *job* view permission; it changes
nothing. ``?fragment=1`` returns only the body, which the page's script
fetches every ``ADMIN_REFRESH_SECONDS`` (plain reload without JavaScript).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from django_jobs import queues as flow_queues
from django_jobs import stats
from django_jobs.admin import charts, display
from django_jobs.admin.workers import stale_after
from django_jobs.conf import jobs_settings
from django_jobs.counts import RowCount, count_rows, exact_limit, model_count, total
from django_jobs.models import DeadLetter, Job, OutboxEvent, Overview, Worker
from django_jobs.status import JobStatus, OutboxStatus

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Overview]
else:
    ModelAdmin = admin.ModelAdmin


def _url(name: str, query: str = "") -> str | None:
    try:
        return reverse(f"admin:{name}") + (f"?{query}" if query else "")
    except NoReverseMatch:
        return None


def _can_view(request: HttpRequest, model: type[Any]) -> bool:
    opts = model._meta
    return bool(request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")) or bool(
        request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
    )


def _oldest(rows: list[stats.QueueStats], now: datetime) -> str | None:
    oldest = min((q.oldest_ready for q in rows if q.oldest_ready), default=None)
    return display.human_seconds((now - oldest).total_seconds()) if oldest else None


def overview_context(request: HttpRequest, alias: str = "default") -> dict[str, Any]:
    """Everything the overview shows, computed with cheap queries."""
    now = timezone.now()
    per_minute = stats.throughput_per_minute(alias, now)
    per_hour = stats.throughput_per_hour(alias, now, per_minute)
    jobs_url = _url("django_jobs_job_changelist")
    rows = stats.queue_stats(alias, now)
    paused = set(flow_queues.paused_queues(database=alias))
    can_toggle = request.user.has_perm("django_jobs.change_queue")
    queues = [
        {
            "stats": q,
            "oldest_age": display.human_seconds((now - q.oldest_ready).total_seconds())
            if q.oldest_ready
            else None,
            "url": f"{jobs_url}?{urlencode({'queue': q.name})}" if jobs_url else None,
            "paused": q.name in paused,
        }
        for q in rows
    ]
    workers = list(Worker.objects.using(alias).order_by("started_at"))
    fresh = [w for w in workers if now - w.last_heartbeat_at <= stale_after()]
    context: dict[str, Any] = {
        "now": now,
        "queues": queues,
        "ready_total": total(q.ready for q in rows),
        "scheduled_total": total(q.scheduled for q in rows),
        "running_total": total(q.running for q in rows),
        "failed_total": total(q.failed for q in rows),
        "oldest_ready": _oldest(rows, now),
        "minute_chart": charts.bar_chart("Finished per minute, last hour", per_minute, "%H:%M", 10),
        "hour_chart": charts.bar_chart("Finished per hour, last 24 hours", per_hour, "%H:00", 4),
        "jobs_total": model_count(Job, alias),
        "jobs_url": jobs_url if _can_view(request, Job) else None,
        "dead_letters_open": count_rows(
            DeadLetter.objects.using(alias).filter(retried_at__isnull=True)
        ),
        "dead_letters_url": _url("django_jobs_deadletter_changelist", "retried=no")
        if _can_view(request, DeadLetter)
        else None,
        "workers_active": len(fresh),
        "workers_stale": len(workers) - len(fresh),
        "workers_url": _url("django_jobs_worker_changelist")
        if _can_view(request, Worker)
        else None,
        "statuses": JobStatus,
        "queue_toggle_url": _url("django_jobs_queue_toggle") if can_toggle else None,
        "refresh_seconds": int(jobs_settings.ADMIN_REFRESH_SECONDS),
        "exact_limit": f"{exact_limit():,}",
    }
    context.update(outbox_context(request, alias))
    # The footnote about PostgreSQL estimates only when one is on the page.
    context["estimated"] = any(
        not value.exact for value in _shown_counts(context) if isinstance(value, RowCount)
    )
    return context


def _shown_counts(context: dict[str, Any]) -> list[Any]:
    counts: list[Any] = list(context.values())
    for queue in context["queues"]:
        q = queue["stats"]
        counts += [q.ready, q.scheduled, q.running, q.failed]
    if context.get("outbox"):
        counts += list(context["outbox"].values())
    return counts


def outbox_context(request: HttpRequest, alias: str) -> dict[str, Any]:
    """Outbox counts, shown only once the outbox has been used."""
    events = OutboxEvent.objects.using(alias)
    if not events.exists():
        return {"outbox": None}
    oldest_pending = (
        events.filter(status=OutboxStatus.PENDING)
        .order_by("pk")
        .values_list("created_at", flat=True)
        .first()
    )
    url = _url("django_jobs_outboxevent_changelist") if _can_view(request, OutboxEvent) else None
    return {
        "outbox": {
            "pending": count_rows(events.filter(status=OutboxStatus.PENDING)),
            "failed": count_rows(events.filter(status=OutboxStatus.FAILED)),
            "oldest_pending": display.relative_time(oldest_pending) if oldest_pending else None,
            "url": url,
        }
    }


@admin.register(Overview)
class OverviewAdmin(ModelAdmin):
    """Not a table: the changelist URL shows the overview page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _can_view(request, Job)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Jobs overview",
            "opts": self.opts,
            **overview_context(request),
            **(extra_context or {}),
        }
        if request.GET.get("fragment"):
            template = "admin/django_jobs/overview/body.html"
        else:
            template = "admin/django_jobs/overview/page.html"
        return TemplateResponse(request, template, context)
