"""Workflow operations of the ORM engine (every database; PostgreSQL replaces
the hot statements, see ``workflows_postgres``).

The engine's completion and give-up paths call :meth:`advance_completed` /
:meth:`advance_failed` for jobs that have a ``workflow_id``, inside the
transaction that records the outcome: the outcome, the advance (next job,
fan-in, compensation) and, for an atomic task, the task's own writes commit
together or not at all. Plain jobs never take this path. Each advance first
locks the Workflow rows (SELECT ... FOR UPDATE; on SQLite the IMMEDIATE
transaction already holds the database's write lock), so the advances of one
workflow run one at a time and see each other's committed writes. A batch of
completions locks its workflows in id order, in one statement, so two
workers never wait on each other in a cycle; it then reads the steps the
outcomes need (not every member of a long chain), and writes the next jobs
and the changed steps for all its workflows at once.

:meth:`settle_orphans` (run after lease recovery) advances steps whose job
finished without an advance: dead-lettered by recovery, cancelled by an
operator while no worker held it."""

from __future__ import annotations

import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Workflow, WorkflowStep
from django_jobs.rows import Completion
from django_jobs.status import (
    FINISHED_STATUSES,
    WORKFLOW_FINISHED_STATUSES,
    JobStatus,
    StepStatus,
    WorkflowStatus,
)
from django_jobs.workflows.advance import (
    STEP_FIELDS,
    WORKFLOW_FIELDS,
    WorkflowState,
    ended_container_status,
)

