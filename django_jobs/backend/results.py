"""Job rows as ``django.tasks.TaskResult`` objects.

A ``TaskResult`` describes the current run of a job: ``worker_ids`` has one
entry per attempt and ``errors`` one ``TaskError`` per failed attempt, so
``attempts == len(worker_ids)`` and ``TaskContext.attempt`` equal the job's
``attempts``. An operator retry in the admin starts a new run (attempts back
to 0); the full error history stays on ``Job.errors``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist

from django_jobs.backend.registry import django_task_registry
from django_jobs.status import JobStatus
from django_jobs.tasks import not_registered, registry

# CANCELLED has no django.tasks equivalent: the job will never run, so FAILED.
STATUS_MAP: dict[str, TaskResultStatus] = {
    JobStatus.READY: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}
_IN_AN_ATTEMPT = frozenset({JobStatus.RUNNING, JobStatus.SUCCESSFUL})


def django_task_named(name: str) -> Task[..., Any]:
    """The ``django.tasks`` Task at dotted path ``name``, or TaskResultDoesNotExist."""
    if name in registry:
        raise TaskResultDoesNotExist(f"{name!r} is a django_jobs task, not a django.tasks Task")
    found = django_task_registry.get(name)
    if found is None:
        raise TaskResultDoesNotExist(str(not_registered(name)))
    return found


def task_error(entry: dict[str, Any]) -> TaskError:
    return TaskError(
        exception_class_path=str(entry.get("exception_class") or "builtins.Exception"),
        traceback=str(entry.get("traceback") or entry.get("message") or ""),
    )


def current_run(
    status: str, attempts: int, errors: Sequence[dict[str, Any]], worker_id: Any
) -> tuple[list[TaskError], list[str]]:
    """``(errors, worker_ids)`` of the current run, one worker id per attempt."""
    in_attempt = status in _IN_AN_ATTEMPT and worker_id is not None
    failed = max(0, min(attempts - (1 if in_attempt else 0), len(errors)))
    entries = list(errors[len(errors) - failed :]) if failed else []
    worker_ids = [str(entry.get("worker_id") or "") for entry in entries]
    if in_attempt:
        worker_ids.append(str(worker_id))
    return [task_error(entry) for entry in entries], worker_ids


def unvalidated_replace(task: Task[..., Any], **changes: Any) -> Task[..., Any]:
    """``dataclasses.replace`` without re-validating: a stored row stays readable
    after its queue is removed from ``QUEUES``."""
    clone = object.__new__(type(task))
    for field in dataclasses.fields(task):
        object.__setattr__(clone, field.name, changes.get(field.name, getattr(task, field.name)))
    return clone


def task_for_row(
    base: Task[..., Any],
    alias: str,
    priority: int,
    queue_name: str,
    run_after: datetime | None,
) -> Task[..., Any]:
    """``base`` with the options this row was enqueued with; ``run_after`` is
    the one given at enqueue (``Job.requested_run_after``), never a retry's."""
    changes: dict[str, Any] = {}
    if base.priority != priority:
        changes["priority"] = priority
    if base.queue_name != queue_name:
        changes["queue_name"] = queue_name
    if base.backend != alias:
        changes["backend"] = alias
    if base.run_after != run_after:
        changes["run_after"] = run_after
    return unvalidated_replace(base, **changes) if changes else base


class JobRow(Protocol):
    """What a result reads from the job itself: a :class:`~django_jobs.models.Job`
    or a worker's :class:`~django_jobs.engine.base.ClaimedJob`."""

    @property
    def id(self) -> int: ...
    @property
    def args(self) -> Any: ...
    @property
    def kwargs(self) -> Any: ...
    @property
    def enqueued_at(self) -> datetime | None: ...


def build_result(
    job: JobRow,
    task: Task[..., Any],
    alias: str,
    *,
    status: str,
    attempts: int = 0,
    errors: Sequence[dict[str, Any]] = (),
    worker_id: Any = None,
    started_at: datetime | None = None,
    last_attempted_at: datetime | None = None,
    finished_at: datetime | None = None,
    return_value: Any = None,
) -> TaskResult[..., Any]:
    """A ``TaskResult`` for ``job`` whose current run is in ``status``.

    The keywords describe that run; their defaults are those of a run that
    has not started. ``return_value`` is kept only when ``status`` is
    SUCCESSFUL.
    """
    task_errors, worker_ids = current_run(status, attempts, errors, worker_id)
    result = TaskResult(
        task=task,
        id=str(job.id),
        status=STATUS_MAP[status],
        enqueued_at=job.enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
        # Rows written before last_attempted_at existed kept one start: the latest.
        last_attempted_at=last_attempted_at or started_at,
        args=list(job.args),
        kwargs=dict(job.kwargs),
        backend=alias,
        errors=task_errors,
        worker_ids=worker_ids,
    )
    if status == JobStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", return_value)
    return result


def result_for_job(job: Any, alias: str) -> TaskResult[..., Any]:
    """A ``TaskResult`` for a :class:`~django_jobs.models.Job` row."""
    base = django_task_named(job.task_name)
    task = task_for_row(base, alias, job.priority, job.queue_name, job.requested_run_after)
    return build_result(
        job,
        task,
        alias,
        status=job.status,
        attempts=job.attempts,
        errors=job.errors or [],
        worker_id=job.worker_id,
        started_at=job.started_at,
        last_attempted_at=job.last_attempted_at,
        finished_at=job.finished_at,
        return_value=job.result,
    )


def result_for_new_job(job: Any, task: Task[..., Any], alias: str) -> TaskResult[..., Any]:
    """The ``TaskResult`` returned by ``enqueue``: the task exactly as given."""
    return build_result(job, task, alias, status=JobStatus.READY)
