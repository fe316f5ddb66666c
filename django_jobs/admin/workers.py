"""Worker admin: who is running, since when, how fresh the heartbeat, which jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.readonly import ReadOnlyDetailMixin
from django_jobs.conf import jobs_settings
from django_jobs.models import Job, Worker
from django_jobs.status import JobStatus

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Worker]
else:
    ModelAdmin = admin.ModelAdmin


def stale_after() -> timedelta:
    """A worker whose heartbeat is older than its lease is presumed dead."""
    return timedelta(seconds=float(jobs_settings.LEASE_SECONDS))


def running_jobs_url(worker_id: Any) -> str:
    base = reverse("admin:django_jobs_job_changelist")
    return f"{base}?status={JobStatus.RUNNING}&worker_id__exact={worker_id}"


@admin.register(Worker)
class WorkerAdmin(ReadOnlyDetailMixin, ModelAdmin):
    list_display = (
        "hostname",
        "pid",
        "queue_list",
        "concurrency",
        "pool",
        "started",
        "heartbeat",
        "running",
    )
    list_display_links = ("hostname",)
    ordering = ("started_at",)
    show_facets = admin.ShowFacets.NEVER
    change_form_template = "admin/django_jobs/worker/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows belong to runworker processes

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        # RUNNING rows are few (bounded by total concurrency): the partial
        # lease index finds them without touching finished jobs.
        running = (
            Job.objects.filter(status=JobStatus.RUNNING, worker_id=OuterRef("pk"))
            .order_by()
            .values("worker_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        workers: QuerySet[Worker] = super().get_queryset(request)
        return workers.annotate(
            running_count=Coalesce(Subquery(running, output_field=IntegerField()), 0)
        )

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> str:
        return ", ".join(obj.queues) if obj.queues else "all"

    @admin.display(description="started")
    def started(self, obj: Worker) -> SafeString | str:
        return display.relative_time(obj.started_at)

    @admin.display(description="last heartbeat")
    def heartbeat(self, obj: Worker) -> SafeString:
        age = timezone.now() - obj.last_heartbeat_at
        state = "stale" if age > stale_after() else "fresh"
        return format_html(
            '<span class="jobs-heartbeat jobs-heartbeat-{}">{}</span>',
            state,
            display.relative_time(obj.last_heartbeat_at),
        )

    @admin.display(description="running jobs")
    def running(self, obj: Worker) -> SafeString:
        count = getattr(obj, "running_count", 0)
        return format_html(
            '<a href="{}">{} / {}</a>', running_jobs_url(obj.pk), count, obj.concurrency
        )

    def detail_context(self, request: HttpRequest, worker: Worker) -> dict[str, Any]:
        jobs = (
            Job.objects.using(worker._state.db)
            .filter(status=JobStatus.RUNNING, worker_id=worker.pk)
            .defer("args", "kwargs", "result", "errors", "progress", "meta")
            .order_by("started_at")[:200]
        )
        return {
            "worker": worker,
            "heartbeat": self.heartbeat(worker),
            "started": display.relative_time(worker.started_at),
            "queues": self.queue_list(worker),
            "running_jobs": [
                (
                    job,
                    display.short_task(job.task_name),
                    display.relative_time(job.last_attempted_at or job.started_at),
                )
                for job in jobs
            ],
            "running_jobs_url": running_jobs_url(worker.pk),
        }
