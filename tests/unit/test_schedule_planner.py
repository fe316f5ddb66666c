"""The planner (catch-up, overlap) driven by a controllable clock: a simulated
scheduler feeds it any "database now", here across both of Europe/Paris's
daylight-saving transitions. No database: the planner is pure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from django_jobs.scheduling.planner import plan_one
from django_jobs.scheduling.plans import DueSchedule, ScheduleDefinition
from django_jobs.scheduling.ticks import Cadence

PARIS = ZoneInfo("Europe/Paris")


def definition(cadence: Cadence, **changes: object) -> ScheduleDefinition:
    fields: dict[str, object] = {
        "name": "s",
        "task_name": "tests.testapp.tasks.noop",
        "cadence": cadence,
        "args": [],
        "kwargs": {},
        "queue_name": None,
        "priority": None,
        "catch_up": "latest",
        "overlap": True,
        "source": "settings",
    }
    fields.update(changes)
    return ScheduleDefinition(**fields)  # type: ignore[arg-type]


def simulate(
    schedule: ScheduleDefinition, start: datetime, end: datetime, step: timedelta
) -> Iterator[datetime]:
    """Run a scheduler that wakes every ``step`` from ``start`` to ``end``: the run_after of
    each job it enqueues (what the engine's compare-and-set would write, in one process)."""
    # In UTC: aware arithmetic in a local zone is wall-clock arithmetic, and
    # would step over the repeated hour itself.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    next_run_at = schedule.cadence.next_after(start)
    now = start
    while now <= end:
        if next_run_at <= now:
            plan = plan_one(DueSchedule(1, schedule, next_run_at, False), now)
            assert plan.expected == next_run_at
            for job in plan.jobs:
                assert job.run_after is not None
                yield job.run_after
            next_run_at = plan.next_run_at
        now += step


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


@pytest.mark.parametrize("step", [timedelta(seconds=7), timedelta(minutes=1, seconds=3)])
def test_cron_across_spring_forward_runs_the_missing_0230_once_at_0300(step):
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Paris; 02:30 does not exist.
    schedule = definition(Cadence(cron="30 2 * * *", timezone="Europe/Paris"))
    fired = list(simulate(schedule, local(2026, 3, 27, 12, 0), local(2026, 3, 31, 12, 0), step))
    assert fired == [
        local(2026, 3, 28, 2, 30).astimezone(UTC),
        local(2026, 3, 29, 3, 0).astimezone(UTC),  # the first valid minute after the gap
        local(2026, 3, 30, 2, 30).astimezone(UTC),
        local(2026, 3, 31, 2, 30).astimezone(UTC),
    ]


@pytest.mark.parametrize("step", [timedelta(seconds=7), timedelta(minutes=1, seconds=3)])
def test_cron_across_fall_back_runs_the_repeated_0230_once(step):
    # 2026-10-25: clocks fall back from 03:00 to 02:00; 02:30 happens twice.
    schedule = definition(Cadence(cron="30 2 * * *", timezone="Europe/Paris"))
    fired = list(simulate(schedule, local(2026, 10, 23, 12, 0), local(2026, 10, 26, 12, 0), step))
    first_0230 = local(2026, 10, 25, 2, 30, fold=0)  # 00:30 UTC, summer time
    assert first_0230.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert fired == [
        local(2026, 10, 24, 2, 30).astimezone(UTC),
        first_0230.astimezone(UTC),
        local(2026, 10, 26, 2, 30).astimezone(UTC),
    ]


def test_hourly_cron_counts_real_hours_across_both_transitions():
    hourly = definition(Cadence(cron="0 * * * *", timezone="Europe/Paris"))
    step = timedelta(minutes=1)
    spring = list(simulate(hourly, local(2026, 3, 29, 0, 0), local(2026, 3, 30, 0, 0), step))
    fall = list(simulate(hourly, local(2026, 10, 25, 0, 0), local(2026, 10, 26, 0, 0), step))
    # Midnight to midnight: a 23-hour day, then a 25-hour day, one job per real hour.
    assert len(spring) == 23 and len(set(spring)) == 23
    assert len(fall) == 25 and len(set(fall)) == 25
    assert all(b - a == timedelta(hours=1) for a, b in zip(fall, fall[1:], strict=False))


def due(schedule: ScheduleDefinition, next_run_at: datetime, active: bool = False) -> DueSchedule:
    return DueSchedule(7, schedule, next_run_at, active)


MINUTELY = Cadence(interval=timedelta(minutes=1))
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=4, seconds=10)  # 5 ticks due: 12:00 ... 12:04


@pytest.mark.parametrize(
    ("catch_up", "runs", "skipped"),
    [
        ("latest", [T0 + timedelta(minutes=4)], 4),
        ("all", [T0 + timedelta(minutes=i) for i in range(5)], 0),
        ("skip", [], 5),
    ],
)
def test_catch_up_policies_after_five_missed_ticks(catch_up, runs, skipped):
    plan = plan_one(due(definition(MINUTELY, catch_up=catch_up), T0), NOW)
    assert [job.run_after for job in plan.jobs] == runs
    assert plan.skipped == skipped
    assert plan.next_run_at == T0 + timedelta(minutes=5)
    assert plan.meta == {"schedule": "s"}
    assert bool(plan.skip_reason) == bool(skipped)


def test_catch_up_all_is_bounded_by_the_setting(settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "SCHEDULE_CATCH_UP_LIMIT": 3}
    plan = plan_one(due(definition(MINUTELY, catch_up="all"), T0), NOW)
    assert [job.run_after for job in plan.jobs] == [T0 + timedelta(minutes=i) for i in (2, 3, 4)]
    assert plan.skipped == 2 and "SCHEDULE_CATCH_UP_LIMIT" in plan.skip_reason


def test_skip_runs_a_lone_tick_within_the_misfire_grace():
    on_time = plan_one(due(definition(MINUTELY, catch_up="skip"), T0), T0 + timedelta(seconds=2))
    assert [job.run_after for job in on_time.jobs] == [T0]


def test_overlap_false_skips_while_the_previous_job_is_active_and_records_it():
    schedule = definition(MINUTELY, overlap=False, catch_up="all")
    busy = plan_one(due(schedule, T0, active=True), NOW)
    assert busy.jobs == [] and busy.skipped == 5 and "overlap=False" in busy.skip_reason
    free = plan_one(due(schedule, T0, active=False), NOW)
    assert [job.run_after for job in free.jobs] == [T0 + timedelta(minutes=4)]  # never a batch


def test_a_hand_edited_next_run_at_is_snapped_to_the_grid():
    off_grid = T0 + timedelta(seconds=20)
    plan = plan_one(due(definition(MINUTELY), off_grid), T0 + timedelta(seconds=30))
    assert plan.jobs == [] and plan.next_run_at == T0 + timedelta(minutes=1)
    later = plan_one(due(definition(MINUTELY), off_grid), T0 + timedelta(minutes=1, seconds=1))
    assert [job.run_after for job in later.jobs] == [T0 + timedelta(minutes=1)]


def test_a_task_that_no_longer_binds_skips_the_tick_and_says_why():
    schedule = definition(MINUTELY, task_name="tests.testapp.tasks.add", args=[1])
    plan = plan_one(due(schedule, T0), T0 + timedelta(seconds=1))
    assert plan.jobs == [] and plan.skipped == 1
    assert "cannot enqueue" in plan.skip_reason
    assert plan.next_run_at == T0 + timedelta(minutes=1)
