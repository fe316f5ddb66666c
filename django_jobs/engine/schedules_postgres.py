"""PostgreSQL's part of the schedule operations: NOTIFY wake-ups for fired ticks.

Everything else about schedules is the ORM's (``engine.schedules``): it is
one short transaction per pass, far from the hot path, and the ORM already
says ``FOR UPDATE SKIP LOCKED`` and compare-and-set as well as raw SQL would.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections

from django_jobs.engine.pg import JOBS_CHANNEL, notify_enabled

# One wake-up per queue that got scheduled jobs. pg_notify in the scheduler's
# transaction is delivered when it commits, and never if it rolls back, so a
# listening worker is only ever woken for jobs it can see.
NOTIFY_QUEUES = "SELECT pg_notify(%s, queue) FROM unnest(%s::text[]) AS queue"


class PostgresScheduleOperations:
    """Overrides of :class:`~django_jobs.engine.schedules.ScheduleOperations` for PostgreSQL."""

    alias: str

    def _wake_workers(self, queues: Sequence[str]) -> None:
        if not queues or not notify_enabled():
            return
        with connections[self.alias].cursor() as cursor:
            cursor.execute(NOTIFY_QUEUES, [JOBS_CHANNEL, list(queues)])