if TYPE_CHECKING:
    from django_jobs.models import JobQuerySet
    from django_jobs.rows import Cancellation, CancelReport
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

    def _lock_workflows(self, workflow_ids: Sequence[int]) -> list[Workflow]:
        """These Workflow rows, locked in id order until the transaction ends
        (a deleted one is missing)."""
        found = Workflow.objects.using(self.alias).select_for_update().filter(pk__in=workflow_ids)
        return list(found.order_by("pk"))

    def _load(self, workflow_id: int) -> WorkflowState | None:
        """Lock the workflow and load all its steps (None: deleted)."""
        locked = self._lock_workflows([workflow_id])
        if not locked:
            return None
        steps = WorkflowStep.objects.using(self.alias).filter(workflow_id=workflow_id)
        return WorkflowState(locked[0], list(steps), timezone.now())

    def _load_outcomes(self, job_ids: dict[int, list[int]]) -> list[WorkflowState]:
        """Lock the workflows of these finished jobs (workflow id -> job ids), in
        id order, and load what their advances read: a saga's steps, all of them
        (a few); otherwise the jobs' steps, their ancestors (containers, by path
        prefix) and the step at the next position (a chain's next member, see
        WorkflowState._next_sibling). Other members are read only when needed,
        so a step costs the same in a chain of 3 or of 1,000, and the reads are
        a constant number of queries per batch, not per workflow."""
        workflows = self._lock_workflows(sorted(job_ids))
        steps = WorkflowStep.objects.using(self.alias)
        loaded: dict[int, list[WorkflowStep]] = defaultdict(list)
        sagas = [w.pk for w in workflows if w.kind == Workflow.Kind.SAGA]
        for step in steps.filter(workflow_id__in=sagas) if sagas else ():
            loaded[step.workflow_id].append(step)
        others = [w.pk for w in workflows if w.kind != Workflow.Kind.SAGA]
        if others:
            ids = [job_id for pk in others for job_id in job_ids[pk]]
            for step in self._outcome_steps(others, ids):
                loaded[step.workflow_id].append(step)
        now = timezone.now()
        return [
            WorkflowState(
                workflow,
                loaded[workflow.pk],
                now,
                children_of=None
                if workflow.kind == Workflow.Kind.SAGA
                else self._children_loader(workflow.pk),
            )
            for workflow in workflows
        ]

    def _outcome_steps(self, workflow_ids: list[int], job_ids: list[int]) -> list[WorkflowStep]:
        """The RUNNING task steps of these jobs, their ancestors and, for a chain
        member, the step at the next position (PostgreSQL: one statement)."""
        steps = WorkflowStep.objects.using(self.alias)
        finished = list(
            steps.filter(
                workflow_id__in=workflow_ids,
                job_id__in=job_ids,
                status=StepStatus.RUNNING,
                kind=WorkflowStep.Kind.TASK,
            ).order_by("workflow_id")
        )
        if not finished:
            return []
        around = Q()
        for pk, group in itertools.groupby(finished, key=lambda step: step.workflow_id):
            positions: set[int] = set()
            paths: set[str] = set()
            for step in group:
                if step.role == WorkflowStep.Role.STEP:  # of a chain: its next member
                    positions.add(step.position + 1)
                parts = step.path.split(".") if step.path else []
                paths.update(".".join(parts[:n]) for n in range(len(parts)))
            around |= Q(workflow_id=pk) & (
                Q(position__in=positions) | Q(path__in=paths) & ~Q(kind=WorkflowStep.Kind.TASK)
            )
        seen = {(step.workflow_id, step.position) for step in finished}
        return finished + [
            s for s in steps.filter(around) if (s.workflow_id, s.position) not in seen
        ]

    def _children_loader(self, workflow_id: int) -> Callable[[int], list[WorkflowStep]]:
        """Reads the members of one container of the workflow (WorkflowState's ``children_of``)."""

        def children_of(position: int) -> list[WorkflowStep]:
            steps = WorkflowStep.objects.using(self.alias)
            return list(steps.filter(workflow_id=workflow_id, parent_position=position))

        return children_of

    def _insert_step_jobs(self, jobs: list[Job]) -> None:
        Job.objects.using(self.alias).bulk_create(jobs)

    def _update_steps(self, steps: list[WorkflowStep]) -> None:
        """Save STEP_FIELDS of these steps (one UPDATE each; PostgreSQL: one in all)."""
        rows = WorkflowStep.objects.using(self.alias)
        for step in steps:
            rows.filter(pk=step.pk).update(**{name: getattr(step, name) for name in STEP_FIELDS})

    def _write(self, states: Sequence[WorkflowState], *, new: bool = False) -> None:
        """Create the jobs of the steps started (one insert for all the states),
        then save the steps and workflows that changed."""
        started: list[WorkflowStep] = []
        jobs = []
        for state in states:
            for step in state.new_jobs:
                options = step.options
                started.append(step)
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
                        workflow_id=state.workflow.pk,
                        workflow_position=step.position,
                    )
                )
        if jobs:
            self._insert_step_jobs(jobs)
            for step, job in zip(started, jobs, strict=True):
                step.job_id = job.pk
            self._after_enqueue(jobs)
        if new:
            for state in states:
                WorkflowStep.objects.using(self.alias).bulk_create(state.steps)
            return
        dirty = [step for state in states for step in state.dirty.values()]
        if dirty:
            self._update_steps(dirty)
        for state in states:
            if not state.workflow_changed:
                continue
            wf = state.workflow
            wf.save(using=self.alias, update_fields=WORKFLOW_FIELDS)
            if wf.status in WORKFLOW_FINISHED_STATUSES and wf.status != WorkflowStatus.SUCCESSFUL:
                # Its chains and groups that were not loaded end as _end ended the others.
                WorkflowStep.objects.using(self.alias).filter(
                    workflow_id=wf.pk, status=StepStatus.RUNNING
                ).exclude(kind=WorkflowStep.Kind.TASK).update(
                    status=ended_container_status(wf.status), finished_at=state.now
                )

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
            self._write([state], new=True)
        return workflow

    # -- outcomes (called inside the outcome's transaction) ------------------

    def advance_completed(self, completions: Sequence[Completion]) -> None:
        """Advance the workflows of these completed jobs (their completion is
        written, in the current transaction)."""
        job_ids: dict[int, list[int]] = defaultdict(list)
        values = {}
        for completion in completions:
            if completion.job.workflow_id is not None:
                job_ids[completion.job.workflow_id].append(completion.job.id)
                values[completion.job.id] = completion.result_json
        if not job_ids:
            return
        states = self._load_outcomes(job_ids)
        for state in states:
            for job_id in job_ids[state.workflow.pk]:
                state.job_finished(job_id, True, json.loads(values[job_id]))
        self._write(states)

    def advance_failed(self, job_id: int, workflow_id: int, reason: str) -> None:
        """Advance the workflow of a job that just failed for good."""
        states = self._load_outcomes({workflow_id: [job_id]})
        if states and states[0].job_finished(job_id, False, reason=reason):
            self._write(states)

    def cancel_running(self, cancellation: Cancellation) -> bool:
        """CancelOperations' (a RUNNING job stopped by its cancel ends CANCELLED)
        and, for a workflow step, the advance in the same transaction: the job
        row is locked before the workflow's, as by a completion. The workflow
        hears of it now, not at the next recovery pass (settle_orphans)."""
        cancel_running = super().cancel_running  # type: ignore[misc]
        workflow_id = cancellation.job.workflow_id
        if workflow_id is None:
            return bool(cancel_running(cancellation))
        with transaction.atomic(using=self.alias):
            if not cancel_running(cancellation):
                return False
            self.advance_failed(cancellation.job.id, workflow_id, CANCELLED_BY_OPERATOR)
        return True

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
                self._write([state])
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
            self._write([state])
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
                self._write([state])
        return retried
