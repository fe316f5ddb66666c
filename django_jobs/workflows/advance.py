"""What happens when a step of a workflow finishes, decided on the workflow's
rows as loaded under its row lock (``SELECT ... FOR UPDATE``).

The engine (``engine.workflows``) locks the Workflow row, loads its steps
into a :class:`WorkflowState`, calls one of ``job_finished``, ``start_root``,
``cancel`` or ``retry``, and writes what :meth:`WorkflowState.changes`
returns (new jobs, changed steps, the workflow) in the same transaction as
the step's outcome. Every decision is guarded by the step's status (a step
moves out of RUNNING once), and the lock serializes the workflow's
advances, so a group's fan-in counter (``remaining``) never misses or
doubles a member, and no next step or callback is created twice.

Rules:

- task started: its job is created; a step with ``pass_result`` gets the
  previous result as its first positional argument.
- chain: the next member starts with the result; the last one's result is
  the chain's. group: members start together; when ``remaining`` reaches 0
  its result is the members' results in order. A chord is a chain of its
  group and its callback.
- a task failed for good: a saga starts its compensations, in reverse order
  of the completed steps, one at a time; anything else is FAILED, naming the
  step. A compensation that fails for good makes the saga FAILED.
- a workflow that ends FAILED, CANCELLED or COMPENSATED ends its chains and
  groups still running with it (FAILED, else CANCELLED); a retry runs them
  again.
- nothing new starts while the workflow is not RUNNING (failed, cancelled, or
  a saga compensating); a late outcome is still recorded on its step.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django_jobs.models import Workflow, WorkflowStep
from django_jobs.status import StepStatus, WorkflowStatus

logger = logging.getLogger("django_jobs.workflows")

TASK, CHAIN, GROUP = WorkflowStep.Kind.TASK, WorkflowStep.Kind.CHAIN, WorkflowStep.Kind.GROUP
COMPENSATION = WorkflowStep.Role.COMPENSATION
# What an advance changes on a step (attnames: job_id, not the related job).
STEP_FIELDS = [
    "status",
    "args",
    "remaining",
    "result",
    "started_at",
    "finished_at",
    "job_id",
]
WORKFLOW_FIELDS = [
    "status",
    "compensating",
    "cancel_requested",
    "finished_at",
    "failed_position",
    "failure",
]


def ended_container_status(workflow_status: str) -> str:
    """The status of a chain or group still RUNNING when its workflow ended
    ``workflow_status`` (not SUCCESSFUL): FAILED with it, else CANCELLED."""
    failed = workflow_status == WorkflowStatus.FAILED
    return StepStatus.FAILED if failed else StepStatus.CANCELLED


class WorkflowState:
    """One workflow and its steps, in memory, under the workflow's row lock."""

    def __init__(
        self,
        workflow: Workflow,
        steps: list[WorkflowStep],
        now: datetime,
        children_of: Callable[[int], list[WorkflowStep]] | None = None,
    ) -> None:
        """``steps``: all of them, or with ``children_of`` (which loads the members
        of a container) only some: the containers and the steps whose jobs
        finished. A member is then loaded only when it is needed (the next step
        of a chain; a group's results once ``remaining`` reaches 0), so a group
        of N members costs O(N) reads in all, not O(N) per member."""
        self.workflow = workflow
        self._children_of = children_of
        self._complete: set[int] = set()
        self.now = now
        self.steps = sorted(steps, key=lambda s: s.position)
        self.by_position = {s.position: s for s in self.steps}
        self.by_job = {s.job_id: s for s in self.steps if s.job_id is not None}
        self.children: dict[int | None, list[WorkflowStep]] = defaultdict(list)
        self.compensation_of: dict[int, WorkflowStep] = {}
        for step in self.steps:
            if step.role == COMPENSATION and step.compensates is not None:
                self.compensation_of[step.compensates] = step
            else:
                self.children[step.parent_position].append(step)
        self.dirty: dict[int, WorkflowStep] = {}
        self.new_jobs: list[WorkflowStep] = []  # task steps whose job is to be created
        self.cancel_jobs: list[WorkflowStep] = []  # running steps whose READY job to cancel
        self.workflow_changed = False

    def _kids(self, position: int) -> list[WorkflowStep]:
        """The members of container ``position``, in order (loaded when partial)."""
        if self._children_of is not None and position not in self._complete:
            self._complete.add(position)
            for step in self._children_of(position):
                if step.position not in self.by_position:
                    self.by_position[step.position] = step
                    self.steps.append(step)
                    if step.job_id is not None:
                        self.by_job[step.job_id] = step
            self.children[position] = sorted(
                (s for s in self.by_position.values() if s.parent_position == position),
                key=lambda s: s.position,
            )
        return self.children[position]

    @property
    def root(self) -> WorkflowStep:
        return self.children[None][0]

    def _touch(self, step: WorkflowStep) -> None:
        self.dirty[step.position] = step

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.workflow, name, value)
        self.workflow_changed = True

    def _may_proceed(self) -> bool:
        wf = self.workflow
        return wf.status == WorkflowStatus.RUNNING and not (wf.compensating or wf.cancel_requested)

    # -- starting ----------------------------------------------------------

    def start_root(self) -> None:
        self._start(self.root, has_input=False, value=None)

    def _start(self, step: WorkflowStep, has_input: bool, value: Any) -> None:
        step.status = StepStatus.RUNNING
        step.started_at = self.now
        self._touch(step)
        if step.kind == TASK:
            if has_input and step.pass_result:
                step.args = [value, *step.args]
            self.new_jobs.append(step)
        elif step.kind == CHAIN:
            self._start(self._kids(step.position)[0], has_input, value)
        else:
            members = self._kids(step.position)
            step.remaining = len(members)
            for member in members:
                self._start(member, has_input, value)

    # -- outcomes ----------------------------------------------------------

    def job_finished(self, job_id: int, ok: bool, value: Any = None, reason: str = "") -> bool:
        """Record job ``job_id``'s outcome (a result, or failed for good with
        ``reason``). False, and nothing changed, unless its step is RUNNING on it."""
        step = self.by_job.get(job_id)
        if step is None or step.status != StepStatus.RUNNING:
            logger.info(
                "workflow %s: outcome of job %s ignored (its step is %s)",
                self.workflow.pk,
                job_id,
                "unknown" if step is None else step.status,
            )
            return False
        if ok:
            self._succeed(step, value)
        else:
            self._fail(step, reason)
        return True

    def _finish_step(self, step: WorkflowStep, status: str, result: Any = None) -> None:
        step.status = status
        step.result = result
        step.finished_at = self.now
        self._touch(step)

    def _succeed(self, step: WorkflowStep, value: Any) -> None:
        self._finish_step(step, StepStatus.SUCCESSFUL, value)
        if step.role == COMPENSATION:
            self._next_compensation()
            return
        parent = self.by_position.get(step.parent_position)  # type: ignore[arg-type]
        if parent is None:
            if self._may_proceed():
                self._end(WorkflowStatus.SUCCESSFUL)
            return
        if parent.kind == GROUP:
            parent.remaining = max(parent.remaining - 1, 0)
            self._touch(parent)
            if parent.remaining == 0:
                self._succeed(parent, [m.result for m in self._kids(parent.position)])
            return
        if not self._may_proceed():
            wf = self.workflow
            if wf.kind == Workflow.Kind.SAGA and wf.cancel_requested and not wf.compensating:
                self._begin_compensation()
            return
        following = self._next_sibling(step)
        if following is not None:
            self._start(following, has_input=True, value=value)
        else:
            self._succeed(parent, value)

    def _next_sibling(self, step: WorkflowStep) -> WorkflowStep | None:
        """The member after ``step`` in its chain, None for the last. A task has
        no descendants, so in pre-order its next sibling, if any, is the step at
        the next position: when the engine loaded that one, the chain's other
        members need not be read (a chain of N steps would cost O(N) per step)."""
        parent = step.parent_position
        if self._children_of is not None and parent not in self._complete and step.kind == TASK:
            candidate = self.by_position.get(step.position + 1)
            if candidate is not None:
                return candidate if candidate.parent_position == parent else None
        siblings = self._kids(parent)  # type: ignore[arg-type]
        index = siblings.index(step)
        return siblings[index + 1] if index + 1 < len(siblings) else None

    def _fail(self, step: WorkflowStep, reason: str) -> None:
        self._finish_step(step, StepStatus.FAILED)
        wf = self.workflow
        where = f"step {step.path or '(root)'} {step.task_name} (job {step.job_id}): {reason}"
        if step.role == COMPENSATION:
            self._set(failed_position=step.position, failure=f"compensation {where}")
            self._end(WorkflowStatus.FAILED)
            return
        if wf.status != WorkflowStatus.RUNNING or wf.compensating:
            return  # a late failure: the workflow already failed or is compensating
        self._set(failed_position=step.position, failure=where)
        if wf.kind == Workflow.Kind.SAGA:
            self._begin_compensation()
        else:
            self._end(WorkflowStatus.FAILED)

    def _end(self, status: str) -> None:
        self._set(status=status, finished_at=self.now)
        if status == WorkflowStatus.SUCCESSFUL:
            return
        stopped = ended_container_status(status)
        for step in self.steps:
            if step.status == StepStatus.PENDING and stopped == StepStatus.CANCELLED:
                self._finish_step(step, StepStatus.CANCELLED)
            elif step.status == StepStatus.RUNNING and step.kind != TASK:
                # A chain or group that will not finish: it ends with the workflow
                # (the engine ends the ones not loaded here the same way).
                self._finish_step(step, stopped)

    # -- sagas -------------------------------------------------------------

    def _begin_compensation(self) -> None:
        self._set(compensating=True)
        for step in self.children[self.root.position]:
            if step.status == StepStatus.PENDING:
                self._finish_step(step, StepStatus.CANCELLED)
        self._next_compensation()

    def _next_compensation(self) -> None:
        """Start the compensation of the latest completed step not compensated yet,
        or end the saga when none is left."""
        for forward in reversed(self.children[self.root.position]):
            undo = self.compensation_of.get(forward.position)
            if forward.status != StepStatus.SUCCESSFUL or undo is None:
                continue
            if undo.status == StepStatus.PENDING:
                self._start(undo, has_input=False, value=None)
                return
            if undo.status != StepStatus.SUCCESSFUL:
                return  # running (or failed): its outcome continues the saga
        cancelled = self.workflow.cancel_requested
        self._end(WorkflowStatus.CANCELLED if cancelled else WorkflowStatus.COMPENSATED)

    # -- operator actions --------------------------------------------------

    def cancel(self) -> bool:
        """Cancel: pending steps CANCELLED, READY jobs to cancel (``cancel_jobs``);
        a saga compensates (once its running step, if any, has finished).
        Then call :meth:`jobs_cancelled` with the jobs that were. False: finished."""
        wf = self.workflow
        if wf.is_finished or wf.cancel_requested:
            return False
        if wf.kind == Workflow.Kind.SAGA:
            self._set(cancel_requested=True)
            if wf.compensating:
                return True  # compensations continue; the saga ends CANCELLED
            forward = self.children[self.root.position]
        else:
            self._end(WorkflowStatus.CANCELLED)
            forward = self.steps
        for step in forward:
            if step.status == StepStatus.PENDING:
                self._finish_step(step, StepStatus.CANCELLED)
            elif step.status == StepStatus.RUNNING and step.kind == TASK:
                self.cancel_jobs.append(step)
        return True

    def jobs_cancelled(self, job_ids: set[int]) -> None:
        """The READY jobs of ``cancel_jobs`` that were cancelled; a running job
        (not cancelled) finishes and its outcome is recorded."""
        for step in self.cancel_jobs:
            if step.job_id in job_ids:
                self._finish_step(step, StepStatus.CANCELLED)
        wf = self.workflow
        if wf.kind == Workflow.Kind.SAGA and not wf.compensating:
            forward = self.children[self.root.position]
            if not any(s.status == StepStatus.RUNNING for s in forward):
                self._begin_compensation()
        elif wf.status == WorkflowStatus.CANCELLED:
            for step in self.steps:
                if step.kind != TASK and step.status == StepStatus.RUNNING:
                    self._finish_step(step, StepStatus.CANCELLED)

    def retry(self) -> int:
        """FAILED workflow: its failed task steps (a saga's failed compensation)
        run again as new jobs; RUNNING again. Returns how many steps."""
        wf = self.workflow
        if wf.status != WorkflowStatus.FAILED:
            return 0
        failed = [
            s
            for s in self.steps
            if s.kind == TASK
            and s.status == StepStatus.FAILED
            and (s.role == COMPENSATION) == wf.compensating
        ]
        for step in failed:
            step.status = StepStatus.RUNNING
            step.finished_at = None
            self._touch(step)
            self.new_jobs.append(step)  # args as its first job got them
        if failed:
            for step in self.steps:  # the chains and groups that _end failed run again
                if step.kind != TASK and step.status == StepStatus.FAILED:
                    step.status, step.finished_at = StepStatus.RUNNING, None
                    self._touch(step)
            self._set(status=WorkflowStatus.RUNNING, finished_at=None, failed_position=None)
            self._set(failure="")
        return len(failed)
