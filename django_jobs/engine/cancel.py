"""Cancelling jobs and renewing leases through the Django ORM (SQLite, and any
database): the ``Engine`` methods that cancel, mixed into ``GenericEngine``.

A READY job is cancelled at once. A RUNNING one only gets
``cancel_requested_at``: its worker hears of it in its next heartbeat
(:meth:`CancelOperations.renew_leases` reports it), stops the task, and writes
the end itself with :meth:`CancelOperations.cancel_running`, fenced on id AND
claim token AND RUNNING like every write after a claim. A completion fenced
the same way may get there first: whichever commits first is the job's one
outcome, the other matches no row.

On SQLite every ``atomic()`` block takes the write lock when it begins
(``transaction_mode = "IMMEDIATE"``), so each read-then-write below is
serialized against every other writer; elsewhere the rows are locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from django_jobs.models import Job, JobQuerySet
from django_jobs.rows import Cancellation, CancelReport, ClaimedJob, Renewal
from django_jobs.status import ACTIVE_STATUSES, JobStatus


class CancelOperations:
    """The cancel and lease methods of :class:`~django_jobs.engine.base.Engine`, by ORM."""

    alias: str

    def _jobs(self) -> JobQuerySet:
        return Job.objects.using(self.alias)

    def _lockable(self, qs: JobQuerySet) -> JobQuerySet:
        raise NotImplementedError  # GenericEngine's

    def cancel(self, ids: Sequence[int]) -> CancelReport:
        with transaction.atomic(using=self.alias):
            # Locked (waiting, not skipping: an operator's cancel must not miss a
            # job a worker is writing right now), so the statuses read are the
            # ones the updates below change.
            rows = list(
                self._jobs()
                .select_for_update()
                .filter(pk__in=list(ids), status__in=sorted(ACTIVE_STATUSES))
                .values_list("pk", "status")
            )
            ready = sorted(pk for pk, status in rows if status == JobStatus.READY)
            running = sorted(pk for pk, status in rows if status == JobStatus.RUNNING)
            if ready:
                self._jobs().filter(pk__in=ready, status=JobStatus.READY).update(
                    status=JobStatus.CANCELLED, finished_at=Now()
                )
            if running:
                # The first request's time is kept: asking again changes nothing.
                self._jobs().filter(pk__in=running, status=JobStatus.RUNNING).update(
                    cancel_requested_at=Coalesce(F("cancel_requested_at"), Now())
                )
        return CancelReport(cancelled=tuple(ready), requested=tuple(running))

    def cancel_jobs(self, ids: Sequence[int]) -> int:
        return self.cancel(ids).total

    def cancel_running(self, cancellation: Cancellation) -> bool:
        job = cancellation.job
        with transaction.atomic(using=self.alias):
            row = (
                self._jobs()
                .select_for_update()
                .filter(pk=job.id, claim_token=job.claim_token, status=JobStatus.RUNNING)
                .first()
            )
            if row is None:
                return False  # completed, failed or recovered first: that is its outcome
            row.errors = [*row.errors, cancellation.error]
            row.status = JobStatus.CANCELLED
            row.finished_at = timezone.now()
            row.lease_expires_at = None
            row.save(update_fields=["status", "finished_at", "errors", "lease_expires_at"])
        return True

    def renew_leases(self, jobs: Sequence[ClaimedJob], lease_seconds: float) -> Renewal:
        if not jobs:
            return Renewal()
        # Claim tokens are fresh per claim, so (id in ours, token in ours) only
        # matches claims this worker made and still knows about.
        held = self._jobs().filter(
            pk__in=[job.id for job in jobs],
            claim_token__in={job.claim_token for job in jobs},
            status=JobStatus.RUNNING,
        )
        lease = timezone.now() + timedelta(seconds=lease_seconds)
        with transaction.atomic(using=self.alias):
            # A row locked right now (a completion in flight, an atomic task's own
            # transaction) is skipped, not waited for: a heartbeat stalled behind a
            # job would let every other lease of this worker run out. The next
            # beat renews whatever is still running. (SQLite: writers are serialized.)
            ids = list(self._lockable(held).values_list("pk", flat=True))
            if not ids:
                return Renewal()
            renewed = self._jobs().filter(pk__in=ids).update(lease_expires_at=lease)
            cancelled = self._jobs().filter(pk__in=ids, cancel_requested_at__isnull=False)
            return Renewal(renewed, frozenset(cancelled.values_list("pk", flat=True)))

    def _existing_for(self, key: str, unique_for: float | None) -> Job | None:
        """The job holding ``key``: an active one, or (``unique_for`` seconds) any
        enqueued that recently, the newest first."""
        holds = Q(status__in=sorted(ACTIVE_STATUSES))
        if unique_for is not None:
            holds |= Q(enqueued_at__gte=timezone.now() - timedelta(seconds=unique_for))
        return self._jobs().filter(holds, idempotency_key=key).order_by("-pk").first()
