"""Tick computation over both Europe/Paris DST transitions (pure: the instant is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.scheduling.ticks import Cadence, validate_schedule, validate_timezone

PARIS = ZoneInfo("Europe/Paris")


def ticks(cadence: Cadence, start: datetime, n: int) -> list[str]:
    out, tick = [], start
    for _ in range(n):
        tick = cadence.next_after(tick)
        out.append(tick.astimezone(PARIS).isoformat())
    return out


def test_a_skipped_local_time_runs_once_at_the_next_valid_time():
    daily = Cadence(cron="30 2 * * *", timezone="Europe/Paris")
    assert ticks(daily, datetime(2026, 3, 28, 12, tzinfo=UTC), 2) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_a_repeated_local_time_runs_once():
    daily = Cadence(cron="30 2 * * *", timezone="Europe/Paris")
    assert ticks(daily, datetime(2026, 10, 24, 12, tzinfo=UTC), 2) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_an_hourly_pattern_fires_each_real_hour_of_the_repeated_hour():
    hourly = Cadence(cron="0 * * * *", timezone="Europe/Paris")
    assert ticks(hourly, datetime(2026, 10, 24, 23, 10, tzinfo=UTC), 3) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_intervals_are_aligned_on_the_epoch():
    every = Cadence(interval=timedelta(seconds=30))
    assert every.next_after(datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 0, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * *", "not a 5-field cron expression"),
        (timedelta(0), "must be positive"),
        (5, "cron string or a timedelta"),
    ],
)
def test_bad_schedules_are_refused(value, message):
    with pytest.raises(InvalidJobOptions, match=message):
        validate_schedule(value)


def test_unknown_timezones_are_refused():
    with pytest.raises(InvalidJobOptions, match="unknown schedule timezone"):
        validate_timezone("Mars/Olympus")
