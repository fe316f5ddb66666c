"""PostgreSQL's part of the schedule operations: one statement per pass for
what the ORM does one schedule at a time, and NOTIFY wake-ups for fired ticks.

The rest (locking the due rows with SKIP LOCKED, reading the previous jobs,
the wait until the next tick) is the ORM's, in ``engine.schedules``: those
are one statement per pass already.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections

from django_jobs.engine.pg import JOBS_CHANNEL, notify_enabled
from django_jobs.scheduling.plans import TickPlan

# Compare-and-set of every planned schedule's next_run_at in one statement.
# The rows are locked FOR UPDATE by this transaction already (the pass's
# SELECT ... SKIP LOCKED), and the guard on the next_run_at read makes a row
# that moved anyway (an operator's edit committed before our lock) write
# nothing: RETURNING names exactly the schedules this pass won, and only
# their jobs are inserted. Skips are counted on the same row.
ADVANCE_SCHEDULES = """
UPDATE django_jobs_schedule AS s
SET next_run_at = v.next_run_at,
    skipped_ticks = s.skipped_ticks + v.skipped,
    last_skipped_at = CASE WHEN v.skipped > 0 THEN %(now)s ELSE s.last_skipped_at END,
    last_skip_reason = CASE WHEN v.skipped > 0 THEN v.reason ELSE s.last_skip_reason END
FROM unnest(%(ids)s::bigint[], %(expected)s::timestamptz[], %(next)s::timestamptz[],
            %(skipped)s::int[], %(reasons)s::text[])
     AS v(id, expected, next_run_at, skipped, reason)
WHERE s.id = v.id AND s.next_run_at = v.expected
RETURNING s.id
"""

# Each fired schedule's last job, in one statement, on rows this transaction
# holds locked (or just inserted the jobs for): no other writer interleaves.
RECORD_LAST_JOBS = """
UPDATE django_jobs_schedule AS s
SET last_job_id = v.job_id, last_enqueued_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(jobs)s::bigint[]) AS v(id, job_id)
WHERE s.id = v.id
"""

# One wake-up per queue that got scheduled jobs. pg_notify in the scheduler's
# transaction is delivered when it commits, and never if it rolls back, so a
# listening worker is only ever woken for jobs it can see.
NOTIFY_QUEUES = "SELECT pg_notify(%s, queue) FROM unnest(%s::text[]) AS queue"


class PostgresScheduleOperations:
    """Overrides of :class:`~django_jobs.engine.schedules.ScheduleOperations` for PostgreSQL."""

    alias: str

    def _advance(self, plans: Sequence[TickPlan], now: datetime) -> set[int]:
        if not plans:
            return set()
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                ADVANCE_SCHEDULES,
                {
                    "now": now,
                    "ids": [p.schedule_id for p in plans],
                    "expected": [p.expected for p in plans],
                    "next": [p.next_run_at for p in plans],
                    "skipped": [p.skipped for p in plans],
                    "reasons": [p.skip_reason for p in plans],
                },
            )
            return {row[0] for row in cursor.fetchall()}

    def _record_last_jobs(self, last_jobs: dict[int, int], now: datetime) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                RECORD_LAST_JOBS,
                {"now": now, "ids": list(last_jobs), "jobs": list(last_jobs.values())},
            )

    def _wake_workers(self, queues: Sequence[str]) -> None:
        if not queues or not notify_enabled():
            return
        with connections[self.alias].cursor() as cursor:
            cursor.execute(NOTIFY_QUEUES, [JOBS_CHANNEL, list(queues)])
