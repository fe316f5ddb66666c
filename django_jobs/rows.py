"""Rows: the plain values that flow between layers (like River's ``rivertype``).

Nothing here imports django_jobs, so any module can use these types without
pulling in models, the engine or the worker. Who makes and who takes each:

- :class:`NewJob`: built by ``Task.new_job`` / ``Task.encoded_job`` (for
  ``enqueue``, the ``django.tasks`` backend and the outbox relay); inserted by
  ``Engine.insert_jobs``.
- :class:`Inserted`: returned by ``Engine.insert_jobs``, one per NewJob.
- :class:`ClaimedJob`: returned by ``Engine.claim_jobs``; run by the worker
  (``worker.runner``), renewed by its heartbeat, handed back by ``release_jobs``.
- :class:`Completion` / :class:`Failure` / :class:`Cancellation`: made by
  ``worker.runner`` (and the pools) from a run; written by
  ``Engine.complete_jobs`` / ``Engine.fail_job`` / ``Engine.cancel_running``.
- :class:`Renewal`: returned by ``Engine.renew_leases`` to the heartbeat.
- :class:`CancelReport`: returned by ``Engine.cancel`` (admin, CLI, ``Job.cancel()``).
- :class:`WorkerInfo`: made by the worker; stored by ``Engine.register_worker``.
- :class:`RecoveryReport`: returned by ``Engine.recover_expired``.
- :class:`RetriedLetter`: returned by ``Engine.retry_dead_letters``, one per letter.
- :class:`NewEvent`: built by ``outbox.events.new_event`` (``publish()``);
  inserted by ``OutboxEngine.insert_events``.
- :class:`Event`: read by the outbox engine; given to subscribers and publishers.
- :class:`DispatchReport`: returned by ``OutboxEngine.dispatch_batch`` to the relay.

Building model instances from rows lives in ``engine.instances``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.utils.dateparse import parse_datetime

if TYPE_CHECKING:
    from django_jobs.models import Job


@dataclasses.dataclass(frozen=True, slots=True)
class LaneSpec:
    """The flow lane a new job joins and the lane's limits (``flow.lanes``)."""

    key: str
    concurrency_limit: int | None
    rate_limit: int | None
    rate_period: float | None  # seconds
    circuit: str | None = None  # circuit breaker name (DJANGO_JOBS["CIRCUITS"])


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """One row to insert, already validated and JSON-encoded."""

    task_name: str
    queue_name: str
    priority: int
    args_json: str
    kwargs_json: str
    max_attempts: int
    timeout: float
    run_after: datetime | None  # None: the database's now()
    idempotency_key: str | None
    # Job.meta as JSON text (the trace context: observability.tracing); None: {}.
    meta_json: str | None = None

    def meta(self) -> dict[str, Any]:
        """This row's Job.meta, decoded."""
        return {} if self.meta_json is None else dict(json.loads(self.meta_json))

    # Seconds: a job with this idempotency key enqueued that recently, whatever its
    # status, is returned instead of inserting (None: only an active one is).
    unique_for: float | None = None
    lane: LaneSpec | None = None  # flow control; None: claimed on the fast path

    def model_fields(self, **fields: Any) -> dict[str, Any]:
        """This row's Job field values (decoded) plus ``fields``."""
        values = {
            "task_name": self.task_name,
            "queue_name": self.queue_name,
            "priority": self.priority,
            "args": [] if self.args_json == "[]" else json.loads(self.args_json),
            "kwargs": {} if self.kwargs_json == "{}" else json.loads(self.kwargs_json),
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "idempotency_key": self.idempotency_key,
            "requested_run_after": self.run_after,
            "flow_lane": self.lane.key if self.lane is not None else None,
        }
        if self.meta_json is not None:
            values["meta"] = self.meta()
        values.update(fields)
        return values


@dataclasses.dataclass(frozen=True, slots=True)
class Inserted:
    """One row of ``insert_jobs``: the job, and whether this call created it
    (False: its idempotency key was held by an active job, returned instead)."""

    job: Job
    created: bool


@dataclasses.dataclass(slots=True)
class ClaimedJob:
    """A job this worker owns until its lease expires."""

    id: int
    task_name: str
    queue_name: str
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    max_attempts: int
    timeout: float
    claim_token: uuid.UUID
    worker_id: uuid.UUID
    run_after: datetime
    enqueued_at: datetime
    started_at: datetime  # the first attempt's start; last_attempted_at is this one's
    idempotency_key: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    database: str = "default"
    last_attempted_at: datetime | None = None
    requested_run_after: datetime | None = None  # run_after as enqueued
    workflow_id: int | None = None  # a workflow's step: its outcome advances the workflow

    @property
    def attempt(self) -> int:
        return self.attempts


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """A successful run: ``result_json`` is the JSON text of the return value."""

    job: ClaimedJob
    result_json: str


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A failed run. ``retry_at`` None means give up: FAILED + dead letter."""

    job: ClaimedJob
    error: dict[str, Any]
    retry_at: datetime | None
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Cancellation:
    """A run stopped because its cancel was requested: the job ends CANCELLED
    (never retried). ``error`` is the entry appended to ``Job.errors``."""

    job: ClaimedJob
    error: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which jobs a claim may take by task name: only ``names`` (``include``),
    or every task but them. The worker claims its async tasks (event loop)
    and the others (threads or children) separately, each for its own free slots."""

    names: tuple[str, ...]
    include: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Renewal:
    """One heartbeat: leases renewed, and which of those jobs an operator cancelled."""

    renewed: int = 0
    cancel_requested: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class CancelReport:
    """What ``Engine.cancel`` did: READY jobs cancelled at once, RUNNING jobs whose
    cancel is now requested (their worker stops them). Other ids were left alone."""

    cancelled: tuple[int, ...] = ()
    requested: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return len(self.cancelled) + len(self.requested)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: uuid.UUID
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    pool: str


@dataclasses.dataclass(frozen=True, slots=True)
class RecoveryReport:
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0  # their cancel was requested: CANCELLED, not retried


class RetriedLetter(NamedTuple):
    """A dead letter re-enqueued by ``Engine.retry_dead_letters``, and its new job."""

    dead_letter_id: int
    job_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to insert, already validated and JSON-encoded."""

    topic: str
    key: str | None
    payload_json: str
    headers_json: str


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """An outbox event as a subscriber or publisher sees it."""

    id: int
    topic: str
    key: str | None
    payload: Any
    headers: dict[str, Any]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``created_at`` as ISO 8601), as sent to external systems."""
        return {
            "id": self.id,
            "topic": self.topic,
            "key": self.key,
            "payload": self.payload,
            "headers": self.headers,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        created = data["created_at"]
        if isinstance(created, str):
            parsed = parse_datetime(created)
            if parsed is None:
                raise ValueError(f"event created_at is not an ISO datetime: {created!r}")
            created = parsed
        return cls(
            id=int(data["id"]),
            topic=str(data["topic"]),
            key=data.get("key"),
            payload=data.get("payload"),
            headers=dict(data.get("headers") or {}),
            created_at=created,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one relay transaction did."""

    dispatched: int = 0  # events marked DISPATCHED
    jobs: int = 0  # jobs enqueued for them
    blocked: int = 0  # claimed but left PENDING behind an earlier same-key event
