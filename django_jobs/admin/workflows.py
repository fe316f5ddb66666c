"""Workflow admin: the list (filters by kind and status) and a detail page with
the steps as a timeline, their status and jobs; retry / cancel actions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.admin import display
from django_jobs.admin.actions import ObjectAction, ObjectActionsMixin, first_selected
from django_jobs.admin.readonly import ReadOnlyDetailMixin
from django_jobs.engine import get_engine
from django_jobs.models import Workflow, WorkflowStep
from django_jobs.status import WORKFLOW_FINISHED_STATUSES, StepStatus, WorkflowStatus

OBJECT_ACTIONS = (
    ObjectAction("retry_workflows", "Retry failed steps"),
    ObjectAction("cancel_workflows", "Cancel workflow", style="danger"),
)


def workflow_badge(status: str) -> SafeString:
    label = WorkflowStatus(status).label if status in WorkflowStatus.values else status
    return format_html('<span class="jobs-status jobs-status-{}">{}</span>', status.lower(), label)


def step_badge(status: str) -> SafeString:
    label = StepStatus(status).label if status in StepStatus.values else status
    return format_html('<span class="jobs-status jobs-status-{}">{}</span>', status.lower(), label)


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyDetailMixin, ObjectActionsMixin):
    list_display = ("id", "kind", "status_display", "step_count", "created_at", "finished_at")
    list_filter = ("kind", "status")
    ordering = ("-id",)
    sortable_by = ("id",)
    list_per_page = 50
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_workflows", "cancel_workflows")
    object_actions = ("retry_workflows", "cancel_workflows")
    change_form_template = "admin/django_jobs/workflow/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin/jobs.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workflows are written by chain(...).enqueue() and friends

    @admin.display(description="status")
    def status_display(self, obj: Workflow) -> SafeString:
        return workflow_badge(obj.status)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        workflows: QuerySet[Workflow] = super().get_queryset(request)
        # One grouped count in the page's query, not one query per row.
        return workflows.annotate(
            task_steps=Count("steps", filter=Q(steps__kind=WorkflowStep.Kind.TASK))
        )

    @admin.display(description="steps")
    def step_count(self, obj: Workflow) -> int:
        return int(getattr(obj, "task_steps", 0))

    def detail_context(self, request: HttpRequest, workflow: Workflow) -> dict[str, Any]:
        steps = []
        for step in workflow.steps.order_by("position"):
            job_url = (
                reverse("admin:django_jobs_job_change", args=[step.job_id])
                if step.job_id is not None
                else ""
            )
            steps.append(
                {
                    "step": step,
                    "indent": step.depth * 1.5,
                    "badge": step_badge(step.status),
                    "task": display.short_task(step.task_name) if step.task_name else step.kind,
                    "job_url": job_url,
                    "started": display.relative_time(step.started_at),
                    "took": display.duration(step.started_at, step.finished_at),
                    "failed": step.position == workflow.failed_position,
                }
            )

        def eligible(name: str) -> bool:
            if name == "retry_workflows":
                return workflow.status == WorkflowStatus.FAILED
            return workflow.status not in WORKFLOW_FINISHED_STATUSES

        return {
            "workflow": workflow,
            "status_badge": workflow_badge(workflow.status),
            "created": display.relative_time(workflow.created_at),
            "finished": display.relative_time(workflow.finished_at),
            "steps": steps,
            "json_blocks": [("Result", display.pretty_json(workflow.result))],
            "object_actions": self.available_object_actions(request, eligible, OBJECT_ACTIONS),
        }

    @admin.action(
        description="Retry the failed steps of selected workflows", permissions=["change"]
    )
    def retry_workflows(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        rows, truncated = first_selected(queryset, "pk", "status")
        engine = get_engine(queryset.db)
        done = 0
        skipped: Counter[str] = Counter()
        for pk, status in rows:
            if status != WorkflowStatus.FAILED:
                skipped[str(WorkflowStatus(status).label).lower()] += 1
            elif engine.retry_workflow(pk):
                done += 1
        self.report(
            request,
            noun="workflow",
            verb="retried",
            done=done,
            skipped=skipped,
            truncated=truncated,
            rule="only failed workflows are retried",
        )

    @admin.action(description="Cancel selected workflows", permissions=["change"])
    def cancel_workflows(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        rows, truncated = first_selected(queryset, "pk", "status")
        engine = get_engine(queryset.db)
        done = 0
        skipped: Counter[str] = Counter()
        for pk, status in rows:
            if status in WORKFLOW_FINISHED_STATUSES:
                skipped[str(WorkflowStatus(status).label).lower()] += 1
            elif engine.cancel_workflow(pk):
                done += 1
        self.report(
            request,
            noun="workflow",
            verb="cancelled (running steps are asked to stop; sagas compensate)",
            done=done,
            skipped=skipped,
            truncated=truncated,
            rule="finished workflows cannot be cancelled",
        )
