"""The engine interface: every database operation the worker, admin and
outbox need, named verb_noun, with typed results (like River's
``riverdriver``). Nothing here queries: ``generic`` implements it with the
Django ORM (any database), ``postgres`` replaces the hot path with raw SQL.

Rules every implementation keeps:

- Every write after a claim is fenced on ``id`` AND ``claim_token`` AND
  ``status = RUNNING``; a result of 0 / False / a missing id means the claim
  was lost (the lease expired and another worker took over): log it and move on.
- A job that gives up moves to FAILED and gets its DeadLetter row in the same
  transaction.
- Operator actions return how many rows they changed: a row not in the state
  the action starts from is left alone and not counted.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from django.db import connections
from django.db.models import QuerySet

from django_jobs.rows import (
    Cancellation,
    CancelReport,
    ClaimedJob,
    Completion,
    Failure,
    Inserted,
    NewJob,
    RecoveryReport,
    Renewal,
    RetriedLetter,
    TaskFilter,
    WorkerInfo,
)
from django_jobs.scheduling.plans import FireReport, Planner, ScheduleDefinition

if TYPE_CHECKING:
    from django_jobs.models import Workflow
    from django_jobs.workflows.canvas import PlannedStep

# Texts of recovery, shared by every engine (PostgreSQL formats them in SQL).
LOST_WORKER_MESSAGE = (
    "worker {worker} stopped renewing its lease (killed, crashed, paused or cut off "
    "from the database); job recovered"
)
LOST_WORKER_REASON = (
    "worker lost during attempt {attempts} of {max_attempts} (killed, crashed, paused "
    "or cut off from the database); no attempts left"
)

# Tables and columns the admin lists distinct values of (``distinct_names``).
NamedTable = Literal["job", "dead_letter"]
NameColumn = Literal["task_name", "queue_name"]


class Engine(abc.ABC):
    """Database operations for one database alias."""

    # True if claim wake-ups can use LISTEN/NOTIFY.
    supports_notify: bool = False
    # True if ``estimate_rows`` answers (else admin counts are always exact).
    estimates_rows: bool = False

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    # -- enqueue ---------------------------------------------------------

    @abc.abstractmethod
    def insert_jobs(self, rows: Sequence[NewJob]) -> list[Inserted]:
        """Insert jobs in the caller's transaction; return them in input order.

        A row whose idempotency key is held by a READY/RUNNING job returns
        that existing job (``created`` False) and inserts nothing; with
        ``unique_for``, so does any job with that key enqueued within that
        many seconds, whatever its status. The answer comes from the database
        under a lock or a unique index, so it holds under concurrent enqueues.
        """

    # -- worker hot path -------------------------------------------------

    @abc.abstractmethod
    def claim_jobs(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        *,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` due READY jobs of ``queues`` (None: all), in claim
        order (priority, run_after, id). Each gets a fresh claim token and a lease
        of ``lease_seconds``; no job is claimed by two workers. [] if none is due.
        ``tasks`` narrows the lane-free jobs to some tasks (jobs with a flow lane
        are claimed whatever their task)."""

    @abc.abstractmethod
    def claim_jobs_at(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        *,
        now: datetime,
        ids: Sequence[int] | None = None,
    ) -> list[ClaimedJob]:
        """``claim_jobs`` with ``now`` as the time instead of the database's clock,
        optionally among ``ids`` only: for in-process runs (``django_jobs.testing``,
        eager mode), never the worker's hot path.

        Due means ``run_after <= now``, or enqueued to run at once and never
        attempted (no requested run_after), so a clock frozen before the
        enqueue still runs immediate jobs. The start times are ``now``; the
        lease counts from the real time (recovery compares it with that).
        """

    @abc.abstractmethod
    def complete_jobs(self, completions: Sequence[Completion]) -> set[int]:
        """Mark jobs SUCCESSFUL with their results, fenced; returns the ids whose
        claim still held (an id missing: that claim was lost, nothing written)."""

    @abc.abstractmethod
    def complete_and_claim(
        self,
        completions: Sequence[Completion],
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        *,
        tasks: TaskFilter | None = None,
        lane_limit: int | None = None,
    ) -> tuple[set[int], list[ClaimedJob]]:
        """``complete_jobs`` then ``claim_jobs`` (only if ``limit`` > 0), in one
        round trip where the database allows: the worker's steady state. At
        most ``lane_limit`` of the claims come from lanes with a concurrency
        limit (e.g. a caller's free slots, since a job claimed ahead holds its
        lane's slot while it waits; the ORM engine applies it to every lane).
        The worker gives none: its prefetch is short (bench/RESULTS.md)."""

    @abc.abstractmethod
    def fail_job(self, failure: Failure) -> bool:
        """Record a failed attempt, fenced: READY again at ``retry_at``, or (None)
        FAILED with its dead letter; CANCELLED (never retried, no dead letter)
        when its cancel was requested. False: the claim was lost, nothing written."""

    @abc.abstractmethod
    def release_jobs(self, jobs: Sequence[ClaimedJob]) -> int:
        """Hand unfinished jobs back to READY, attempt not counted (graceful
        shutdown), fenced; a job whose cancel was requested ends CANCELLED
        instead. Returns how many were still held."""

    @abc.abstractmethod
    def release_orphans(self, worker_id: uuid.UUID, held: Sequence[int]) -> int:
        """Hand back to READY, attempt not counted, the RUNNING jobs claimed by
        worker ``worker_id`` that are not in ``held`` (the ids it knows it
        holds): claims whose answer a lost connection took, which would
        otherwise wait for their lease. Only for the worker's own id, from the
        thread that claims, between claims. Returns how many."""

    @abc.abstractmethod
    def renew_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> Renewal:
        """Renew the leases of ``jobs``, the claims this worker still holds, and
        say which of them an operator cancelled (``cancel_requested_at`` set).

        Renewal is by id AND claim token, never "every job of this worker": a
        claim whose answer was lost with the connection is unknown to the
        worker, is not renewed, and expires into recovery instead of staying
        RUNNING forever. A row locked right now is skipped (the next beat
        renews it and reports its cancel). One round trip where the database
        allows: the heartbeat learns of cancels for free.
        """

    def heartbeat(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> int:
        """:meth:`renew_leases`, the number of leases renewed only."""
        return self.renew_leases(jobs, lease_seconds).renewed

    @abc.abstractmethod
    def cancel_running(self, cancellation: Cancellation) -> bool:
        """End a RUNNING job whose run was stopped by its cancel: CANCELLED, never
        retried, the error entry appended; fenced like every write after a claim.
        False: the claim was lost or the job's outcome was written first (a
        completion that won the race), nothing written."""

    @abc.abstractmethod
    def recover_expired(self, limit: int = 500) -> RecoveryReport:
        """Re-queue (or dead-letter) up to ``limit`` RUNNING jobs whose lease expired.

        The attempt that was running counts: a WorkerLost entry is appended to
        the job's errors. A job whose cancel was requested ends CANCELLED
        instead. Jobs being written right now (row locked) are skipped.
        """

    @abc.abstractmethod
    def drop_stale_connection(self) -> None:
        """Before a job: close this thread's connection if it is broken, or older
        than a positive CONN_MAX_AGE, so the job starts on a working one instead
        of failing (and spending an attempt) on its first query."""

    # -- workers ---------------------------------------------------------

    @abc.abstractmethod
    def register_worker(self, info: WorkerInfo) -> None:
        """Create the Worker row of a starting worker."""

    @abc.abstractmethod
    def touch_worker(self, info: WorkerInfo) -> None:
        """Record a heartbeat on the Worker row; re-create the row if it was pruned
        (a worker paused for longer than the pruning threshold comes back)."""

    @abc.abstractmethod
    def unregister_worker(self, worker_id: uuid.UUID) -> None:
        """Delete the Worker row of a stopping worker (none: nothing to do)."""

    @abc.abstractmethod
    def prune_dead_workers(self, older_than_seconds: float) -> int:
        """Delete Worker rows whose heartbeat stopped long ago; returns how many."""

    # -- operator actions (admin, CLI) ----------------------------------

    @abc.abstractmethod
    def wake_queues(self, names: Iterable[str]) -> None:
        """Wake the workers of queues ``names`` once the current transaction
        commits (a resumed queue is claimed from at once, not at the next
        poll). Nothing where wake-ups are not supported or turned off."""

    @abc.abstractmethod
    def retry_jobs(self, ids: Sequence[int]) -> int:
        """FAILED/CANCELLED -> READY now with fresh attempts (and no cancel
        request), history kept.
        Returns how many changed (others are in no state to retry)."""

    @abc.abstractmethod
    def cancel(self, ids: Sequence[int]) -> CancelReport:
        """READY -> CANCELLED now; RUNNING -> ``cancel_requested_at`` set (the
        first request's time kept), its worker stops it and writes CANCELLED
        (:meth:`cancel_running`). Finished or unknown ids are left alone."""

    @abc.abstractmethod
    def cancel_jobs(self, ids: Sequence[int]) -> int:
        """:meth:`cancel`, counted: jobs cancelled plus cancels requested."""

    @abc.abstractmethod
    def run_jobs_now(self, ids: Sequence[int]) -> int:
        """Scheduled READY jobs become due now; returns how many."""

    @abc.abstractmethod
    def retry_dead_letters(self, ids: Sequence[int]) -> list[RetriedLetter]:
        """Re-enqueue the dead letters not retried yet, once each even under
        concurrent retries; one RetriedLetter per letter re-enqueued."""

    @abc.abstractmethod
    def prune_finished(self, finished_before: datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` finished jobs older than ``finished_before``;
        returns how many (0: nothing left). One bounded statement per call; callers
        loop (see ``django_jobs.pruning``). A job retried meanwhile survives."""

    @abc.abstractmethod
    def count_finished(self, finished_before: datetime) -> int:
        """How many finished jobs are older than ``finished_before`` (for dry runs)."""

    def vacuum_jobs(self) -> bool:
        """Reclaim the space of pruned rows now (``prunejobs --vacuum``); False
        where the database has nothing of the kind worth running."""
        return False

    # -- admin reads (read-only) ------------------------------------------

    @abc.abstractmethod
    def distinct_names(self, table: NamedTable, column: NameColumn, limit: int) -> list[str]:
        """Up to ``limit`` distinct values of ``column`` in ``table``, sorted, one
        index probe each (never a scan of the table)."""

    @abc.abstractmethod
    def estimate_rows(self, queryset: QuerySet[Any]) -> int:
        """The planner's estimate of the rows ``queryset`` returns, without running
        it. Only where ``estimates_rows`` is True."""

    # -- schedules (implemented in engine/schedules.py, schedules_postgres.py) --

    @abc.abstractmethod
    def sync_schedules(self, definitions: Sequence[ScheduleDefinition]) -> dict[str, int]:
        """Make the code/settings Schedule rows match ``definitions``: create new
        ones (first tick after the database's now), update changed ones (a new
        cadence restarts from now), disable and flag the ones no longer defined.
        Rows made in the admin are never touched. Returns counts by action."""

    @abc.abstractmethod
    def fire_due_schedules(self, limit: int, planner: Planner) -> FireReport:
        """In ONE transaction: lock up to ``limit`` enabled schedules whose
        next_run_at <= the database's now (rows another scheduler holds are
        skipped), plan them, advance each next_run_at by compare-and-set on its
        old value, and insert the planned jobs (run_after = tick,
        meta["schedule"] = name). A tick is enqueued at most once cluster-wide.
        The report's ``wait`` is the seconds to the earliest enabled tick."""

    @abc.abstractmethod
    def enqueue_schedule_now(self, schedule_id: int, row: NewJob, meta: dict[str, Any]) -> int:
        """One extra job of a schedule, due now; its next tick is unchanged.
        Returns the job's id."""

    # -- workflows (implemented in engine/workflows.py) -----------------------

    @abc.abstractmethod
    def insert_workflow(self, kind: str, planned: Sequence[PlannedStep]) -> Workflow:
        """Write a Workflow, its planned steps and the jobs of its first steps in
        the caller's transaction; return the Workflow."""

    @abc.abstractmethod
    def settle_orphans(self, limit: int = 50) -> int:
        """Advance the workflow steps whose job finished without an advance
        (dead-lettered by recovery, cancelled by an operator); returns how many."""

    @abc.abstractmethod
    def cancel_workflow(self, workflow_id: int) -> bool:
        """Cancel a running workflow (pending steps and READY jobs CANCELLED; a
        saga compensates). False if it had finished or was cancelled already."""

    @abc.abstractmethod
    def retry_workflow(self, workflow_id: int) -> int:
        """Run a FAILED workflow's failed steps again; returns how many."""
