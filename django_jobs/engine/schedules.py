"""Schedule operations through the Django ORM (SQLite, and any database):
the ``Engine`` methods of the schedules section, mixed into ``GenericEngine``.

Exactly one job per tick: the due rows are locked for the transaction
(``FOR UPDATE SKIP LOCKED`` where the database has it; SQLite's IMMEDIATE
transaction serializes writers), "due" is decided by the database's clock
(``Now()``), and next_run_at only moves by compare-and-set on the value read,
so a scheduler that lost the row (or raced without locks) writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import F, Max, Min
from django.db.models.functions import Now
from django.utils import timezone

from django_jobs.engine.instances import new_job_model
from django_jobs.models import Job, Schedule
from django_jobs.rows import NewJob
from django_jobs.scheduling.plans import (
    DueSchedule,
    FireReport,
    Planner,
    ScheduleDefinition,
    TickPlan,
)
from django_jobs.status import JobStatus

# Seconds to wait when the earliest due schedule is locked by another scheduler
# (it commits within milliseconds).
LOCKED_RETRY_SECONDS = 0.05
_ACTIVE = (JobStatus.READY, JobStatus.RUNNING)


def due_from_model(row: Schedule, previous_active: bool) -> DueSchedule:
    return DueSchedule(
        id=row.pk,
        schedule=row.definition(),
        next_run_at=row.next_run_at,
        previous_active=previous_active,
    )


def definition_fields(definition: ScheduleDefinition) -> dict[str, Any]:
    cadence = definition.cadence
    return {
        "task_name": definition.task_name,
        "cron": cadence.cron or "",
        "interval": cadence.interval,
        "timezone": cadence.timezone,
        "args": definition.args,
        "kwargs": definition.kwargs,
        "queue_name": definition.queue_name,
        "priority": definition.priority,
        "catch_up": definition.catch_up,
        "overlap": definition.overlap,
        "source": definition.source,
    }


class ScheduleOperations:
    """The schedule methods of :class:`~django_jobs.engine.base.Engine`, by ORM."""

    alias: str

    def _schedules(self) -> Any:
        return Schedule.objects.using(self.alias)

    def sync_schedules(self, definitions: Sequence[ScheduleDefinition]) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "removed": 0, "unchanged": 0}
        wanted = {d.name: d for d in definitions}
        with transaction.atomic(using=self.alias):
            now = self._database_now()
            rows = (
                self._schedules().filter(name__in=list(wanted))
                | self._schedules().from_definitions()
            )
            locked = self._lock(rows.order_by("id"))
            existing = {row.name: row for row in locked}
            for name, definition in wanted.items():
                row = existing.get(name)
                fields = definition_fields(definition)
                if row is None:
                    self._schedules().bulk_create(
                        [
                            Schedule(
                                name=name, next_run_at=definition.cadence.next_after(now), **fields
                            )
                        ],
                        ignore_conflicts=True,  # a worker starting alongside made it
                    )
                    counts["created"] += 1
                    continue
                if row.source == Schedule.Source.ADMIN:
                    counts["unchanged"] += 1  # made in the admin: never touched
                    continue
                changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
                if row.removed_from_code:
                    changed.update(removed_from_code=False, enabled=True)
                if {"cron", "interval", "timezone"} & set(changed) or row.removed_from_code:
                    changed["next_run_at"] = definition.cadence.next_after(now)
                if changed:
                    self._schedules().filter(pk=row.pk).update(**changed, updated_at=now)
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            gone = [
                row.pk
                for name, row in existing.items()
                if name not in wanted
                and not row.removed_from_code
                and row.source != Schedule.Source.ADMIN
            ]
            counts["removed"] = (
                self._schedules()
                .filter(pk__in=gone)
                .update(enabled=False, removed_from_code=True, updated_at=now)
            )
        return counts

    def _database_now(self) -> datetime:
        """The database's clock (the scheduler never trusts its host's)."""
        connection = connections[self.alias]
        if connection.vendor == "sqlite":
            return timezone.now()  # an embedded database: its clock is this host's
        with connection.cursor() as cursor:
            # CURRENT_TIMESTAMP is standard SQL: the transaction's start on PostgreSQL.
            cursor.execute("SELECT CURRENT_TIMESTAMP")
            value = cursor.fetchone()[0]
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)  # MySQL returns the session's UTC time
        return value  # type: ignore[no-any-return]

    def _wake_workers(self, queues: Sequence[str]) -> None:
        """Tell idle workers that scheduled jobs are due in ``queues`` (at commit).

        Nothing here: workers poll. The PostgreSQL engine sends NOTIFY.
        """

    def _after_enqueue(self, jobs: list[Job]) -> None:
        """The job_enqueued signal (GenericEngine sends it on commit)."""

    def _lock(self, qs: Any, skip_locked: bool = False) -> list[Schedule]:
        if connections[self.alias].features.has_select_for_update:
            qs = qs.select_for_update(skip_locked=skip_locked)
        return list(qs)

    def fire_due_schedules(self, limit: int, planner: Planner) -> FireReport:
        report = FireReport()
        with transaction.atomic(using=self.alias):
            due_rows = self._lock(
                self._schedules()
                .enabled()
                .filter(next_run_at__lte=Now())
                .annotate(db_now=Now())
                .order_by("next_run_at", "id")[:limit],
                skip_locked=connections[self.alias].features.has_select_for_update_skip_locked,
            )
            if due_rows:
                now: datetime = due_rows[0].db_now  # type: ignore[attr-defined]
                last_ids = [r.last_job_id for r in due_rows if r.last_job_id is not None]
                active = set(
                    Job.objects.using(self.alias)
                    .filter(pk__in=last_ids, status__in=_ACTIVE)
                    .values_list("pk", flat=True)
                )
                due = [due_from_model(r, r.last_job_id in active) for r in due_rows]
                report.schedules = len(due)
                plans = planner(due, now)
                won = self._advance(plans, now)
                winners = [plan for plan in plans if plan.schedule_id in won]
                report.lost = len(plans) - len(winners)
                report.skipped = sum(plan.skipped for plan in winners)
                last_jobs = self._insert_plans(winners, now)
                if last_jobs:
                    self._record_last_jobs(last_jobs, now)
                report.jobs = sum(len(plan.jobs) for plan in winners)
            report.wait = self._wait()
        return report

    def _advance(self, plans: Sequence[TickPlan], now: datetime) -> set[int]:
        """Move each schedule's next_run_at by compare-and-set; the ids that moved.

        One UPDATE per schedule, guarded by the next_run_at read: a scheduler
        that read the row before another moved it writes nothing (SQLite
        without IMMEDIATE transactions, or a database without row locks).
        """
        won: set[int] = set()
        for plan in plans:
            changes: dict[str, Any] = {"next_run_at": plan.next_run_at}
            if plan.skipped:
                changes.update(
                    skipped_ticks=F("skipped_ticks") + plan.skipped,
                    last_skipped_at=now,
                    last_skip_reason=plan.skip_reason,
                )
            if (
                self._schedules()
                .filter(pk=plan.schedule_id, next_run_at=plan.expected)
                .update(**changes)
            ):
                won.add(plan.schedule_id)
        return won

    def _record_last_jobs(self, last_jobs: dict[int, int], now: datetime) -> None:
        """Each schedule's last job (schedule id -> job id)."""
        for schedule_id, job_id in last_jobs.items():
            self._schedules().filter(pk=schedule_id).update(
                last_job_id=job_id, last_enqueued_at=now
            )

    def _insert_plans(self, plans: Sequence[TickPlan], now: datetime) -> dict[int, int]:
        """Insert the jobs of ``plans`` in one statement; schedule id -> its last job id."""
        owners: list[int] = []
        models: list[Job] = []
        for plan in plans:
            for row in plan.jobs:
                owners.append(plan.schedule_id)
                models.append(
                    new_job_model(
                        row,
                        run_after=row.run_after or now,
                        enqueued_at=now,
                        meta={**row.meta(), **plan.meta},
                    )
                )
        if not models:
            return {}
        created = Job.objects.using(self.alias).bulk_create(models)
        self._wake_workers(sorted({job.queue_name for job in created}))
        self._after_enqueue(created)
        last: dict[int, int] = {}
        for owner, job in zip(owners, created, strict=True):
            last[owner] = max(last.get(owner, 0), job.pk)
        return last

    def _wait(self) -> float | None:
        found = self._schedules().enabled().aggregate(first=Min("next_run_at"), now=Max(Now()))
        if found["first"] is None:
            return None
        return float(max((found["first"] - found["now"]).total_seconds(), LOCKED_RETRY_SECONDS))

    def enqueue_schedule_now(self, schedule_id: int, row: NewJob, meta: dict[str, Any]) -> int:
        with transaction.atomic(using=self.alias):
            now = self._database_now()
            plan = TickPlan(schedule_id, now, now, [row], meta)
            last_jobs = self._insert_plans([plan], now)
            self._record_last_jobs(last_jobs, now)
        return last_jobs[schedule_id]
