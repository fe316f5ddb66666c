"""Dead letter admin: inspect jobs that gave up, and re-enqueue them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from django_jobs.admin import display
from django_jobs.admin.actions import ObjectAction, ObjectActionsMixin, first_selected
from django_jobs.admin.changelist import IndexedChangeList
from django_jobs.admin.filters import DeadLetterQueueFilter, DeadLetterTaskFilter, RetriedFilter
from django_jobs.admin.readonly import ReadOnlyDetailMixin
from django_jobs.counts import EstimatedCountPaginator
from django_jobs.engine import get_engine
from django_jobs.models import DeadLetter, Job

OBJECT_ACTIONS = (ObjectAction("retry_dead_letters", "Retry (enqueue a new job)"),)


def job_link(job_id: int | None, exists: bool = True) -> SafeString | str:
    if job_id is None:
        return "-"
    if not exists:
        return format_html('<span title="pruned from the jobs table">#{} (pruned)</span>', job_id)
    url = reverse("admin:django_jobs_job_change", args=[job_id])
    return format_html('<a href="{}">#{}</a>', url, job_id)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyDetailMixin, ObjectActionsMixin):
    list_display = ("id", "job", "task", "queue", "short_reason", "created", "retried")
    list_display_links = ("id",)
    list_filter = (RetriedFilter, DeadLetterQueueFilter, DeadLetterTaskFilter)
    search_fields = ("=id", "=job_id")  # shows the box; see get_search_results
    search_help_text = "Dead letter id or original job id."
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_dead_letters", "delete_selected")
    object_actions = ("retry_dead_letters",)
    change_form_template = "admin/django_jobs/deadletter/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[IndexedChangeList]:
        return IndexedChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadLetter]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "django_jobs_deadletter_changelist":
            queryset = queryset.defer("args", "kwargs", "errors")
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeadLetter], search_term: str
    ) -> tuple[QuerySet[DeadLetter], bool]:
        term = search_term.strip().removeprefix("#")
        if not term:
            return queryset, False
        if not term.isdigit() or len(term) >= 19:
            return queryset.none(), False
        return queryset.filter(Q(pk=int(term)) | Q(job_id=int(term))), False

    @admin.display(description="job")
    def job(self, obj: DeadLetter) -> SafeString | str:
        return job_link(obj.job_id)

    @admin.display(description="task")
    def task(self, obj: DeadLetter) -> SafeString:
        return display.short_task(obj.task_name)

    @admin.display(description="queue")
    def queue(self, obj: DeadLetter) -> str:
        return obj.queue_name

    @admin.display(description="reason")
    def short_reason(self, obj: DeadLetter) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>', obj.reason, Truncator(obj.reason).chars(80)
        )

    @admin.display(description="dead since")
    def created(self, obj: DeadLetter) -> SafeString | str:
        return display.relative_time(obj.created_at)

    @admin.display(description="retried")
    def retried(self, obj: DeadLetter) -> SafeString | str:
        if obj.retried_at is None:
            return "-"
        return format_html(
            "{} as {}", display.relative_time(obj.retried_at), job_link(obj.retried_job_id)
        )

    def detail_context(self, request: HttpRequest, letter: DeadLetter) -> dict[str, Any]:
        alias = letter._state.db or "default"
        job_ids = [pk for pk in (letter.job_id, letter.retried_job_id) if pk is not None]
        existing = set(Job.objects.using(alias).filter(pk__in=job_ids).values_list("pk", flat=True))
        return {
            "letter": letter,
            "original_job": job_link(letter.job_id, letter.job_id in existing),
            "retried_job": job_link(letter.retried_job_id, letter.retried_job_id in existing),
            "attempt_errors": display.attempt_errors(letter.errors),
            "json_blocks": [
                ("Arguments", display.pretty_json(letter.args)),
                ("Keyword arguments", display.pretty_json(letter.kwargs)),
            ],
            "object_actions": self.available_object_actions(
                request, lambda name: letter.retried_at is None, OBJECT_ACTIONS
            ),
        }

    @admin.action(
        description="Retry selected dead letters (enqueue a new job)", permissions=["change"]
    )
    def retry_dead_letters(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        rows, truncated = first_selected(queryset, "pk", "retried_at")
        ids = [pk for pk, retried_at in rows if retried_at is None]
        skipped = Counter({"already retried": len(rows) - len(ids)})
        done = get_engine(queryset.db).retry_dead_letters(ids) if ids else []
        self.report(
            request,
            noun="dead letter",
            verb="re-enqueued",
            done=len(done),
            skipped=+skipped,
            lost=len(ids) - len(done),
            truncated=truncated,
        )
        if done:
            links = format_html_join(
                ", ", "{} → {}", ((f"#{d}", job_link(j)) for d, j in done[:20])
            )
            self.message_user(request, format_html("New jobs: {}", links), messages.INFO)
