"""Tasks used by the tests; the worker subprocess imports them by dotted path."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from django_jobs import Discard, Retry, current_job, task
from tests.testapp.models import Event, Execution


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def noop() -> None:
    return None


@task
def record(tag: str = "") -> int:
    """Record this execution; a second execution of the same job violates the unique key."""
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.id


@task(atomic=True)
def record_atomic(tag: str = "") -> int:
    job = current_job()
    Execution.objects.create(job_id=job.id, attempt=job.attempt)
    return job.id


@task(max_attempts=3, backoff="fixed")
def fail_times(times: int) -> int:
    """Fails ``times`` times, then succeeds; returns the successful attempt."""
    attempt = current_job().attempt
    Event.objects.create(job_id=current_job().id, name="attempt", value={"attempt": attempt})
    if attempt <= times:
        raise RuntimeError(f"planned failure {attempt}/{times}")
    return attempt


@task(max_attempts=2, backoff="fixed")
def always_fails() -> None:
    raise ValueError("this task always fails")


@task(max_attempts=5)
def discards() -> None:
    raise Discard("not worth retrying")


@task(max_attempts=5)
def retries_later(seconds: float) -> str:
    if current_job().attempt == 1:
        raise Retry(delay=timedelta(seconds=seconds))
    return "second try"


@task(max_attempts=5, discard_on=(KeyError,))
def raises_key_error() -> None:
    raise KeyError("missing")


@task(max_attempts=5, retry_on=(ConnectionError,))
def raises_type_error() -> None:
    raise TypeError("not in retry_on")


@task
def returns_set() -> Any:
    return {1, 2, 3}


@task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(timeout=1, max_attempts=2, backoff="fixed")
def sleeps_past_timeout(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def with_progress(steps: int) -> int:
    for step in range(1, steps + 1):
        current_job().set_progress({"step": step, "of": steps})
    return steps


@task
def exits_process() -> None:
    os._exit(1)


@task(priority=5, queue_name="other")
def in_other_queue() -> str:
    return "other"


@task
async def async_add(a: int, b: int) -> int:
    return a + b


from tests.testapp import subscribers  # noqa: E402, F401 - registers the outbox subscribers
