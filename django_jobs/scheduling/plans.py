"""The values that flow between the scheduler, its planner and the engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django_jobs.rows import NewJob
from django_jobs.scheduling.ticks import Cadence

# After downtime: "latest" one job for the missed ticks, "all" one per tick
# (at most SCHEDULE_CATCH_UP_LIMIT), "skip" none of them.
CATCH_UP = ("latest", "all", "skip")
# Where a Schedule row comes from.
SOURCES = ("code", "settings", "admin")


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """A schedule declared in code (``@task(schedule=)``) or in settings."""

    name: str
    task_name: str
    cadence: Cadence
    args: list[Any]
    kwargs: dict[str, Any]
    queue_name: str | None
    priority: int | None
    catch_up: str
    overlap: bool
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class DueSchedule:
    """A due Schedule row, locked by the engine for the current transaction."""

    id: int
    schedule: ScheduleDefinition  # what the row says (from code, settings or the admin)
    next_run_at: datetime
    previous_active: bool  # the schedule's last job is READY or RUNNING


@dataclasses.dataclass(frozen=True, slots=True)
class TickPlan:
    """What to write for one due schedule: its jobs (run_after = their tick,
    meta["schedule"] = the name) and its next tick, guarded by ``expected``."""

    schedule_id: int
    expected: datetime  # next_run_at as read: the compare-and-set guard
    next_run_at: datetime
    jobs: list[NewJob]
    meta: dict[str, Any]
    skipped: int = 0
    skip_reason: str = ""


@dataclasses.dataclass(slots=True)
class FireReport:
    """One pass of ``Engine.fire_due_schedules``."""

    schedules: int = 0  # due schedules locked and planned
    jobs: int = 0
    skipped: int = 0  # ticks that got no job of their own
    lost: int = 0  # compare-and-set lost (another scheduler advanced it first)
    wait: float | None = None  # seconds until the earliest enabled tick (database clock)


Planner = Callable[[Sequence[DueSchedule], datetime], list[TickPlan]]
