"""Eager mode (``DJANGO_JOBS["EAGER"] = True``): each job runs in the enqueueing
process when its transaction commits, through the worker's runner
(:mod:`django_jobs.worker.inline`): retries (``EAGER_RETRIES``), ``atomic=True``,
dead letters and ``current_job()`` behave as on a worker. A rolled-back
transaction runs nothing: its jobs never existed. Events published with
``outbox.publish()`` are dispatched on commit too, so their subscribers run.

Jobs enqueued in one transaction run in enqueue order from its first
on_commit callback (the later callbacks find nothing left), so an exception
propagated by ``EAGER_EXCEPTIONS = "propagate"`` is raised once every job of
the commit has run. Under a ``TestCase``, on_commit callbacks run only inside
``captureOnCommitCallbacks(execute=True)``, as for any callback.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from django.db import connections, transaction

from django_jobs.conf import jobs_settings
from django_jobs.status import JobStatus
from django_jobs.worker.inline import JobRun, claim_one, run_claimed

logger = logging.getLogger("django_jobs.eager")

EXCEPTION_MODES = ("propagate", "store")

# Per connection (so per thread and alias): ids enqueued and not run yet.
_pending: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()


def run_on_commit(alias: str, ids: Sequence[int]) -> None:
    """Run the jobs ``ids`` (just inserted on ``alias``) when the transaction commits."""
    connection = connections[alias]
    _pending.setdefault(connection, []).extend(ids)
    transaction.on_commit(lambda: run_pending(alias), using=alias)


def dispatch_on_commit(alias: str) -> None:
    """Dispatch the outbox events just published on ``alias`` when the transaction
    commits; the subscribers' jobs then run eagerly when the relay's batch commits."""
    # The relay imports the outbox engine and the models: at call time, not import.
    from django_jobs.outbox.relay import Relay

    transaction.on_commit(lambda: _drain(Relay(alias)), using=alias)


def _drain(relay: Any) -> None:
    relay.drain()


def run_pending(alias: str) -> list[JobRun]:
    """Run every job enqueued on this thread's ``alias`` connection and not run yet."""
    ids = _pending.pop(connections[alias], [])
    propagate = jobs_settings.EAGER_EXCEPTIONS == "propagate"
    first_error: BaseException | None = None
    runs: list[JobRun] = []
    for job_id in ids:
        job_runs, error = run_one(alias, job_id)
        runs += job_runs
        if first_error is None and error is not None:
            first_error = error
    if propagate and first_error is not None:
        raise first_error
    return runs


def run_one(alias: str, job_id: int) -> tuple[list[JobRun], BaseException | None]:
    """Run job ``job_id`` now (and its retries with EAGER_RETRIES); returns its
    attempts and the exception of its last one if it failed for good."""
    retries = bool(jobs_settings.EAGER_RETRIES)
    worker_id = uuid.uuid4()
    runs: list[JobRun] = []
    while True:
        job = claim_one(alias, None, worker_id, ids=[job_id])
        if job is None:
            if not runs:
                logger.info("eager: job %s is not due (or gone): left for a worker", job_id)
            return runs, None
        raised: list[BaseException] = []
        run = run_claimed(job, skip_backoff=retries, raised=raised)
        runs.append(run)
        if run.status == JobStatus.READY and retries:
            continue  # its retry is due now
        failed = run.status == JobStatus.FAILED or (run.status == JobStatus.READY and raised)
        return runs, (raised[-1] if failed and raised else None)
