"""Exceptions raised by django_jobs.

::

    JobsError
    ├── InvalidTaskError        (TypeError)  @task on something the worker cannot import
    ├── InvalidJobOptions       (ValueError) bad option values: priority, run_after, queue...
    ├── UnknownTaskError        (LookupError) a job names a task that is not registered
    ├── JobTimeout                           a job ran past its timeout
    ├── JobCancelled                         raised into a RUNNING job an operator cancelled
    ├── WorkerLost                           its worker stopped renewing the lease (recovered)
    └── WorkerCrashed                        its child process died (--pool process)

    Retry     raise inside a task: retry at a chosen time (counts as an attempt)
    Discard   raise inside a task: give up now, straight to the dead letters

Non-JSON arguments raise the built-in ``TypeError`` naming the argument.

Any exception, the task's included, is put into words only through
:func:`exception_message`, :func:`describe_exception` and
:func:`format_traceback`, which never raise (a ``__str__`` that raises must
fail its job, not the worker thread formatting it).
"""

from __future__ import annotations

import traceback
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


class JobCancelled(JobsError):
    """An operator cancelled this job while it ran (``Job.cancel()``, the admin,
    ``manage.py jobs cancel``).

    The thread pool raises it into the task at its next bytecode; a task may
    raise it itself (after seeing ``current_job().cancel_requested``) to stop
    early. Either way the job ends CANCELLED and is never retried; an
    ``atomic=True`` body rolls back. Catching it and carrying on defeats the
    cancel: clean up in ``finally`` instead.
    """


class WorkerLost(JobsError):
    """Recorded in a job's errors when its worker stopped renewing the lease.

    Never raised: it names the error entry so that tools resolving
    ``exception_class`` (e.g. ``django.tasks.TaskError``) find a real class.
    """


class WorkerStartError(JobsError):
    """The worker could not start (e.g. the process cannot start another thread)."""


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


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or when that raises, ``repr(exc)`` saying so; never raises.

    ``<unprintable ClassName>`` when ``repr`` raises too.
    """
    try:
        return str(exc)
    except Exception as err:
        failed = f"str() raised {type(err).__name__}"
    try:
        return f"{exc!r} ({failed})"
    except Exception:
        return f"<unprintable {type(exc).__name__}> ({failed})"


def describe_exception(exc: BaseException) -> str:
    """``ClassName: message`` (just ``ClassName`` without a message); never raises."""
    message = exception_message(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def format_traceback(exc: BaseException) -> str:
    """The traceback ``traceback.format_exception`` prints; never raises.

    Falls back to the stack alone plus :func:`describe_exception` when the
    exception (or one chained to it) cannot be formatted.
    """
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:
        pass
    try:
        stack = "".join(traceback.format_tb(exc.__traceback__))
    except Exception:
        stack = ""
    head = "Traceback (most recent call last):\n" if stack else ""
    return f"{head}{stack}{describe_exception(exc)}\n"
