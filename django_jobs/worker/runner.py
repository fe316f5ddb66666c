"""Run one claimed job and decide its outcome.

``run_job`` never raises: whatever the task does, it returns a
:class:`~django_jobs.engine.base.Completion`, a
:class:`~django_jobs.engine.base.Failure`, or a :class:`Settled` when there
is nothing left to write: the outcome was already written (``atomic=True``
tasks commit their completion together with their own writes) or the claim
was lost.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
import sys
import threading
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from django_jobs import signals
from django_jobs.backoff import compute_delay
from django_jobs.conf import jobs_settings
from django_jobs.context import running
from django_jobs.engine import get_engine
from django_jobs.engine.base import ClaimedJob, Completion, Failure
from django_jobs.exceptions import (
    Discard,
    JobTimeout,
    Retry,
    UnknownTaskError,
    describe_exception,
    exception_message,
    format_traceback,
)
from django_jobs.status import JobStatus
from django_jobs.tasks import Task, reject_oversized, reject_unstorable, resolve_task

logger = logging.getLogger("django_jobs.worker")


class Settled(enum.Enum):
    """A job's end with nothing left for the worker to write."""

    WRITTEN = "written"  # an atomic task: its completion committed with its own writes
    LOST = "lost"  # the claim was taken over while it ran: its writes rolled back


Outcome = Completion | Failure | Settled


def settled(written: Completion | None) -> Settled:
    """WRITTEN when an atomic task committed its completion, else LOST (ClaimLost)."""
    return Settled.LOST if written is None else Settled.WRITTEN


# Idents of the threads running a task body right now: the thread pool only
# interrupts a timed-out thread while it is in user code, not in ours.
in_task_body: set[int] = set()


class ClaimLost(Exception):
    """The job's lease was taken over; roll back the atomic body."""


