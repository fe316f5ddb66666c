"""Run one claimed job and decide its outcome.

``run_job`` never raises: whatever the task does, it returns a
:class:`~django_jobs.rows.Completion`, a :class:`~django_jobs.rows.Failure`,
a :class:`~django_jobs.rows.Cancellation` (the task was stopped by its cancel,
``JobCancelled``), or a :class:`Settled` when there is nothing left to write:
the outcome was already written (``atomic=True`` tasks commit their completion
together with their own writes) or the claim was lost.

The thread pool interrupts a task body (timeout, cancel) only through
:func:`interrupt`, and only while the thread is inside :func:`task_body`: the
user's function, never our bookkeeping around it.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, transaction

from django_jobs import clock, signals
from django_jobs.backoff import compute_delay
from django_jobs.codec import check_stored, encode, loads, storable
from django_jobs.conf import jobs_settings
from django_jobs.context import forget_cancel, is_cancel_requested, running
from django_jobs.engine import get_engine
from django_jobs.exceptions import (
    Discard,
    JobCancelled,
    JobTimeout,
    Retry,
    UnknownTaskError,
    describe_exception,
    exception_message,
    format_traceback,
)
from django_jobs.observability import tracing
from django_jobs.rows import Cancellation, ClaimedJob, Completion, Failure
from django_jobs.status import JobStatus
from django_jobs.tasks import Task, find_task, resolve_task

logger = logging.getLogger("django_jobs.worker")


class Settled(enum.Enum):
    """A job's end with nothing left for the worker to write."""

    WRITTEN = "written"  # an atomic task: its completion committed with its own writes
    LOST = "lost"  # the claim was taken over while it ran: its writes rolled back


Outcome = Completion | Failure | Cancellation | Settled


def settled(written: Completion | None) -> Settled:
    """WRITTEN when an atomic task committed its completion, else LOST (ClaimLost)."""
    return Settled.LOST if written is None else Settled.WRITTEN


# Idents of the threads running a task body right now: the thread pool only
# interrupts a thread (timeout, cancel) while it is in user code, not in ours.
# Guarded by _body_lock, which interrupt() holds too: once a thread has left
# the body, no new interruption can be aimed at it.
in_task_body: set[int] = set()
_body_lock = threading.Lock()


@contextmanager
def task_body(job_id: int) -> Iterator[None]:
    """Mark this thread as running the user's function for the block; raise
    JobCancelled on entry if the job's cancel was noted before it got here."""
    ident = threading.get_ident()
    with _body_lock:
        in_task_body.add(ident)
    try:
        if is_cancel_requested(job_id):
            raise JobCancelled(f"job {job_id} was cancelled")
        yield
    finally:
        with _body_lock:
            in_task_body.discard(ident)
        # An interruption aimed at the body just before it ended may still be
        # pending (raised at the next bytecode check): drop it. The body has
        # ended, so its outcome stands (a completion wins that race).
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


