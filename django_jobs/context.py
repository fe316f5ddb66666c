"""``current_job()``: the job being run by the current thread or task, and
the ids of the running jobs whose cancel this process has heard of."""

from __future__ import annotations

import contextvars
import threading
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


# Ids of jobs running in this process whose cancel was requested: filled by the
# worker when its heartbeat reports them (in a process-pool child, by its
# SIGUSR1 handler); read by ``Job.cancel_requested``. A set behind a lock, not a
# contextvar: the heartbeat thread writes it for the task's thread to read.
_cancel_requested: set[int] = set()
_cancel_lock = threading.Lock()


def note_cancel_requested(job_id: int) -> None:
    """Record that ``job_id``, running here, was cancelled (``cancel_requested`` is True)."""
    with _cancel_lock:
        _cancel_requested.add(job_id)


def is_cancel_requested(job_id: int) -> bool:
    with _cancel_lock:
        return job_id in _cancel_requested


def forget_cancel(job_id: int) -> None:
    """The job ended here: drop it from the cancelled set."""
    with _cancel_lock:
        _cancel_requested.discard(job_id)


def current_job() -> Job:
    """The :class:`~django_jobs.models.Job` being run; RuntimeError outside a job.

    ``current_job().attempt`` is the attempt number (1 on the first run),
    ``current_job().set_progress({...})`` records progress, fenced by the
    job's claim token, and ``current_job().cancel_requested`` turns True once
    the worker has heard (through its heartbeat) that an operator cancelled it.
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
