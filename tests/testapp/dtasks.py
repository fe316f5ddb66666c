"""``django.tasks`` tasks run through django_jobs.backend.JobsBackend.

Not a tasks.py: tests/settings.py lists this module in DJANGO_JOBS["TASK_MODULES"].
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.tasks import TaskContext, task

from django_jobs import current_job
from tests.testapp.models import Event, Execution


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def record(tag: str = "") -> int:
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.id


@task(takes_context=True, max_attempts=3, backoff="fixed")
def fails_then_succeeds(context: TaskContext, times: int) -> dict[str, Any]:
    """Fails ``times`` times; each attempt records what its context says."""
    Event.objects.create(
        job_id=int(context.task_result.id),
        name="context",
        value={
            "attempt": context.attempt,
            "worker_ids": context.task_result.worker_ids,
            "errors": [e.exception_class_path for e in context.task_result.errors],
        },
    )
    if context.attempt <= times:
        raise ConnectionError(f"planned failure {context.attempt}/{times}")
    return {"attempt": context.attempt}


@task(max_attempts=2, backoff="fixed")
def raises_value_error() -> None:
    raise ValueError("bad value in the task")


@task(max_attempts=1)
def raises_system_exit() -> None:
    raise SystemExit(3)


@task(max_attempts=1)
def returns_set() -> Any:
    return {1, 2, 3}


@task
async def async_multiply(a: int, b: int) -> int:
    return a * b


@task(takes_context=True)
async def async_with_context(context: TaskContext) -> int:
    return int(context.attempt)


@task(atomic=True, max_attempts=1)
def atomic_fails_after_write(tag: str) -> None:
    Event.objects.create(job_id=current_job().id, name="atomic", value={"tag": tag})
    raise RuntimeError("roll my write back")


@task(atomic=True)
def atomic_succeeds(tag: str) -> str:
    Event.objects.create(job_id=current_job().id, name="atomic", value={"tag": tag})
    return tag


@task(timeout=30, max_attempts=3)
def sleep_for(seconds: float) -> float:
    Event.objects.create(job_id=current_job().id, name="started", value={"pid": os.getpid()})
    time.sleep(seconds)
    return seconds


@task(queue_name="reports")
def with_progress(steps: int, pause: float) -> int:
    for step in range(1, steps + 1):
        time.sleep(pause)
        current_job().set_progress({"done": step, "total": steps})
    return steps
