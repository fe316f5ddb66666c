"""Signal receivers that record (and optionally raise) in a worker subprocess.

Connected by the test app when DJANGO_JOBS_TEST_SIGNAL_PROBE is "record" or
"raise"; each receiver writes an Event row, then raises in "raise" mode.
"""

from __future__ import annotations

import os
from typing import Any

from django.tasks.signals import task_enqueued, task_finished, task_started

from django_jobs import signals
from tests.testapp.models import Event

MODE = os.environ.get("DJANGO_JOBS_TEST_SIGNAL_PROBE", "")


def _record(name: str, job_id: int, **value: Any) -> None:
    Event.objects.create(job_id=job_id, name=name, value=value)
    if MODE == "raise":
        raise RuntimeError(f"receiver of {name} is broken")


def on_task_signal(sender: Any, task_result: Any, signal: Any, **kwargs: Any) -> None:
    name = {task_enqueued: "task_enqueued", task_started: "task_started"}.get(
        signal, "task_finished"
    )
    _record(
        name,
        int(task_result.id),
        sender=f"{sender.__module__}.{sender.__qualname__}",
        status=str(task_result.status),
        attempts=task_result.attempts,
        errors=len(task_result.errors),
        return_value=task_result._return_value,
    )


def on_job_started(sender: Any, job: Any, **kwargs: Any) -> None:
    _record("job_started", job.id)


def on_job_finished(sender: Any, job: Any, status: str, **kwargs: Any) -> None:
    _record("job_finished", job.id, status=status)


def connect() -> None:
    for signal in (task_enqueued, task_started, task_finished):
        signal.connect(on_task_signal, dispatch_uid=f"probe-{id(signal)}")
    signals.job_started.connect(on_job_started, dispatch_uid="probe-job-started")
    signals.job_finished.connect(on_job_finished, dispatch_uid="probe-job-finished")
