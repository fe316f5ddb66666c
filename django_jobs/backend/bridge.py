"""Run ``django.tasks`` tasks on the django_jobs worker.

The runner knows django_jobs :class:`~django_jobs.tasks.Task` objects. For a
``django.tasks`` Task it asks :func:`bridged_task` for one: same dotted name,
the task's options (or its backend's defaults), and a function that passes a
``TaskContext`` when the task ``takes_context``. ``job_started`` /
``job_finished`` of bridged tasks are forwarded as Django's ``task_started`` /
``task_finished`` with the backend class as sender, through ``send_robust``:
a raising receiver is logged and never changes the job's outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from django.dispatch import receiver
from django.tasks import Task as DjangoTask
from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from django_jobs import signals
from django_jobs.backend.results import build_result, task_error, task_for_row
from django_jobs.context import current_job
from django_jobs.models import Job
from django_jobs.status import JobStatus
from django_jobs.tasks import Task

logger = logging.getLogger("django_jobs.backend")


@dataclasses.dataclass(frozen=True, slots=True)
class BridgedTask(Task[..., Any]):
    """A django_jobs Task that runs a ``django.tasks`` Task."""

    django_task: Any = None
    # The backend class: sender of task_started / task_finished (looked up once).
    sender: Any = None


_bridges: dict[str, BridgedTask] = {}
# TaskResult of each running attempt, keyed by (job id, claim token): the same
# object goes to task_started, to the task's TaskContext and to task_finished.
_running: dict[tuple[int, Any], TaskResult[..., Any]] = {}
_lock = threading.Lock()


def _backend_defaults(django_task: DjangoTask[..., Any]) -> dict[str, Any]:
    backend = task_backends[django_task.backend]
    return {
        "max_attempts": getattr(backend, "default_max_attempts", None),
        "timeout": getattr(backend, "default_timeout", None),
        "backoff": getattr(backend, "default_backoff", None),
        "sender": type(backend),
    }


def bridged_task(django_task: DjangoTask[..., Any]) -> BridgedTask:
    """The django_jobs Task that runs ``django_task`` (cached per dotted path)."""
    name = django_task.module_path
    found = _bridges.get(name)
    if found is not None and found.django_task is django_task:
        return found
    defaults = _backend_defaults(django_task)

    def option(key: str) -> Any:
        value = getattr(django_task, key, None)
        return value if value is not None else defaults.get(key)

    created = BridgedTask(
        func=_runner_for(django_task),
        name=name,
        queue_name=django_task.queue_name,
        priority=django_task.priority,
        max_attempts=option("max_attempts"),
        backoff=option("backoff"),
        timeout=option("timeout"),
        atomic=bool(getattr(django_task, "atomic", False)),
        retry_on=tuple(getattr(django_task, "retry_on", ())),
        discard_on=tuple(getattr(django_task, "discard_on", ())),
        django_task=django_task,
        sender=defaults["sender"],
    )
    with _lock:
        _bridges[name] = created
    return created


def _runner_for(django_task: DjangoTask[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        if not django_task.takes_context:
            return django_task.call(*args, **kwargs)
        job = current_job()
        result = _running.get((job.id, job.claim_token))
        if result is None:
            result = _running_result(django_task, job)
        return django_task.call(TaskContext(task_result=result), *args, **kwargs)

    run.__name__ = run.__qualname__ = django_task.name
    return run


def _previous_errors(job: Any) -> list[dict[str, Any]]:
    """Errors of earlier attempts; only retries (attempt > 1) pay the query."""
    if job.attempts <= 1:
        return []
    alias = getattr(job, "database", None) or job._state.db  # ClaimedJob or Job
    found = Job.objects.using(alias).filter(pk=job.id).values_list("errors", flat=True).first()
    return list(found or [])


def _running_result(django_task: DjangoTask[..., Any], job: Any) -> TaskResult[..., Any]:
    alias = django_task.backend
    task = task_for_row(django_task, alias, job.priority, job.queue_name, job.requested_run_after)
    return build_result(
        job,
        task,
        alias,
        status=JobStatus.RUNNING,
        attempts=job.attempts,
        errors=_previous_errors(job),
        worker_id=job.worker_id,
        started_at=job.started_at,
        last_attempted_at=job.last_attempted_at,
    )


@receiver(signals.job_started, dispatch_uid="django_jobs.backend.task_started")
def _send_task_started(sender: Any, job: Any, **kwargs: Any) -> None:
    if not isinstance(sender, BridgedTask):
        return
    result = _running_result(sender.django_task, job)
    _running[(job.id, job.claim_token)] = result
    task_started.send_robust(sender=sender.sender, task_result=result)


@receiver(signals.job_finished, dispatch_uid="django_jobs.backend.task_finished")
def _send_task_finished(
    sender: Any,
    job: Any,
    status: str,
    result: Any = None,
    error: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    if not isinstance(sender, BridgedTask):
        return
    task_result = _running.pop((job.id, job.claim_token), None)
    if task_result is None:
        task_result = _running_result(sender.django_task, job)
    if error is not None:
        task_result.errors.append(task_error(error))
    # READY: this attempt failed and a retry is scheduled.
    # CANCELLED (stopped by an operator) has no django.tasks twin: FAILED, as results.py says.
    final = status in (JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED)
    shown = JobStatus.FAILED if status == JobStatus.CANCELLED else status
    object.__setattr__(task_result, "status", TaskResultStatus(shown))
    object.__setattr__(task_result, "finished_at", timezone.now() if final else None)
    if status == JobStatus.SUCCESSFUL:
        object.__setattr__(task_result, "_return_value", result)
    task_finished.send_robust(sender=sender.sender, task_result=task_result)
