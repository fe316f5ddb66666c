"""``current_job()``: the job being run by the current thread or task."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django_jobs.models import Job
    from django_jobs.rows import ClaimedJob

_current: contextvars.ContextVar[ClaimedJob | None] = contextvars.ContextVar(
    "django_jobs_current_job", default=None
)
_current_model: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "django_jobs_current_job_model", default=None
)


def current_job() -> Job:
    """The :class:`~django_jobs.models.Job` being run; RuntimeError outside a job.

    ``current_job().attempt`` is the attempt number (1 on the first run) and
    ``current_job().set_progress({...})`` records progress, fenced by the
    job's claim token.
    """
    job = _current_model.get()
    if job is not None:
        return job
    claimed = _current.get()
    if claimed is None:
        raise RuntimeError("current_job() called outside a running django_jobs job")
    # engine.instances imports the models; this module loads with users' tasks.py,
    # while the app registry is still loading.
    from django_jobs.engine.instances import claimed_job_model

    job = claimed_job_model(claimed)
    _current_model.set(job)
    return job


@contextmanager
def running(claimed: ClaimedJob) -> Iterator[None]:
    """Make ``claimed`` the current job for the duration of the block."""
    token = _current.set(claimed)
    model_token = _current_model.set(None)
    try:
        yield
    finally:
        _current_model.reset(model_token)
        _current.reset(token)
