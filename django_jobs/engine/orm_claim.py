"""The ORM claim, shared by ``GenericEngine.claim_jobs`` (the worker's claim
on SQLite and MySQL) and ``claim_jobs_at`` (in-process runs on every database:
``django_jobs.testing.run_jobs`` and eager mode, with the caller's time).

``claim_jobs_at`` is not the worker's hot path, so PostgreSQL uses this ORM
version too: ``select_for_update(skip_locked=True)`` gives it the same
guarantee as its SQL claim (no job claimed twice, no waiting on locked rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from django_jobs.engine.claimed import CLAIMED_COLUMNS
from django_jobs.rows import ClaimedJob
from django_jobs.status import JobStatus


def _unless_first_attempt(field: str) -> Case:
    """``field`` kept, or NULL when the attempt being released is the first."""
    return Case(
        When(attempts__lte=1, then=Value(None)), default=F(field), output_field=DateTimeField()
    )


# The update values of a claim handed back unfinished (release_jobs,
# release_orphans): READY with the attempt not counted (a
# released first attempt never started the run), or CANCELLED if a cancel
# was requested while it waited.
RELEASED: dict[str, Any] = {
    "status": Case(
        When(cancel_requested_at__isnull=False, then=Value(JobStatus.CANCELLED)),
        default=Value(JobStatus.READY),
    ),
    "finished_at": Case(When(cancel_requested_at__isnull=False, then=Now())),
    "attempts": F("attempts") - 1,
    "started_at": _unless_first_attempt("started_at"),
    "last_attempted_at": _unless_first_attempt("last_attempted_at"),
    "lease_expires_at": None,
    "worker_id": None,
    "claim_token": None,
}

# The ORM reads worker_id too (the SQL engine knows it without reading).
_CLAIMED_FIELDS = (*CLAIMED_COLUMNS, "worker_id")


class OrmClaims:
    """Mixed into GenericEngine (which provides ``alias``, ``_jobs``, ``_lockable``)."""

    alias: str

    def _jobs(self) -> Any:
        raise NotImplementedError

    def _lockable(self, qs: Any) -> Any:
        raise NotImplementedError

    def _unpaused(self, qs: Any) -> Any:
        raise NotImplementedError

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
        # Due at ``now``, or enqueued to run at once and never attempted: a clock
        # frozen before the enqueue (whose run_after is the database's now) still
        # runs it. See Engine.claim_jobs_at.
        due = Q(run_after__lte=now) | Q(attempts=0, requested_run_after__isnull=True)
        if ids is not None:
            due &= Q(pk__in=list(ids))
        # Jobs with a lane too: an in-process run takes one job at a time.
        return self._claim(worker_id, queues, limit, lease_seconds, due, now, lanes=True)

    def _claim(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease: float,
        due: Q,
        now: datetime,
        *,
        lanes: bool,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` READY jobs matching ``due``, started at ``now``.

        On SQLite the IMMEDIATE transaction serializes the read-then-update; on
        other databases the candidate rows are locked SKIP LOCKED, and the
        update re-checks READY, so a job is never claimed twice. Paused queues
        are skipped; jobs with a flow lane only with ``lanes`` (the worker claims
        them through the gated claim, ``engine.flow``).
        """
        with transaction.atomic(using=self.alias):
            ready = self._jobs().filter(due, status=JobStatus.READY).for_queues(queues)
            if not lanes:
                ready = ready.filter(flow_lane__isnull=True)
            candidates = self._lockable(self._unpaused(ready).claim_order())
            ids = list(candidates.values_list("pk", flat=True)[:limit])
            if not ids:
                return []
            token = uuid.uuid4()  # unique per claim; (id, token) fences every later write
            self._jobs().filter(pk__in=ids, status=JobStatus.READY).update(
                status=JobStatus.RUNNING,
                attempts=F("attempts") + 1,
                # The run's start is its first attempt's; each attempt has its own.
                started_at=Coalesce(F("started_at"), Value(now)),
                last_attempted_at=now,
                worker_id=worker_id,
                claim_token=token,
                # Real time: recovery compares leases with the real clock.
                lease_expires_at=timezone.now() + timedelta(seconds=lease),
            )
            rows = list(
                self._jobs()
                .filter(pk__in=ids, claim_token=token)
                .claim_order()
                .values(*_CLAIMED_FIELDS)
            )
        return [ClaimedJob(**row, database=self.alias) for row in rows]
