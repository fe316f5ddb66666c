"""Workflow operations of the ORM engine (every database; PostgreSQL replaces
the row lock and adds wake-ups, see ``workflows_postgres_sql``).

The engine's completion and give-up paths call :meth:`advance_completed` /
:meth:`advance_failed` for jobs that have a ``workflow_id``, inside the
transaction that records the outcome: the outcome, the advance (next job,
fan-in, compensation) and, for an atomic task, the task's own writes commit
together or not at all. Plain jobs never take this path. Each advance first
locks the Workflow row (SELECT ... FOR UPDATE; on SQLite the IMMEDIATE
transaction already holds the database's write lock), so the advances of one
workflow run one at a time and see each other's committed writes. Workflows
are locked in id order when one batch completes jobs of several, so two
workers never wait on each other in a cycle.

:meth:`settle_orphans` (run after lease recovery) advances steps whose job
finished without an advance: dead-lettered by recovery, cancelled by an
operator.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Workflow, WorkflowStep
from django_jobs.rows import Completion
from django_jobs.status import FINISHED_STATUSES, JobStatus, StepStatus
from django_jobs.workflows.advance import STEP_FIELDS, WORKFLOW_FIELDS, WorkflowState

if TYPE_CHECKING:
    from django_jobs.models import JobQuerySet
    from django_jobs.rows import CancelReport
    from django_jobs.workflows.canvas import PlannedStep

logger = logging.getLogger("django_jobs.workflows")

CANCELLED_BY_OPERATOR = "its job was cancelled by an operator"


class WorkflowOperations:
    """Mixed into GenericEngine (``alias``, ``connection``, ``_after_enqueue``)."""

    alias: str

    def _after_enqueue(self, jobs: list[Job]) -> None:  # GenericEngine's
        raise NotImplementedError

    if TYPE_CHECKING:
        # CancelOperations' (after this mixin in GenericEngine's MRO: a stub here
        # would shadow it), and GenericEngine's.
        def cancel(self, ids: Sequence[int]) -> CancelReport: ...

        def _jobs(self) -> JobQuerySet: ...

    # -- locking and writing -------------------------------------------------

    def _lock_workflow(self, workflow_id: int) -> Workflow | None:
        """The Workflow row, locked until the transaction ends (None: deleted)."""
        return Workflow.objects.using(self.alias).select_for_update().filter(pk=workflow_id).first()

    def _load(self, workflow_id: int, job_ids: Sequence[int] = ()) -> WorkflowState | None:
        """Lock the workflow and load its steps: all of them, or with ``job_ids``
        (outcomes of a chain, group or chord) the containers and those jobs'
        steps, the rest loaded as needed (see WorkflowState)."""
        workflow = self._lock_workflow(workflow_id)
        if workflow is None:
            return None
        steps = WorkflowStep.objects.using(self.alias).filter(workflow_id=workflow_id)
        if not job_ids or workflow.kind == Workflow.Kind.SAGA:
            return WorkflowState(workflow, list(steps), timezone.now())
        some = steps.filter(Q(job_id__in=job_ids) | ~Q(kind=WorkflowStep.Kind.TASK))
        return WorkflowState(
            workflow,
            list(some),
            timezone.now(),
            children_of=lambda position: list(steps.filter(parent_position=position)),
        )

    def _insert_step_jobs(self, jobs: list[Job]) -> None:
        Job.objects.using(self.alias).bulk_create(jobs)

    def _write(self, state: WorkflowState, *, new: bool = False) -> None:
        """Create the jobs of the steps started, then save the steps and workflow."""
        wf = state.workflow
        jobs = []
        for step in state.new_jobs:
            options = step.options
            jobs.append(
                Job(
                    task_name=step.task_name,
                    queue_name=options["queue_name"],
                    priority=options["priority"],
                    args=step.args,
                    kwargs=step.kwargs,
                    max_attempts=options["max_attempts"],
                    timeout=options["timeout"],
                    run_after=state.now,
                    enqueued_at=state.now,
                    workflow_id=wf.pk,
                    workflow_position=step.position,
                )
            )
        if jobs:
            self._insert_step_jobs(jobs)
            for step, job in zip(state.new_jobs, jobs, strict=True):
                step.job_id = job.pk
            self._after_enqueue(jobs)
        steps = WorkflowStep.objects.using(self.alias)
        if new:
            steps.bulk_create(state.steps)
        elif state.dirty:
            steps.bulk_update(list(state.dirty.values()), STEP_FIELDS)
        if state.workflow_changed and not new:
            wf.save(using=self.alias, update_fields=WORKFLOW_FIELDS)

    # -- enqueue -------------------------------------------------------------

    def insert_workflow(self, kind: str, planned: Sequence[PlannedStep]) -> Workflow:
        """Write a workflow, its steps and its first jobs, in the caller's transaction."""
        with transaction.atomic(using=self.alias):
            workflow = Workflow.objects.using(self.alias).create(kind=kind)
            steps = [
                WorkflowStep(
                    workflow=workflow,
                    position=p.position,
                    parent_position=p.parent_position,
                    path=p.path,
                    kind=p.kind,
                    role=p.role,
                    compensates=p.compensates,
                    **p.fields,
                )
                for p in planned
            ]
            state = WorkflowState(workflow, steps, timezone.now())
            state.start_root()
            self._write(state, new=True)
        return workflow

    # -- outcomes (called inside the outcome's transaction) ------------------

    def advance_completed(self, completions: Sequence[Completion]) -> None:
        """Advance the workflows of these completed jobs (their completion is
        written, in the current transaction)."""
        by_workflow: dict[int, list[Completion]] = defaultdict(list)
        for completion in completions:
            if completion.job.workflow_id is not None:
                by_workflow[completion.job.workflow_id].append(completion)
        for workflow_id in sorted(by_workflow):  # one lock order for every worker
            done = by_workflow[workflow_id]
            state = self._load(workflow_id, [c.job.id for c in done])
            if state is None:
                continue
            for completion in done:
                value = json.loads(completion.result_json)
                state.job_finished(completion.job.id, True, value)
            self._write(state)

    def advance_failed(self, job_id: int, workflow_id: int, reason: str) -> None:
        """Advance the workflow of a job that just failed for good."""
        state = self._load(workflow_id, [job_id])
        if state is not None and state.job_finished(job_id, False, reason=reason):
            self._write(state)

    def settle_orphans(self, limit: int = 50) -> int:
        """Advance steps whose job finished with no advance (dead-lettered by lease
        recovery, cancelled by an operator); returns how many steps."""
        workflow_ids = list(
            WorkflowStep.objects.using(self.alias)
            .filter(
                status=StepStatus.RUNNING,
                kind=WorkflowStep.Kind.TASK,
                job__status__in=sorted(FINISHED_STATUSES),
            )
            .order_by("workflow_id")
            .values_list("workflow_id", flat=True)
            .distinct()[:limit]
        )
        settled = 0
        for workflow_id in workflow_ids:
            with transaction.atomic(using=self.alias):
                state = self._load(workflow_id)
                if state is None:
                    continue
                # Read after the lock: an advance that committed meanwhile is seen.
                running = [s.job_id for s in state.steps if s.status == StepStatus.RUNNING]
                finished = list(
                    Job.objects.using(self.alias)
                    .filter(pk__in=[i for i in running if i is not None])
                    .filter(status__in=sorted(FINISHED_STATUSES))
                    .values_list("pk", "status", "result")
                )
                for job_id, status, result in finished:
                    ok = status == JobStatus.SUCCESSFUL
                    reason = "" if ok else self._failure_reason(job_id, status)
                    settled += state.job_finished(job_id, ok, result, reason)
                self._write(state)
        if settled:
            logger.warning("settled %d workflow step(s) whose outcome had no advance", settled)
        return settled

    def _failure_reason(self, job_id: int, status: str) -> str:
        if status == JobStatus.CANCELLED:
            return CANCELLED_BY_OPERATOR
        letter = DeadLetter.objects.using(self.alias).filter(job_id=job_id).order_by("-id").first()
        return letter.reason if letter is not None else "failed"

    # -- operator actions ----------------------------------------------------

    def _cancel_ready(self, job_ids: list[int]) -> set[int]:
        """READY -> CANCELLED for these jobs; the ids that were."""
        jobs = Job.objects.using(self.alias)
        # Locked, then re-checked by the UPDATE: a job claimed meanwhile is left running.
        ready = list(
            jobs.select_for_update()
            .filter(pk__in=job_ids, status=JobStatus.READY)
            .values_list("pk", flat=True)
        )
        if ready:
            jobs.filter(pk__in=ready, status=JobStatus.READY).update(
                status=JobStatus.CANCELLED, finished_at=timezone.now()
            )
        return set(ready)

    def cancel_workflow(self, workflow_id: int) -> bool:
        """Cancel a running workflow: pending steps and READY jobs CANCELLED; a
        saga runs its compensations (after its running step, if any). A RUNNING
        step is asked to stop, as ``Job.cancel()`` asks (its worker hears of it
        at its next heartbeat). False: it had finished (or was cancelled already)."""
        with transaction.atomic(using=self.alias):
            state = self._load(workflow_id)
            if state is None or not state.cancel():
                return False
            ids = [s.job_id for s in state.cancel_jobs if s.job_id is not None]
            state.jobs_cancelled(self._cancel_ready(ids) if ids else set())
            self._write(state)
            running = list(
                self._jobs()
                .filter(workflow_id=workflow_id, status=JobStatus.RUNNING)
                .values_list("pk", flat=True)
            )
        if running:
            # After the commit, in a transaction of its own: a completion locks
            # the job row, then the workflow row; holding the workflow row while
            # locking job rows here could deadlock with it. A step that finished
            # meanwhile is simply not cancelled.
            self.cancel(running)
        return True

    def retry_workflow(self, workflow_id: int) -> int:
        """A FAILED workflow's failed steps run again (new jobs); returns how many."""
        with transaction.atomic(using=self.alias):
            state = self._load(workflow_id)
            if state is None:
                return 0
            retried = state.retry()
            if retried:
                self._write(state)
        return retried
