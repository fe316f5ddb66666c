"""Run one claimed job of an ``async def`` task on the worker's event loop.

The coroutine counterpart of :func:`~django_jobs.worker.runner.run_job`, with
the same outcomes (and the same decisions, :func:`~django_jobs.worker.runner.decide`):

- the job's timeout is ``asyncio.timeout``: past it the body is cancelled and
  the attempt fails with ``JobTimeout``, retried per the task's policy;
- an operator's cancel (heard by the heartbeat) cancels the asyncio task: the
  ``CancelledError`` raised at the body's ``await`` ends the job CANCELLED, as
  does ``JobCancelled`` raised by the body itself;
- ``current_job()`` is the job through contextvars: each job runs in its own
  asyncio task, which has its own context.

Nothing here touches the database from the loop: the outcome goes back to the
worker loop, which writes it fenced by the claim token like any other. The
signals (whose receivers may query) are sent through ``sync_to_async``, and so
is the reset of a broken connection after a failed attempt.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async

from django_jobs import clock, signals
from django_jobs.context import forget_cancel, is_cancel_requested, running
from django_jobs.exceptions import JobCancelled, JobTimeout, UnknownTaskError, describe_exception
from django_jobs.rows import ClaimedJob, Completion
from django_jobs.tasks import Task, resolve_task
from django_jobs.worker.runner import (
    Cause,
    Outcome,
    _check_shape,
    _encode_result,
    _reset_connections,
    _send_finished,
    cancellation,
    cancelled_while_running,
    decide,
)

logger = logging.getLogger("django_jobs.worker")


async def _send_finished_async(
    task_obj: Task[Any, Any] | None, job: ClaimedJob, outcome: Outcome
) -> None:
    if signals.job_finished.has_listeners():
        await sync_to_async(_send_finished)(task_obj, job, outcome)


async def run_async_job(job: ClaimedJob) -> Outcome:
    """Run ``job`` (an ``async def`` task) in the current asyncio task; return its
    outcome. Never raises but ``CancelledError`` when cancelled for another
    reason than the job's cancel (the worker stopping)."""
    log_extra = {"job_id": job.id, "task_name": job.task_name, "queue_name": job.queue_name}
    try:
        _check_shape(job)
        task_obj = resolve_task(job.task_name)
    except UnknownTaskError as exc:
        logger.error("job %s dead-lettered: %s", job.id, exc, extra=log_extra)
        return decide(job, None, exc, clock.now(), Cause.UNRUNNABLE)
    if is_cancel_requested(job.id):  # cancelled while it waited in the backlog
        forget_cancel(job.id)
        never = JobCancelled(f"job {job.id} was cancelled: before it started")
        unstarted = cancellation(job, never, tb="")
        await _send_finished_async(task_obj, job, unstarted)
        return unstarted
    if signals.job_started.has_listeners():
        await sync_to_async(signals.job_started.send_robust)(sender=task_obj, job=job)
    outcome: Outcome
    try:
        try:
            with running(job):
                async with asyncio.timeout(job.timeout) as scope:
                    value = await task_obj.func(*job.args, **job.kwargs)
            outcome = Completion(job, _encode_result(value))
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the body's own TimeoutError: an ordinary failure
            raise JobTimeout(
                f"job {job.id} ran longer than its timeout of {job.timeout:g}s"
            ) from exc
        except asyncio.CancelledError as exc:
            if not is_cancel_requested(job.id):
                raise  # not the job's cancel: the worker is stopping
            raise JobCancelled(f"job {job.id} was cancelled while running") from exc
        finally:
            forget_cancel(job.id)
    except JobCancelled as exc:
        stopped = cancelled_while_running(job, exc, log_extra)
        await _send_finished_async(task_obj, job, stopped)
        return stopped
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        failure = decide(job, task_obj, exc, clock.now())
        logger.log(
            logging.ERROR if failure.retry_at is None else logging.WARNING,
            "job %s (%s) attempt %s/%s failed: %s%s",
            job.id,
            job.task_name,
            job.attempts,
            job.max_attempts,
            describe_exception(exc),
            "; dead-lettered"
            if failure.retry_at is None
            else f"; retry at {failure.retry_at:%H:%M:%S}",
            extra=log_extra,
        )
        # Async ORM calls run in sync_to_async's thread: leave its connection usable.
        await sync_to_async(_reset_connections)()
        await _send_finished_async(task_obj, job, failure)
        return failure
    await _send_finished_async(task_obj, job, outcome)
    return outcome
