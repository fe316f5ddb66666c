"""PostgreSQL's workflow statements (``workflows_postgres_sql``) in place of the
ORM's, for the advance's hot path: lock the workflows, read the steps an
outcome needs, insert the next steps' jobs (with their NOTIFY), save the steps.
The rest of the workflow operations is ``engine.workflows`` (the ORM engine's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django_jobs.engine.pg import JOBS_CHANNEL, hot_cursor
from django_jobs.engine.workflows_postgres_sql import (
    INSERT_STEP_JOBS,
    LOAD_OUTCOME_STEPS,
    LOCK_WORKFLOWS,
    UPDATE_STEPS,
)
from django_jobs.models import Job, Workflow, WorkflowStep

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


class PostgresWorkflowOperations:
    """Mixed into PostgresEngine before GenericEngine (``alias``, ``connection``,
    ``notify_enabled`` are the engine's)."""

    alias: str

    if TYPE_CHECKING:  # the engine's (a stub here would shadow them in the MRO)

        @property
        def connection(self) -> BaseDatabaseWrapper: ...

        @property
        def notify_enabled(self) -> bool: ...

    def _lock_workflows(self, workflow_ids: Sequence[int]) -> list[Workflow]:
        return list(Workflow.objects.using(self.alias).raw(LOCK_WORKFLOWS, [list(workflow_ids)]))

    def _outcome_steps(self, workflow_ids: list[int], job_ids: list[int]) -> list[WorkflowStep]:
        params = {"workflow_ids": workflow_ids, "job_ids": job_ids}
        return list(WorkflowStep.objects.using(self.alias).raw(LOAD_OUTCOME_STEPS, params))

    def _update_steps(self, steps: list[WorkflowStep]) -> None:
        def encoded(value: Any) -> str | None:
            return None if value is None else json.dumps(value)

        with self.connection.cursor() as cursor:
            cursor.execute(
                UPDATE_STEPS,
                [
                    [s.pk for s in steps],
                    [s.status for s in steps],
                    [json.dumps(s.args) for s in steps],
                    [s.remaining for s in steps],
                    [encoded(s.result) for s in steps],
                    [s.started_at for s in steps],
                    [s.finished_at for s in steps],
                    [s.job_id for s in steps],
                ],
            )

    def _insert_step_jobs(self, jobs: list[Job]) -> None:
        with hot_cursor(self.connection) as cursor:
            cursor.execute(
                INSERT_STEP_JOBS,
                {
                    "task_name": [j.task_name for j in jobs],
                    "queue_name": [j.queue_name for j in jobs],
                    "priority": [j.priority for j in jobs],
                    "args": [json.dumps(j.args) for j in jobs],
                    "kwargs": [json.dumps(j.kwargs) for j in jobs],
                    "max_attempts": [j.max_attempts for j in jobs],
                    "timeout": [j.timeout for j in jobs],
                    "workflow_id": [j.workflow_id for j in jobs],
                    "workflow_position": [j.workflow_position for j in jobs],
                    "notify": self.notify_enabled,
                    "channel": JOBS_CHANNEL,
                },
            )
            inserted = sorted(cursor.fetchall())  # by id == input order
        for job, (job_id, run_after, enqueued_at, _) in zip(jobs, inserted, strict=True):
            job.pk, job.run_after, job.enqueued_at = job_id, run_after, enqueued_at
            job._state.adding, job._state.db = False, self.alias
