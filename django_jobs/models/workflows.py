"""Workflow and WorkflowStep: a chain, group, chord or saga, all of its state
in these rows (no coordinator process holds any).

Every step of the canvas is a WorkflowStep row, containers too (a chain, a
group): ``position`` numbers them in pre-order, so a container comes before
its members and the members of one container are in their given order;
``parent_position`` names the container. A task step runs as an ordinary
:class:`~django_jobs.models.Job` linked back with ``Job.workflow`` and
``Job.workflow_position``. A chord is stored as a chain of its group and its
callback; a saga as a chain of its steps, each compensation a row of its own
(``role`` compensation, ``compensates`` the step's position).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from django_jobs.status import WORKFLOW_FINISHED_STATUSES, StepStatus, WorkflowStatus


class Workflow(models.Model):
    """One enqueued chain, group, chord or saga."""

    class Kind(models.TextChoices):
        CHAIN = "chain", "Chain"
        GROUP = "group", "Group"
        CHORD = "chord", "Chord"
        SAGA = "saga", "Saga"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(
        max_length=12, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING
    )
    compensating = models.BooleanField(
        default=False, help_text="A saga running its compensations (a step failed or cancel)."
    )
    cancel_requested = models.BooleanField(
        default=False, help_text="Cancelled while a step was running (a saga compensates first)."
    )
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    failed_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Position of the step that failed."
    )
    failure = models.TextField(blank=True, default="", help_text="Why that step failed.")

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Admin: filter by status / kind newest first.
            models.Index(fields=["status", "-id"], name="jobs_workflow_status_id"),
            models.Index(fields=["kind", "-id"], name="jobs_workflow_kind_id"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=WorkflowStatus.values), name="jobs_workflow_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Workflow {self.pk} {self.kind} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in WORKFLOW_FINISHED_STATUSES

    @property
    def result(self) -> Any:
        """The value of the whole canvas: the last step's result (a chain, chord),
        the members' results in order (a group); None until it succeeded."""
        root = self.steps.filter(parent_position__isnull=True, position=0).first()
        return None if root is None else root.result

    @property
    def failed_step(self) -> WorkflowStep | None:
        if self.failed_position is None:
            return None
        return self.steps.filter(position=self.failed_position).first()

    def cancel(self) -> bool:
        """Cancel this workflow (see ``Engine.cancel_workflow``); False if it had finished."""
        # The engine imports this module: imported when called.
        from django_jobs.engine import get_engine

        changed = get_engine(self._state.db or "default").cancel_workflow(self.pk)
        self.refresh_from_db()
        return changed

    def retry(self) -> int:
        """Run the failed steps of a FAILED workflow again; returns how many."""
        # The engine imports this module: imported when called.
        from django_jobs.engine import get_engine

        retried = get_engine(self._state.db or "default").retry_workflow(self.pk)
        self.refresh_from_db()
        return retried

    def wait(self, timeout: float | None = None, *, interval: float = 0.05) -> Workflow:
        """Block until the workflow finished (any final status); return self, refreshed.

        Raises ``TimeoutError`` after ``timeout`` seconds (None: forever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh_from_db()
            if self.is_finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {self.pk} is still {self.status} after {timeout:g}s")
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)


class WorkflowStep(models.Model):
    """One node of a workflow's canvas: a task, or a chain / group of nodes."""

    class Kind(models.TextChoices):
        TASK = "task", "Task"
        CHAIN = "chain", "Chain"
        GROUP = "group", "Group"

    class Role(models.TextChoices):
        STEP = "step", "Step"  # of a chain or saga (or the workflow itself)
        MEMBER = "member", "Group member"
        CALLBACK = "callback", "Chord callback"
        COMPENSATION = "compensation", "Compensation"

    id = models.BigAutoField(primary_key=True)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="Pre-order number in the canvas (0: root).")
    parent_position = models.PositiveIntegerField(null=True, blank=True)
    path = models.CharField(max_length=200, help_text="Indexes from the root, e.g. 1.0.")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STEP)
    compensates = models.PositiveIntegerField(
        null=True, blank=True, help_text="A compensation: position of the saga step it undoes."
    )
    task_name = models.CharField(max_length=255, blank=True, default="")
    args = models.JSONField(
        default=list, blank=True, help_text="As given; once started, as the job got them."
    )
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(
        default=dict, blank=True, help_text="queue_name, priority, max_attempts, timeout."
    )
    pass_result = models.BooleanField(
        default=True, help_text="Gets the previous result as first argument (s(), not si())."
    )
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    # No database constraint: pruning deletes finished jobs in bulk, the step keeps its result.
    job = models.ForeignKey(
        "django_jobs.Job",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    remaining = models.PositiveIntegerField(default=0, help_text="A group: members not done.")
    result = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "position"], name="jobs_workflowstep_position"
            ),
        ]
        indexes = [
            # settle_orphans: running task steps, joined to their jobs.
            models.Index(
                fields=["job"],
                name="jobs_workflowstep_running",
                condition=Q(status=StepStatus.RUNNING, kind="task"),
            ),
        ]

    def __str__(self) -> str:
        what = self.task_name or self.kind
        return f"Step {self.path} {what} [{self.status}]"

    @property
    def depth(self) -> int:
        return 0 if not self.path else self.path.count(".") + 1
