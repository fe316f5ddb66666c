"""When a schedule fires: cron (5 fields, via cronsim) or a fixed interval.

Pure functions of their arguments (no clock read, no database): the
scheduler passes the database's ``now()``, tests pass any instant.

Ticks are instants (aware datetimes). A cron expression is read in the
schedule's time zone; a daylight-saving change neither skips nor doubles a
tick (cronsim follows Debian cron):

- a local time that does not exist that day (02:30 when clocks jump from
  02:00 to 03:00) fires once, at the first valid minute after the gap (03:00);
- a local time that occurs twice (02:30 when clocks fall back from 03:00 to
  02:00) fires once, at its first occurrence, when the hour field names the
  hour (``30 2 * * *``); a pattern with ``*`` in the hour field
  (``*/30 * * * *``) fires on every matching wall-clock minute of the
  repeated hour too, since those are distinct instants an hour apart.

An interval of N seconds fires at the instants that are whole multiples of N
seconds since the Unix epoch (UTC): every process computes the same ticks
with no stored anchor, and a 1-hour interval fires on the hour.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from django_jobs.exceptions import InvalidJobOptions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# cronsim explores at most this far ahead; an expression that never matches
# ("0 0 30 2 *": 30 February) is refused when it is defined.
_NEVER = "never matches"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; InvalidJobOptions if it is unknown."""
    if not isinstance(name, str) or not name:
        raise InvalidJobOptions(f"schedule timezone must be an IANA zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidJobOptions(
            f"unknown schedule timezone {name!r} (an IANA name such as 'Europe/Paris')"
        ) from None


def validate_cron(expr: Any) -> str:
    """``expr`` if it is a 5-field cron expression that matches some day."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise InvalidJobOptions(
            f"schedule {expr!r} is not a 5-field cron expression (minute hour day month weekday)"
        )
    try:
        next(CronSim(expr, EPOCH))
    except CronSimError as exc:
        raise InvalidJobOptions(
            f"schedule {expr!r} is not a valid cron expression: {exc}"
        ) from None
    except StopIteration:
        raise InvalidJobOptions(f"schedule {expr!r} {_NEVER}") from None
    return expr


def validate_interval(every: Any) -> timedelta:
    """``every`` (a timedelta or seconds) as a timedelta of whole milliseconds > 0."""
    if isinstance(every, bool) or not isinstance(every, int | float | timedelta):
        raise InvalidJobOptions(f"schedule interval must be a timedelta or seconds, got {every!r}")
    interval = every if isinstance(every, timedelta) else timedelta(seconds=every)
    if interval < timedelta(milliseconds=1):
        raise InvalidJobOptions(f"schedule interval must be positive, got {every!r}")
    return interval


def validate_schedule(value: Any) -> str | timedelta:
    """``@task(schedule=...)``: a cron string or a positive timedelta."""
    if isinstance(value, str):
        return validate_cron(value)
    if isinstance(value, timedelta):
        return validate_interval(value)
    raise InvalidJobOptions(f"schedule must be a 5-field cron string or a timedelta, got {value!r}")


def validate_timezone(value: Any) -> str:
    zone(value)
    return str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Cadence:
    """When a schedule fires: exactly one of ``cron`` and ``interval``."""

    cron: str | None = None
    interval: timedelta | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise InvalidJobOptions("a schedule needs exactly one of cron and every")

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after the aware instant ``after`` (in UTC)."""
        if self.interval is not None:
            step = self.interval
            count = (after - EPOCH) // step + 1
            return EPOCH + step * count
        assert self.cron is not None
        local = after.astimezone(zone(self.timezone))
        if local.second or local.microsecond:
            # cronsim works in whole minutes: from 12:00:30 the next is 12:01.
            local = local.replace(second=0, microsecond=0)
        # cronsim moves a local time skipped by a daylight-saving gap (02:30) to
        # the first valid minute after it (03:00), which can be at or before
        # ``after`` itself: asked from 03:00 it answers 03:00 again. Strictly
        # after is what makes a tick fire once.
        for found in CronSim(self.cron, local):
            tick = found.astimezone(UTC)
            if tick > after:
                return tick
        raise InvalidJobOptions(f"schedule {self.cron!r} {_NEVER}")  # pragma: no cover

    def describe(self) -> str:
        """The cadence in words: "At 03:00 every day (Europe/Paris)", "every 30 seconds"."""
        if self.interval is not None:
            seconds = self.interval.total_seconds()
            for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
                if seconds >= size and seconds % size == 0:
                    n = int(seconds // size)
                    return f"every {n} {unit}s" if n != 1 else f"every {unit}"
            return f"every {seconds:g} seconds" if seconds != 1 else "every second"
        assert self.cron is not None
        return f"{CronSim(self.cron, EPOCH).explain()} ({self.timezone})"
