"""Turn due schedules into jobs: catch-up and overlap policies (pure: no
database, no clock; ``now`` is the database's, passed by the engine)."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions, UnknownTaskError
from django_jobs.rows import NewJob
from django_jobs.scheduling.plans import DueSchedule, ScheduleDefinition, TickPlan
from django_jobs.scheduling.ticks import Cadence
from django_jobs.tasks import resolve_task

logger = logging.getLogger("django_jobs.scheduler")

# Due ticks examined per schedule at most (a minutely cron down for 69 days).
MAX_SCAN = 100_000


def due_ticks(
    cadence: Cadence, start: datetime, now: datetime, keep: int
) -> tuple[list[datetime], int]:
    """The latest ``keep`` ticks from ``start`` to ``now`` (included), and how many there are."""
    # On the cadence's grid even when next_run_at was edited by hand.
    start = cadence.next_after(start - timedelta(microseconds=1))
    if start > now:
        return [], 0
    if cadence.interval is not None:
        count = (now - start) // cadence.interval + 1
        first = max(0, count - keep)
        return [start + cadence.interval * i for i in range(first, count)], count
    latest: deque[datetime] = deque(maxlen=keep)
    count, tick = 0, start
    while tick <= now and count < MAX_SCAN:
        latest.append(tick)
        count += 1
        tick = cadence.next_after(tick)
    return list(latest), count


def build_row(schedule: ScheduleDefinition, run_after: datetime | None) -> NewJob:
    """The job row of ``schedule`` (its task's options, the schedule's queue and priority)."""
    task = resolve_task(schedule.task_name)
    changes = {"queue_name": schedule.queue_name, "priority": schedule.priority}
    task = task.using(**{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
    return dataclasses.replace(task.new_job(schedule.args, schedule.kwargs), run_after=run_after)


def plan_one(due: DueSchedule, now: datetime) -> TickPlan:
    limit = max(1, int(jobs_settings.SCHEDULE_CATCH_UP_LIMIT))
    schedule = due.schedule
    ticks, count = due_ticks(schedule.cadence, due.next_run_at, now, limit)
    following = schedule.cadence.next_after(now)
    meta = {"schedule": schedule.name}
    if not ticks:  # next_run_at was moved off the grid: no tick in [next_run_at, now]
        return TickPlan(due.id, due.next_run_at, following, [], meta)
    if schedule.catch_up == "all":
        chosen, reason = ticks, "catch_up='all': beyond SCHEDULE_CATCH_UP_LIMIT"
    elif schedule.catch_up == "skip":
        late = (now - ticks[-1]).total_seconds()
        on_time = count == 1 and late <= float(jobs_settings.SCHEDULE_MISFIRE_GRACE)
        chosen, reason = (
            (ticks if on_time else []),
            "catch_up='skip': missed while no scheduler ran",
        )
    else:
        chosen, reason = ticks[-1:], "catch_up='latest': missed ticks ran as one job"
    if not schedule.overlap and chosen:
        if due.previous_active:
            chosen, reason = [], "overlap=False: the previous job was still READY or RUNNING"
        else:
            chosen = chosen[-1:]  # jobs of one batch would overlap each other
    try:
        jobs = [build_row(schedule, tick) for tick in chosen]
    except (UnknownTaskError, InvalidJobOptions, TypeError, ValueError) as exc:
        logger.error("schedule %s: cannot enqueue %s: %s", schedule.name, schedule.task_name, exc)
        jobs, reason = [], f"cannot enqueue: {exc}"[:200]
    skipped = count - len(jobs)
    return TickPlan(
        schedule_id=due.id,
        expected=due.next_run_at,
        next_run_at=following,
        jobs=jobs,
        meta=meta,
        skipped=skipped,
        skip_reason=reason if skipped else "",
    )


def plan_ticks(due: Sequence[DueSchedule], now: datetime) -> list[TickPlan]:
    """The plan of each due schedule at the database time ``now``."""
    return [plan_one(schedule, now) for schedule in due]