def storable(text: str) -> str:
    """``text`` with NUL characters written out: PostgreSQL stores none in text or
    jsonb, and an error quoting binary data must not make its failure unwritable."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def error_entry(job: ClaimedJob, exc: BaseException, *, tb: str | None = None) -> dict[str, Any]:
    """The entry recorded in ``Job.errors`` for a failed attempt; never raises."""
    cls = type(exc)
    text = tb if tb is not None else format_traceback(exc)
    return {
        "attempt": job.attempts,
        "exception_class": f"{cls.__module__}.{cls.__qualname__}",
        "message": storable(exception_message(exc)),
        "traceback": storable(text),
        "at": timezone.now().isoformat(),
        "worker_id": str(job.worker_id),
    }


def _encode_result(value: Any) -> str:
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "task returned a value that is not JSON-serializable "
            f"({type(value).__name__}): {exception_message(exc)}"
        ) from exc
    what = "the task's return value"
    reject_oversized(len(encoded), f"{what} is")  # ensure_ascii: characters are bytes
    return reject_unstorable(encoded, what)


def decide_failure(job: ClaimedJob, task_obj: Task[Any, Any] | None, exc: BaseException) -> Failure:
    """Retry (with the task's backoff) or give up, from the exception and attempts."""
    error = error_entry(job, exc)
    name = storable(describe_exception(exc))
    if isinstance(exc, Discard):
        reason = exc.reason if isinstance(exc.reason, str) else exception_message(exc)
        return Failure(job, error, None, storable(f"discarded by the task: {reason}"))
    if task_obj is not None and task_obj.discard_on and isinstance(exc, task_obj.discard_on):
        return Failure(job, error, None, f"discarded: {name} is in discard_on")
    if job.attempts >= job.max_attempts:
        return Failure(
            job, error, None, f"attempts exhausted ({job.attempts}/{job.max_attempts}): {name}"
        )
    retryable = isinstance(exc, Retry) or (
        task_obj is None or not task_obj.retry_on or isinstance(exc, task_obj.retry_on)
    )
    if not retryable:
        return Failure(job, error, None, f"not retried: {name} is not in retry_on")
    now = timezone.now()
    if isinstance(exc, Retry) and exc.at is not None:
        return Failure(job, error, max(exc.at, now))
    if isinstance(exc, Retry) and exc.delay is not None:
        return Failure(job, error, now + timedelta(seconds=exc.delay))
    spec = task_obj.effective_backoff if task_obj else jobs_settings.DEFAULT_BACKOFF
    delay = compute_delay(
        spec,
        job.attempts,
        base=float(jobs_settings.BACKOFF_BASE),
        cap=float(jobs_settings.BACKOFF_MAX),
    )
    return Failure(job, error, now + timedelta(seconds=delay))


def _call(func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):
        return asyncio.run(func(*args, **kwargs))
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _reset_connections() -> None:
    """Leave this thread's connections usable for the next job."""
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.is_usable():
            conn.close()


def _check_shape(job: ClaimedJob) -> None:
    if not isinstance(job.args, list) or not isinstance(job.kwargs, dict):
        raise UnknownTaskError(
            f"job row is undecodable: args must be a JSON list and kwargs a JSON object, "
            f"got {type(job.args).__name__} and {type(job.kwargs).__name__}"
        )


def _drop_stale_connection(job: ClaimedJob) -> None:
    try:
        get_engine(job.database).drop_stale_connection()
    except DatabaseError:
        logger.debug("closing a broken connection failed", exc_info=True)


def run_job(job: ClaimedJob) -> Outcome:
    """Run ``job`` in this thread; return its outcome (never raises)."""
    log_extra = {"job_id": job.id, "task_name": job.task_name, "queue_name": job.queue_name}
    _drop_stale_connection(job)
    try:
        _check_shape(job)
        # Registered tasks only; nothing named by the row is imported or called.
        task_obj = as_task(resolve_task(job.task_name))
    except UnknownTaskError as exc:
        logger.error("job %s dead-lettered: %s", job.id, exc, extra=log_extra)
        return Failure(job, error_entry(job, exc, tb=""), None, str(exc))
    func = task_obj.func

    if signals.job_started.has_listeners():
        signals.job_started.send_robust(sender=task_obj, job=job)
    outcome: Outcome | None  # None: nothing to write, see settled()
    written: Completion | None = None  # an atomic task's completion, already committed
    try:
        try:
            in_task_body.add(threading.get_ident())
            with running(job):
                if task_obj.atomic:
                    written = _run_atomic(job, func)
                    outcome = None
                else:
                    outcome = Completion(job, _encode_result(_call(func, job.args, job.kwargs)))
        finally:
            # Before the handlers below: they and the signal receivers they call
            # are our code, never interrupted as a timed-out task body.
            in_task_body.discard(threading.get_ident())
            _reset_connections()
    except ClaimLost:
        logger.warning(
            "job %s: claim lost while running; its writes rolled back", job.id, extra=log_extra
        )
        outcome = None
    except BaseException as exc:
        outcome = decide_failure(job, task_obj, exc)
        level = logging.ERROR if outcome.retry_at is None else logging.WARNING
        logger.log(
            level,
            "job %s (%s) attempt %s/%s failed: %s%s",
            job.id,
            job.task_name,
            job.attempts,
            job.max_attempts,
            describe_exception(exc),  # never str(exc) here: its __str__ may raise
            "; dead-lettered"
            if outcome.retry_at is None
            else f"; retry at {outcome.retry_at:%H:%M:%S}",
            extra=log_extra,
        )
        if signals.job_finished.has_listeners():
            # Sent while ``exc`` is being handled, as django.tasks expects: its
            # own task_finished receiver logs sys.exc_info()'s traceback.
            _send_finished(task_obj, job, outcome)
        return outcome
    finished = outcome if outcome is not None else written
    if finished is not None and signals.job_finished.has_listeners():
        _send_finished(task_obj, job, finished)
    return outcome if outcome is not None else settled(written)


def as_task(resolved: Any) -> Task[Any, Any]:
    """The django_jobs Task that runs a registered task (see ``resolve_task``).

    A ``django.tasks`` Task (``django_jobs.backend.JobsBackend``) gets a bridge
    that passes its TaskContext and sends Django's task signals.
    """
    if isinstance(resolved, Task):
        return resolved
    django_tasks = sys.modules.get("django.tasks")
    if django_tasks is not None and isinstance(resolved, django_tasks.Task):
        # Imported here: the bridge needs django.tasks, which only projects using
        # it have loaded (checked just above).
        from django_jobs.backend.bridge import bridged_task

        return bridged_task(resolved)
    raise UnknownTaskError(f"{resolved!r} is not a task")


def _registered(job: ClaimedJob) -> Task[Any, Any] | None:
    """The job's registered task, or None (defaults apply); never imports."""
    try:
        return as_task(resolve_task(job.task_name))
    except UnknownTaskError:
        return None


def _run_atomic(job: ClaimedJob, func: Any) -> Completion:
    """Body and completion in one transaction, fenced by the claim token."""
    engine = get_engine(job.database)
    with transaction.atomic(using=job.database):
        completion = Completion(job, _encode_result(_call(func, job.args, job.kwargs)))
        if job.id not in engine.complete_jobs([completion]):
            raise ClaimLost(job.id)
    return completion


def _send_finished(task_obj: Task[Any, Any] | None, job: ClaimedJob, outcome: Outcome) -> None:
    if isinstance(outcome, Completion):
        status, error, result = JobStatus.SUCCESSFUL, None, json.loads(outcome.result_json)
    elif isinstance(outcome, Failure):
        status = JobStatus.READY if outcome.retry_at is not None else JobStatus.FAILED
        error, result = outcome.error, None
    else:
        return
    signals.job_finished.send_robust(
        sender=task_obj, job=job, status=status, result=result, error=error
    )


def crash_failure(job: ClaimedJob, exc: BaseException) -> Failure:
    """The outcome of an attempt that killed its process (``--pool process``).

    Always retried while attempts remain, whatever retry_on says (the task
    raised nothing); dead-lettered with the crash as the reason after the last.
    """
    error = error_entry(job, exc, tb="")
    if job.attempts >= job.max_attempts:
        reason = storable(
            f"attempts exhausted ({job.attempts}/{job.max_attempts}): {exception_message(exc)}"
        )
        return Failure(job, error, None, reason)
    task_obj = _registered(job)
    spec = task_obj.effective_backoff if task_obj is not None else None
    delay = compute_delay(
        spec or jobs_settings.DEFAULT_BACKOFF,
        job.attempts,
        base=float(jobs_settings.BACKOFF_BASE),
        cap=float(jobs_settings.BACKOFF_MAX),
    )
    return Failure(job, error, timezone.now() + timedelta(seconds=delay))


def timeout_failure(job: ClaimedJob) -> Failure:
    """The outcome of a job that ran past its timeout, per its task's retry policy."""
    exc = JobTimeout(f"job {job.id} ran longer than its timeout of {job.timeout:g}s")
    return decide_failure(job, _registered(job), exc)
