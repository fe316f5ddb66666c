"""Job and outbox statuses, and who moves a job between them.

::

    enqueue ──> READY ──claim──> RUNNING ──ok──> SUCCESSFUL
                 ^  ^              │ │
                 │  └──retry───────┘ └──exhausted / discarded──> FAILED (+ DeadLetter)
                 │  └──lease expired (worker died) / graceful hand-back
    cancel:       READY ──> CANCELLED (at once)
                  RUNNING ──(cancel_requested_at set; the worker stops it)──> CANCELLED
    admin retry:  FAILED, CANCELLED ──> READY

The engine guards every transition with the ``from`` status in its WHERE
clause; admin actions and tests derive their checks from :data:`TRANSITIONS`.
"""

from __future__ import annotations

from django.db import models


class JobStatus(models.TextChoices):
    # Waiting to run; "scheduled" or "retrying" when run_after is in the future.
    READY = "READY", "Ready"
    # Claimed by a worker, which holds a lease and a claim token.
    RUNNING = "RUNNING", "Running"
    # Finished without error; ``result`` holds the return value.
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    # Gave up (attempts exhausted, discarded, undecodable); a DeadLetter row exists.
    FAILED = "FAILED", "Failed"
    # Cancelled by an operator: before it ran, or stopped while running.
    CANCELLED = "CANCELLED", "Cancelled"


FINISHED_STATUSES: frozenset[str] = frozenset(
    {JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED}
)
ACTIVE_STATUSES: frozenset[str] = frozenset({JobStatus.READY, JobStatus.RUNNING})

# Allowed transitions: to-status -> from-statuses.
TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.RUNNING: frozenset({JobStatus.READY}),  # claim
    JobStatus.SUCCESSFUL: frozenset({JobStatus.RUNNING}),  # completion
    JobStatus.FAILED: frozenset({JobStatus.RUNNING, JobStatus.READY}),  # give up / undecodable
    # retry after failure, lease recovery, hand-back, operator retry
    JobStatus.READY: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    # operator cancel (READY), or the end of a RUNNING job whose cancel was requested
    JobStatus.CANCELLED: frozenset({JobStatus.READY, JobStatus.RUNNING}),
}


def can_transition(from_status: str, to_status: str) -> bool:
    """True if a job may move from ``from_status`` to ``to_status``."""
    return from_status in TRANSITIONS.get(to_status, frozenset())


class OutboxStatus(models.TextChoices):
    # Written in the caller's transaction; waiting for the relay.
    PENDING = "PENDING", "Pending"
    # Handed to every subscriber and publisher.
    DISPATCHED = "DISPATCHED", "Dispatched"
    # An external delivery gave up after its attempts; operators can re-dispatch.
    FAILED = "FAILED", "Failed"


class CircuitState(models.TextChoices):
    # Jobs run; failures are counted over the circuit's WINDOW.
    CLOSED = "CLOSED", "Closed"
    # FAILURES failures within WINDOW: its jobs wait READY (no attempt) for COOLDOWN.
    OPEN = "OPEN", "Open"
    # COOLDOWN over: one probe job runs; success closes it, failure reopens it.
    HALF_OPEN = "HALF_OPEN", "Half-open"


class WorkflowStatus(models.TextChoices):
    """A workflow's state (``django_jobs.models.Workflow``), moved by the engine's
    workflow advance (``django_jobs.workflows.advance``) under the workflow's row lock::

        enqueue ──> RUNNING ──last step done──> SUCCESSFUL
                      │  └──a step (or a saga's compensation) failed for good──> FAILED
                      │  └──saga step failed, compensations all done──> COMPENSATED
                      └──cancel (a saga: once its compensations ran)──> CANCELLED
        operator retry: FAILED ──> RUNNING
    """

    # Steps are running or waiting for the previous ones (a saga may be compensating).
    RUNNING = "RUNNING", "Running"
    # Every step succeeded.
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    # A step failed for good (chain, group, chord) or a saga's compensation gave up.
    FAILED = "FAILED", "Failed"
    # A saga step failed and the compensations of the completed steps all ran.
    COMPENSATED = "COMPENSATED", "Compensated"
    # Cancelled by an operator (a saga's compensations ran first).
    CANCELLED = "CANCELLED", "Cancelled"


WORKFLOW_FINISHED_STATUSES: frozenset[str] = frozenset(
    {
        WorkflowStatus.SUCCESSFUL,
        WorkflowStatus.FAILED,
        WorkflowStatus.COMPENSATED,
        WorkflowStatus.CANCELLED,
    }
)


class StepStatus(models.TextChoices):
    """One step of a workflow (``django_jobs.models.WorkflowStep``)."""

    # Not started: waits for the steps before it (or, a compensation, for a failure).
    PENDING = "PENDING", "Pending"
    # Started: its job exists (a task), or its first members started (chain, group).
    RUNNING = "RUNNING", "Running"
    # Its job (or every member) succeeded; ``result`` holds the value.
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    # Its job failed for good (dead-lettered, or cancelled by an operator).
    FAILED = "FAILED", "Failed"
    # The workflow was cancelled before the step ran.
    CANCELLED = "CANCELLED", "Cancelled"
