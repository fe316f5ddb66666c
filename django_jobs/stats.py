"""Read-only statistics for the admin pages and `jobs status`, each cheap at
millions of rows.

- Distinct task / queue names: the engine's recursive "skip scan" over the
  btree index (``Engine.distinct_names``: one index probe per distinct value),
  never ``SELECT DISTINCT`` over the table.
- Per-queue counts: one grouped query while the rows involved are few
  (bounded count first); per-queue bounded counts / estimates otherwise.
- Throughput: finished jobs per minute / hour from the ``finished_at`` index.
  Buckets that are over never change, so they are cached; a refresh only counts
  the current minute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncHour, TruncMinute

from django_jobs.counts import RowCount, bounded_count, count_rows, exact_limit
from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.status import FINISHED_STATUSES, JobStatus

# Filters list at most this many distinct values.
MAX_DISTINCT = 500
# A finished bucket is cached once it ended this long ago (late commits).
SETTLE = timedelta(seconds=30)


def task_names(alias: str = "default", limit: int = MAX_DISTINCT) -> list[str]:
    """Every task name in the jobs table (index skip scan)."""
    return get_engine(alias).distinct_names("job", "task_name", limit)


def queue_names(alias: str = "default", limit: int = MAX_DISTINCT) -> list[str]:
    """Every queue name in the jobs table (index skip scan)."""
    return get_engine(alias).distinct_names("job", "queue_name", limit)


def dead_letter_task_names(alias: str = "default", limit: int = MAX_DISTINCT) -> list[str]:
    return get_engine(alias).distinct_names("dead_letter", "task_name", limit)


def dead_letter_queue_names(alias: str = "default", limit: int = MAX_DISTINCT) -> list[str]:
    return get_engine(alias).distinct_names("dead_letter", "queue_name", limit)


def count_by_group(
    queryset: QuerySet[Any], field: str, buckets: dict[str, Q], groups: Iterable[str]
) -> dict[str, dict[str, RowCount]]:
    """``{group: {bucket: count}}`` for ``queryset`` split by ``field`` and ``buckets``.

    One grouped query when the queryset holds at most the exact-count limit
    (checked with a bounded count); otherwise a bounded count per group and
    bucket, estimated where it overflows.
    """
    limit = exact_limit()
    result: dict[str, dict[str, RowCount]] = {
        group: {name: RowCount(0) for name in buckets} for group in groups
    }
    small = not get_engine(queryset.db).estimates_rows or bounded_count(queryset, limit) <= limit
    if small:
        aggregates = {name: Count("pk", filter=q) for name, q in buckets.items()}
        for row in queryset.order_by().values(field).annotate(**aggregates):
            counts = result.setdefault(row[field], {})
            for name in buckets:
                counts[name] = RowCount(row[name])
        return result
    for group, counts in result.items():
        for name, q in buckets.items():
            counts[name] = count_rows(queryset.filter(q, **{field: group}), limit)
    return result


@dataclasses.dataclass(slots=True)
class QueueStats:
    name: str
    ready: RowCount
    scheduled: RowCount
    running: RowCount
    failed: RowCount
    oldest_ready: datetime | None

    @property
    def empty(self) -> bool:
        counts = (self.ready, self.scheduled, self.running, self.failed)
        return all(c.exact and c.value == 0 for c in counts)


def queue_stats(alias: str, now: datetime) -> list[QueueStats]:
    """READY / scheduled / RUNNING / FAILED per queue, and the oldest due job."""
    jobs = Job.objects.using(alias)
    queues = queue_names(alias)
    active = count_by_group(
        jobs.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]),
        "queue_name",
        {
            "ready": Q(status=JobStatus.READY, run_after__lte=now),
            "scheduled": Q(status=JobStatus.READY, run_after__gt=now),
            "running": Q(status=JobStatus.RUNNING),
        },
        queues,
    )
    failed = count_by_group(
        jobs.filter(status=JobStatus.FAILED), "queue_name", {"failed": Q()}, queues
    )
    # The job due longest per queue; READY rows only (partial claim index).
    oldest = dict(
        jobs.filter(status=JobStatus.READY, run_after__lte=now)
        .order_by()
        .values("queue_name")
        .annotate(oldest=Min("run_after"))
        .values_list("queue_name", "oldest")
    )
    names = sorted(set(queues) | set(active) | set(failed))
    zero = RowCount(0)
    return [
        QueueStats(
            name=name,
            ready=active.get(name, {}).get("ready", zero),
            scheduled=active.get(name, {}).get("scheduled", zero),
            running=active.get(name, {}).get("running", zero),
            failed=failed.get(name, {}).get("failed", zero),
            oldest_ready=oldest.get(name),
        )
        for name in names
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    """Jobs that finished in [start, start + width)."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


