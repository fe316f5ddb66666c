"""Job admin: list, filter, inspect, and act on jobs, fast at millions of rows.

- The list reads one page through an index: status / queue / task filters
  and id / idempotency-key search each hit an index, the row count is
  estimated above ``ADMIN_EXACT_COUNT_LIMIT``, facets are off, and only the
  id column sorts (sorting a million rows by anything else is a full sort).
- The detail page is read-only: pretty JSON, every attempt's traceback, a
  timeline, links to the dead letter and worker, one-click actions.
- Actions (bulk and one-click) go through the engine's operator operations.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.actions import ObjectAction, ObjectActionsMixin, first_selected, plural
from django_jobs.admin.changelist import IndexedChangeList
from django_jobs.admin.filters import JobQueueFilter, JobStatusFilter, JobTaskFilter, exact_search
from django_jobs.admin.readonly import ReadOnlyDetailMixin
from django_jobs.counts import EstimatedCountPaginator
from django_jobs.engine import get_engine
from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus

# Columns the list never shows: not read for list pages.
HEAVY_FIELDS = ("args", "kwargs", "result", "errors", "progress", "meta")

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
CANCELLABLE = frozenset({JobStatus.READY, JobStatus.RUNNING})

OBJECT_ACTIONS = (
    ObjectAction("run_jobs_now", "Run now"),
    ObjectAction("retry_jobs", "Retry now"),
    ObjectAction("cancel_jobs", "Cancel", "danger"),
)


def can_act(action: str, status: str, run_after: datetime | None, now: datetime) -> bool:
    """Whether ``action`` applies to a job in this state (skipped otherwise)."""
    if action == "retry_jobs":
        return status in RETRYABLE
    if action == "cancel_jobs":
        return status in CANCELLABLE
    if action == "run_jobs_now":
        return status == JobStatus.READY and run_after is not None and run_after > now
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    label: str
    detail: str = ""
    tone: str = ""  # "ok", "failed", "future"

    @property
    def when(self) -> SafeString | str:
        return display.relative_time(self.at)


def timeline(job: Job, dead_letters: Sequence[DeadLetter], now: datetime) -> list[TimelineEntry]:
    """What happened to ``job`` and when, oldest first; future run last."""
    entries = [TimelineEntry(job.enqueued_at, "Enqueued", f"queue {job.queue_name}")]
    retried_from = (job.meta or {}).get("retried_from_dead_letter")
    if retried_from:
        entries[0] = TimelineEntry(
            job.enqueued_at, "Enqueued", f"retry of dead letter {retried_from}"
        )
    for error in job.errors or []:
        at = display.parse_time(error.get("at"))
        if at is not None:
            name = str(error.get("exception_class", "")).rpartition(".")[2]
            ended = "stopped by its cancel" if name == "JobCancelled" else "failed"
            entries.append(
                TimelineEntry(at, f"Attempt {error.get('attempt', '?')} {ended}", name, "failed")
            )
    if job.cancel_requested_at:
        entries.append(TimelineEntry(job.cancel_requested_at, "Cancel requested", "", "failed"))
    # started_at: the run's first attempt; last_attempted_at: the latest one.
    latest = job.last_attempted_at or job.started_at
    if job.started_at and job.attempts > 1 and latest != job.started_at:
        entries.append(TimelineEntry(job.started_at, "Attempt 1 started"))
    if latest:
        entries.append(TimelineEntry(latest, f"Attempt {job.attempts} started"))
    if job.finished_at:
        tone = "ok" if job.status == JobStatus.SUCCESSFUL else "failed"
        entries.append(TimelineEntry(job.finished_at, display.status_label(job.status), "", tone))
    for letter in dead_letters:
        entries.append(TimelineEntry(letter.created_at, "Dead-lettered", letter.reason, "failed"))
        if letter.retried_at:
            entries.append(
                TimelineEntry(
                    letter.retried_at, "Retried as a new job", f"job {letter.retried_job_id}"
                )
            )
    entries.sort(key=lambda e: e.at)
    if job.status == JobStatus.READY:
        label = "Scheduled to run" if job.run_after > now else "Due since"
        entries.append(TimelineEntry(job.run_after, label, "", "future"))
    return entries


def _admin_link(model: str, pk: Any, text: str) -> SafeString | str:
    try:
        url = reverse(f"admin:django_jobs_{model}_change", args=[pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(Job)
class JobAdmin(ReadOnlyDetailMixin, ObjectActionsMixin):
    list_display = (
        "id",
        "task",
        "queue",
        "status_badge",
        "priority",
        "attempts_display",
        "when",
        "duration",
    )
    list_display_links = ("id",)
    list_filter = (JobStatusFilter, JobQueueFilter, JobTaskFilter)
    search_fields = ("=id", "=idempotency_key")  # shows the box; see get_search_results
    search_help_text = "Job id or exact idempotency key."
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_jobs", "cancel_jobs", "run_jobs_now", "delete_selected")
    object_actions = tuple(a.name for a in OBJECT_ACTIONS)
    change_form_template = "admin/django_jobs/job/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    # -- permissions and queryset ---------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[IndexedChangeList]:
        return IndexedChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are enqueued by code, not typed in

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "django_jobs_job_changelist":
            queryset = queryset.defer(*HEAVY_FIELDS)
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """Exact id or exact idempotency key: both indexed (no ILIKE scans)."""
        return exact_search(queryset, search_term, "idempotency_key"), False

    # -- list columns ----------------------------------------------------

    @admin.display(description="task")
    def task(self, obj: Job) -> SafeString:
        return display.short_task(obj.task_name)

    @admin.display(description="queue")
    def queue(self, obj: Job) -> str:
        return obj.queue_name

    @admin.display(description="status")
    def status_badge(self, obj: Job) -> SafeString:
        return display.status_badge(obj.status, obj.run_after)

    @admin.display(description="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="when")
    def when(self, obj: Job) -> SafeString | str:
        """The moment that matters for the status; what it is shows on hover."""
        if obj.status == JobStatus.READY:
            label = "runs at" if obj.is_scheduled else "due since"
            return display.relative_time(obj.run_after, label=label)
        if obj.status == JobStatus.RUNNING:
            return display.relative_time(obj.last_attempted_at or obj.started_at, label="started")
        return display.relative_time(obj.finished_at, label="finished")

    @admin.display(description="duration")
    def duration(self, obj: Job) -> str:
        started = obj.last_attempted_at or obj.started_at  # the latest attempt's
        if obj.status == JobStatus.RUNNING:
            return display.duration(started, timezone.now())
        if obj.finished_at and started and obj.status != JobStatus.CANCELLED:
            return display.duration(started, obj.finished_at)
        return "-"

    # -- detail page -----------------------------------------------------

    def detail_context(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        now = timezone.now()
        letters = list(DeadLetter.objects.using(job._state.db).filter(job_id=job.pk).order_by("pk"))
        worker = None
        if job.worker_id:
            worker = Worker.objects.using(job._state.db).filter(pk=job.worker_id).first()
        source = (job.meta or {}).get("retried_from_dead_letter")

        def eligible(action: str) -> bool:
            return can_act(action, job.status, job.run_after, now)

        return {
            "job": job,
            "now": now,
            "status_badge": display.status_badge(job.status, job.run_after, now),
            "timeline": timeline(job, letters, now),
            "attempt_errors": display.attempt_errors(job.errors),
            "dead_letters": [
                (letter, _admin_link("deadletter", letter.pk, f"#{letter.pk}"))
                for letter in letters
            ],
            "source_dead_letter": _admin_link("deadletter", source, f"#{source}")
            if source
            else None,
            "worker_link": _admin_link("worker", job.worker_id, str(job.worker_id))
            if worker
            else None,
            "json_blocks": [
                ("Arguments", display.pretty_json(job.args)),
                ("Keyword arguments", display.pretty_json(job.kwargs)),
                *([("Result", display.pretty_json(job.result))] if job.result is not None else []),
                *(
                    [("Progress", display.pretty_json(job.progress))]
                    if job.progress is not None
                    else []
                ),
                *([("Metadata", display.pretty_json(job.meta))] if job.meta else []),
            ],
            "object_actions": self.available_object_actions(request, eligible, OBJECT_ACTIONS),
            "duration": self.duration(job),
            "lease_expires": display.relative_time(job.lease_expires_at, now),
        }

    # -- actions ---------------------------------------------------------

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        action: str,
        verb: str,
        operation: Callable[[list[int]], int],
        rule: str,
    ) -> None:
        now = timezone.now()
        rows, truncated = first_selected(queryset, "pk", "status", "run_after")
        ids: list[int] = []
        skipped: Counter[str] = Counter()
        for pk, status, run_after in rows:
            if can_act(action, status, run_after, now):
                ids.append(pk)
            else:
                skipped[display.status_label(status, run_after, now).lower()] += 1
        done = operation(ids) if ids else 0
        self.report(
            request,
            noun="job",
            verb=verb,
            done=done,
            skipped=skipped,
            lost=len(ids) - done,
            truncated=truncated,
            rule=rule,
        )

    @admin.action(description="Retry selected failed/cancelled jobs now", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        engine = get_engine(queryset.db)
        self._act(
            request, queryset, "retry_jobs", "retried", engine.retry_jobs,
            "only failed or cancelled jobs are retried",
        )  # fmt: skip

    @admin.action(description="Cancel selected ready or running jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        engine = get_engine(queryset.db)
        requested: list[int] = []

        def cancel(ids: list[int]) -> int:
            report = engine.cancel(ids)
            requested.extend(report.requested)
            return report.total

        self._act(
            request, queryset, "cancel_jobs", "cancelled", cancel,
            "only ready or running jobs are cancelled",
        )  # fmt: skip
        if requested:
            self.message_user(
                request,
                f"{plural(len(requested), 'running job')} will be stopped by "
                f"{'its' if len(requested) == 1 else 'their'} worker within a few seconds "
                "and end cancelled.",
                messages.INFO,
            )

    @admin.action(description="Run selected scheduled jobs now", permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        engine = get_engine(queryset.db)
        self._act(
            request, queryset, "run_jobs_now", "made due now", engine.run_jobs_now,
            "only scheduled jobs are moved",
        )  # fmt: skip
