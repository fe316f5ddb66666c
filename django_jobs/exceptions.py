"""Exceptions raised by django_jobs.

::

    JobsError
    ├── InvalidTaskError        (TypeError)  @task on something the worker cannot import
    ├── InvalidJobOptions       (ValueError) bad option values: priority, run_after, queue...
    ├── UnknownTaskError        (LookupError) a job names a task that is not registered
    ├── JobTimeout                           a job ran past its timeout
    ├── WorkerLost                           its worker stopped renewing the lease (recovered)
    └── WorkerCrashed                        its child process died (--pool process)

    Retry     raise inside a task: retry at a chosen time (counts as an attempt)
    Discard   raise inside a task: give up now, straight to the dead letters

Non-JSON arguments raise the built-in ``TypeError`` naming the argument.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class JobsError(Exception):
    """Base class for django_jobs errors."""


class InvalidTaskError(JobsError, TypeError):
    """This callable cannot be a task: the worker must import it by dotted path."""


class InvalidJobOptions(JobsError, ValueError):
    """An option given to a task or to ``using()`` has an invalid value."""


class UnknownTaskError(JobsError, LookupError):
    """The job names a task that is not registered (the worker runs no other)."""


class JobTimeout(JobsError):
    """The job ran longer than its timeout."""


class WorkerLost(JobsError):
    """Recorded in a job's errors when its worker stopped renewing the lease.

    Never raised: it names the error entry so that tools resolving
    ``exception_class`` (e.g. ``django.tasks.TaskError``) find a real class.
    """


class WorkerCrashed(JobsError):
    """Recorded in a job's errors when the child process running it died
    (``--pool process``: exit code or signal). Never raised either."""


class Retry(Exception):
    """Raise inside a task to retry it later; counts as a failed attempt.

    ``delay`` is a ``timedelta`` or seconds from now, ``at`` an aware datetime;
    with neither, the task's backoff decides.
    """

    def __init__(
        self,
        reason: str = "",
        *,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
    ) -> None:
        super().__init__(reason or "retry requested")
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if delay is not None and delay < 0:
            raise ValueError("Retry(delay=...) must not be negative")
        if at is not None and at.tzinfo is None:
            raise ValueError("Retry(at=...) must be an aware datetime")
        self.delay: float | None = delay
        self.at = at


class Discard(Exception):
    """Raise inside a task to give up now: the job goes to the dead letters."""

    def __init__(self, reason: str = "discarded by the task") -> None:
        super().__init__(reason)
        self.reason = reason