_FIELD_BY_STATUS: dict[str, str] = {
    JobStatus.SUCCESSFUL: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def _count_finished(
    alias: str, start: datetime, end: datetime, hourly: bool
) -> dict[datetime, Bucket]:
    trunc = TruncHour if hourly else TruncMinute
    rows = (
        Job.objects.using(alias)
        .filter(status__in=sorted(FINISHED_STATUSES), finished_at__gte=start, finished_at__lt=end)
        .annotate(bucket=trunc("finished_at", tzinfo=UTC))
        .values("bucket", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    found: dict[datetime, dict[str, int]] = {}
    for row in rows:
        counts = found.setdefault(row["bucket"], {})
        counts[_FIELD_BY_STATUS[row["status"]]] = row["n"]
    return {start: Bucket(start, **counts) for start, counts in found.items()}


def _cache_prefix(alias: str, hourly: bool) -> str:
    name = settings.DATABASES[alias].get("NAME")
    return f"django_jobs:admin:{'h' if hourly else 'm'}:{alias}:{name}:"


def _series(alias: str, last: datetime, count: int, hourly: bool, now: datetime) -> list[Bucket]:
    """``count`` buckets ending with the one starting at ``last``.

    Buckets over for a while come from the cache; the rest are counted in one query.
    """
    width = timedelta(hours=1) if hourly else timedelta(minutes=1)
    starts = [last - width * (count - 1 - i) for i in range(count)]
    prefix = _cache_prefix(alias, hourly)
    keys = {start: prefix + start.isoformat() for start in starts}
    cached: dict[str, Bucket] = cache.get_many(list(keys.values()))
    missing = [start for start in starts if keys[start] not in cached]
    counted = (
        _count_finished(alias, missing[0], min(missing[-1] + width, now), hourly) if missing else {}
    )
    settled: dict[str, Bucket] = {}
    series = []
    for start in starts:
        bucket = cached.get(keys[start]) or counted.get(start) or Bucket(start)
        if keys[start] not in cached and start + width + SETTLE <= now:
            settled[keys[start]] = bucket
        series.append(bucket)
    if settled:
        cache.set_many(settled, timeout=int(width.total_seconds() * (count + 1)))
    return series


def _floor(now: datetime, hourly: bool) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(minute=0 if hourly else now.minute, second=0, microsecond=0)


def throughput_per_minute(alias: str, now: datetime, minutes: int = 60) -> list[Bucket]:
    """Jobs finished per minute over the last ``minutes`` (current minute last)."""
    return _series(alias, _floor(now, False), minutes, False, now)


def throughput_per_hour(
    alias: str, now: datetime, per_minute: list[Bucket], hours: int = 24
) -> list[Bucket]:
    """Jobs finished per hour over the last ``hours``.

    The current hour is summed from ``per_minute`` (which covers it), so a
    refresh never recounts an hour of rows.
    """
    current = _floor(now, True)
    past = _series(alias, current - timedelta(hours=1), hours - 1, True, now)
    this_hour = [b for b in per_minute if b.start >= current]
    return [
        *past,
        Bucket(
            current,
            succeeded=sum(b.succeeded for b in this_hour),
            failed=sum(b.failed for b in this_hour),
            cancelled=sum(b.cancelled for b in this_hour),
        ),
    ]


def oldest_age(value: datetime | None, now: datetime) -> timedelta | None:
    return None if value is None else now - value
