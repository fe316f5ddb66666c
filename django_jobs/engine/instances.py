"""Model instances for rows the engine has just written, without ``Model.__init__``.

``Model.__init__`` costs tens of microseconds for a model with twenty-odd
fields: for ``enqueue_many`` of 20,000 jobs it was the largest single cost of
the call. The engine knows every column of the rows it writes, so it fills
the instance's ``__dict__`` directly (as ``Model.from_db`` ends up doing) and
falls back to the real constructor whenever someone listens to ``pre_init``
or ``post_init`` for the model, so their receivers still run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from django.db import models
from django.db.models import signals
from django.db.models.base import ModelState

from django_jobs.models import Job
from django_jobs.rows import ClaimedJob, NewJob
from django_jobs.status import JobStatus

M = TypeVar("M", bound=models.Model)


@cache
def _defaults(model: type[models.Model]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """(attname -> constant default or None, (attname, default factory) pairs)."""
    constant: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            factories.append((field.attname, field.default))
        else:
            constant[field.attname] = field.get_default()  # None, a constant, DatabaseDefault
    return constant, tuple(factories)


def builder(model: type[M], *, database: str | None = None) -> Callable[[dict[str, Any]], M]:
    """A function making instances of ``model`` from ``fields`` (by attname), with
    defaults for the rest; one builder per batch checks the init signals once.

    With ``database`` the instances are marked as loaded from that database
    (``_state.adding`` False), like ones returned by a query.
    """
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):

        def construct(fields: dict[str, Any]) -> M:
            obj = model(**fields)
            if database is not None:
                obj._state.adding = False
                obj._state.db = database
            return obj

        return construct

    constant, factories = _defaults(model)
    new = model.__new__

    def fill(fields: dict[str, Any]) -> M:
        obj = new(model)
        values = constant.copy()
        for attname, factory in factories:
            if attname not in fields:
                values[attname] = factory()
        values.update(fields)
        obj.__dict__.update(values)
        state = obj._state = ModelState()
        if database is not None:
            state.adding = False
            state.db = database
        return obj

    return fill


def new_job_model(row: NewJob, database: str | None = None, **fields: Any) -> Job:
    """A Job instance with ``row``'s values plus ``fields`` (id, timestamps).

    With ``database``, marked as stored there (``_state.adding`` False).
    """
    return builder(Job, database=database)(row.model_fields(**fields))


def claimed_job_model(claimed: ClaimedJob) -> Job:
    """A Job instance (marked as loaded from its database) with ``claimed``'s fields."""
    job = Job(
        id=claimed.id,
        task_name=claimed.task_name,
        queue_name=claimed.queue_name,
        priority=claimed.priority,
        args=claimed.args,
        kwargs=claimed.kwargs,
        status=JobStatus.RUNNING,
        attempts=claimed.attempts,
        max_attempts=claimed.max_attempts,
        timeout=claimed.timeout,
        claim_token=claimed.claim_token,
        worker_id=claimed.worker_id,
        run_after=claimed.run_after,
        enqueued_at=claimed.enqueued_at,
        started_at=claimed.started_at,
        last_attempted_at=claimed.last_attempted_at,
        requested_run_after=claimed.requested_run_after,
        idempotency_key=claimed.idempotency_key,
        meta=claimed.meta,
        workflow_id=claimed.workflow_id,
    )
    job._state.adding = False
    job._state.db = claimed.database
    return job