def interrupt(ident: int | None, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` in thread ``ident`` at its next bytecode, if it is in a
    task body; True if it was aimed.

    Python cannot kill a thread; CPython's PyThreadState_SetAsyncExc is the one
    way to stop another thread's Python code. The exception is raised when the
    thread next checks for pending calls (at most a few bytecodes away in pure
    Python code), never inside a C call: a thread blocked in one sees it when
    the call returns.
    """
    with _body_lock:
        if ident is None or ident not in in_task_body:
            return False
        thread_id = ctypes.c_ulong(ident)
        aimed = ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, ctypes.py_object(exc_type))
        if aimed > 1:  # never more than one thread
            ctypes.pythonapi.PyThreadState_SetAsyncExc(thread_id, None)
        return bool(aimed == 1)


class ClaimLost(Exception):
    """The job's lease was taken over; roll back the atomic body."""


def error_entry(
    job: ClaimedJob, exc: BaseException, *, tb: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The entry recorded in ``Job.errors`` for a failed attempt; never raises.

    ``tb`` replaces the formatted traceback; ``now`` (default: the clock) is its time.
    """
    cls = type(exc)
    text = tb if tb is not None else format_traceback(exc)
    return {
        "attempt": job.attempts,
        "exception_class": f"{cls.__module__}.{cls.__qualname__}",
        "message": storable(exception_message(exc)),
        "traceback": storable(text),
        "at": (now or clock.now()).isoformat(),
        "worker_id": str(job.worker_id),
    }


def _encode_result(value: Any) -> str:
    try:
        encoded = encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "task returned a value that is not JSON-serializable "
            f"({type(value).__name__}): {exception_message(exc)}"
        ) from exc
    return check_stored(encoded, "the task's return value", jobs_settings.MAX_PAYLOAD_BYTES)


class Cause(enum.Enum):
    """What ended a failed attempt, for :func:`decide`."""

    RAISED = "raised"  # the body raised, or ran past its timeout: the task's retry policy
    CRASHED = "crashed"  # the process running it died: retried while attempts remain
    UNRUNNABLE = "unrunnable"  # no such task, or an undecodable row: dead-lettered at once


def decide(
    job: ClaimedJob,
    task_obj: Task[Any, Any] | None,
    exc: BaseException,
    now: datetime,
    cause: Cause = Cause.RAISED,
) -> Failure:
    """The Failure of ``job``'s attempt: retry at a time, or give up with a reason.

    ``task_obj`` is the job's registered task (None: the defaults apply) and
    ``now`` the time of the failure. Pure apart from reading the settings.
    """
    if cause is Cause.UNRUNNABLE:
        return Failure(job, error_entry(job, exc, tb="", now=now), None, str(exc))
    if cause is Cause.RAISED:
        error = error_entry(job, exc, now=now)
        what = storable(describe_exception(exc))
        if isinstance(exc, Discard):
            reason = exc.reason if isinstance(exc.reason, str) else exception_message(exc)
            return Failure(job, error, None, storable(f"discarded by the task: {reason}"))
        if task_obj is not None and task_obj.discard_on and isinstance(exc, task_obj.discard_on):
            return Failure(job, error, None, f"discarded: {what} is in discard_on")
    else:
        # The task raised nothing: its discard_on and retry_on do not apply.
        error = error_entry(job, exc, tb="", now=now)
        what = storable(exception_message(exc))
    if job.attempts >= job.max_attempts:
        return Failure(
            job, error, None, f"attempts exhausted ({job.attempts}/{job.max_attempts}): {what}"
        )
    if cause is Cause.RAISED:
        if isinstance(exc, Retry):
            if exc.at is not None:
                return Failure(job, error, max(exc.at, now))
            if exc.delay is not None:
                return Failure(job, error, now + timedelta(seconds=exc.delay))
        elif task_obj is not None and task_obj.retry_on and not isinstance(exc, task_obj.retry_on):
            return Failure(job, error, None, f"not retried: {what} is not in retry_on")
    spec = task_obj.effective_backoff if task_obj is not None else jobs_settings.DEFAULT_BACKOFF
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
        # In an atomic block (an in-process run inside a test's transaction) the
        # caller rolls back to its savepoint; closing would end the test's transaction.
        if conn.errors_occurred and not conn.in_atomic_block and not conn.is_usable():
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


def run_job(job: ClaimedJob, *, raised: list[BaseException] | None = None) -> Outcome:
    """Run ``job`` in this thread; return its outcome (never raises).

    With OpenTelemetry tracing on, inside the attempt's span (observability.tracing).
    ``raised`` (in-process runs, see ``worker.inline``) collects the exception
    the task raised, so that eager mode can re-raise it.
    """
    if tracing.AVAILABLE:  # a constant False without the [otel] extra
        return tracing.traced_run(job, lambda claimed: _run_job(claimed, raised))
    return _run_job(job, raised)


def _run_job(job: ClaimedJob, raised: list[BaseException] | None = None) -> Outcome:
    log_extra = {"job_id": job.id, "task_name": job.task_name, "queue_name": job.queue_name}
    _drop_stale_connection(job)
    try:
        _check_shape(job)
        # Registered tasks only; nothing named by the row is imported or called.
        task_obj = resolve_task(job.task_name)
    except UnknownTaskError as exc:
        logger.error("job %s dead-lettered: %s", job.id, exc, extra=log_extra)
        return decide(job, None, exc, clock.now(), Cause.UNRUNNABLE)
    func = task_obj.func
    if is_cancel_requested(job.id):  # cancelled while it waited in the backlog: never starts
        forget_cancel(job.id)
        return pool_cancellation(job, "before it started")

    if signals.job_started.has_listeners():
        signals.job_started.send_robust(sender=task_obj, job=job)
    outcome: Outcome | None  # None: nothing to write, see settled()
    written: Completion | None = None  # an atomic task's completion, already committed
    try:
        try:
            with running(job):
                if task_obj.atomic:
                    written = _run_atomic(job, func)
                    outcome = None
                else:
                    with task_body(job.id):
                        value = _call(func, job.args, job.kwargs)
                    outcome = Completion(job, _encode_result(value))
        finally:
            forget_cancel(job.id)
            _reset_connections()
    except JobCancelled as exc:
        # Raised into the body by the thread pool (or by the task itself after
        # seeing cancel_requested): an atomic body has rolled back already.
        stopped = cancelled_while_running(job, exc, log_extra)
        _send_finished(task_obj, job, stopped)
        return stopped
    except ClaimLost:
        logger.warning(
            "job %s: claim lost while running; its writes rolled back", job.id, extra=log_extra
        )
        outcome = None
    except BaseException as exc:
        if raised is not None:
            raised.append(exc)
        outcome = decide(job, task_obj, exc, clock.now())
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


def _run_atomic(job: ClaimedJob, func: Any) -> Completion:
    """Body and completion in one transaction, fenced by the claim token."""
    engine = get_engine(job.database)
    with transaction.atomic(using=job.database):
        with task_body(job.id):
            value = _call(func, job.args, job.kwargs)
        completion = Completion(job, _encode_result(value))
        if job.id not in engine.complete_jobs([completion]):
            raise ClaimLost(job.id)
    return completion


def _send_finished(task_obj: Task[Any, Any] | None, job: ClaimedJob, outcome: Outcome) -> None:
    if not signals.job_finished.has_listeners():
        return
    if isinstance(outcome, Completion):
        status, error, result = JobStatus.SUCCESSFUL, None, loads(outcome.result_json)
    elif isinstance(outcome, Cancellation):
        status, error, result = JobStatus.CANCELLED, outcome.error, None
    elif isinstance(outcome, Failure):
        status = JobStatus.READY if outcome.retry_at is not None else JobStatus.FAILED
        error, result = outcome.error, None
    else:
        return
    signals.job_finished.send_robust(
        sender=task_obj, job=job, status=status, result=result, error=error
    )


def cancellation(job: ClaimedJob, exc: BaseException, *, tb: str | None = None) -> Cancellation:
    """The end of a run stopped by its cancel; the error entry says so."""
    entry = error_entry(job, exc, tb=tb)
    if not entry["message"]:
        entry["message"] = f"job {job.id} was cancelled while running"
    return Cancellation(job, entry)


def cancelled_while_running(
    job: ClaimedJob, exc: BaseException, log_extra: dict[str, Any]
) -> Cancellation:
    """:func:`cancellation` of a run its cancel stopped, logged (both runners)."""
    stopped = cancellation(job, exc)
    logger.info(
        "job %s (%s) cancelled while running (attempt %s)",
        job.id,
        job.task_name,
        job.attempts,
        extra=log_extra,
    )
    return stopped


def pool_cancellation(job: ClaimedJob, how: str) -> Cancellation:
    """The end of a cancelled job its pool ended itself (``how``: a child killed
    after CANCEL_GRACE, a thread abandoned, never started); sends job_finished."""
    exc = JobCancelled(f"job {job.id} was cancelled: {how}")
    outcome = cancellation(job, exc, tb="")
    _send_finished(find_task(job.task_name), job, outcome)
    return outcome


def crash_failure(job: ClaimedJob, exc: BaseException) -> Failure:
    """The outcome of an attempt that killed its process (``--pool process``).

    Always retried while attempts remain, whatever retry_on says (the task
    raised nothing); dead-lettered with the crash as the reason after the last.
    """
    return decide(job, find_task(job.task_name), exc, clock.now(), Cause.CRASHED)


def timeout_failure(job: ClaimedJob) -> Failure:
    """The outcome of a job that ran past its timeout, per its task's retry policy."""
    exc = JobTimeout(f"job {job.id} ran longer than its timeout of {job.timeout:g}s")
    return decide(job, find_task(job.task_name), exc, clock.now())
