"""One read of the database's state for the metrics, health and status views.

Every number comes from the same cheap reads as the admin's (:mod:`django_jobs.stats`
and :mod:`django_jobs.counts`): per-queue counts are bounded counts
(``COUNT(*)`` over ``LIMIT ADMIN_EXACT_COUNT_LIMIT + 1``), PostgreSQL's planner
estimate above the bound, the oldest due job comes from the partial claim
index, distinct queue names from an index skip scan. So a scrape stays a few
milliseconds at millions of rows.

:func:`cached_snapshot` keeps the last snapshot per alias for
``METRICS_CACHE_SECONDS``: a scraper, a load balancer probing every second and
``jobs status --watch`` share one set of queries.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from django_jobs import stats
from django_jobs.conf import jobs_settings
from django_jobs.counts import count_rows
from django_jobs.models import DeadLetter, Job, OutboxEvent, Worker
from django_jobs.pruning import JobPruner
from django_jobs.status import OutboxStatus


@dataclasses.dataclass(frozen=True, slots=True)
class QueueState:
    """One queue: jobs by state (``exact`` False: some are planner estimates)."""

    name: str
    ready: int
    scheduled: int
    running: int
    failed: int
    exact: bool
    oldest_ready_age: float | None  # seconds the job due longest has waited


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerState:
    """One registered worker and how fresh its heartbeat is."""

    id: uuid.UUID
    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: list[str]
    heartbeat_age: float
    running: int
    stale: bool  # heartbeat older than LEASE_SECONDS: presumed dead


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """The database's state at ``taken_at``."""

    taken_at: datetime
    queues: list[QueueState]
    workers: list[WorkerState]
    dead_letters: int  # open (not retried)
    outbox: dict[str, int]  # status -> events
    outbox_oldest_pending_age: float | None
    prune_backlog: int | None  # finished jobs past retention; None: retention off

    @property
    def live_workers(self) -> list[WorkerState]:
        return [w for w in self.workers if not w.stale]

    def oldest_ready_age(self, queue: str | None = None) -> float | None:
        ages = [
            q.oldest_ready_age
            for q in self.queues
            if q.oldest_ready_age is not None and (queue is None or q.name == queue)
        ]
        return max(ages, default=None)


def _age(now: datetime, then: datetime | None) -> float | None:
    return max(0.0, (now - then).total_seconds()) if then is not None else None


def queue_states(alias: str, now: datetime) -> list[QueueState]:
    return [
        QueueState(
            name=q.name,
            ready=q.ready.value,
            scheduled=q.scheduled.value,
            running=q.running.value,
            failed=q.failed.value,
            exact=all(c.exact for c in (q.ready, q.scheduled, q.running, q.failed)),
            oldest_ready_age=_age(now, q.oldest_ready),
        )
        for q in stats.queue_stats(alias, now)
    ]


def worker_states(alias: str, now: datetime) -> list[WorkerState]:
    """Registered workers with the RUNNING jobs each holds (one grouped query)."""
    lease = float(jobs_settings.LEASE_SECONDS)
    running = dict(
        Job.objects.using(alias)
        .running()
        .order_by()
        .values("worker_id")
        .annotate(n=Count("pk"))
        .values_list("worker_id", "n")
    )
    states = []
    for w in Worker.objects.using(alias).order_by("started_at"):
        age = _age(now, w.last_heartbeat_at) or 0.0
        states.append(
            WorkerState(
                id=w.id,
                hostname=w.hostname,
                pid=w.pid,
                pool=w.pool,
                concurrency=w.concurrency,
                queues=list(w.queues or []),
                heartbeat_age=age,
                running=int(running.get(w.id, 0)),
                stale=age > lease,
            )
        )
    return states


def outbox_counts(alias: str, now: datetime) -> tuple[dict[str, int], float | None]:
    events = OutboxEvent.objects.using(alias)
    counts = {
        status.value: count_rows(events.filter(status=status)).value
        for status in (OutboxStatus.PENDING, OutboxStatus.FAILED)
    }
    oldest = (
        events.pending().order_by("pk").values_list("created_at", flat=True).first()
        if counts[OutboxStatus.PENDING]
        else None
    )
    return counts, _age(now, oldest)


@dataclasses.dataclass(frozen=True, slots=True)
class FailureState:
    """One dead letter: a job that failed for good (or was lost) and why."""

    id: int
    job_id: int
    task: str
    queue: str
    error: str
    attempts: int
    failed_at: datetime
    retried: bool


def latest_failures(
    alias: str, limit: int = 10, queues: list[str] | None = None
) -> list[FailureState]:
    """The newest ``limit`` dead letters (newest first): the primary key index read
    backwards, or the ``(queue_name, -id)`` index with ``queues``."""
    letters = DeadLetter.objects.using(alias).order_by("-id")
    if queues:
        letters = letters.filter(queue_name__in=queues)
    fields = ("id", "job_id", "task_name", "queue_name", "reason", "attempts", "created_at")
    return [
        FailureState(
            id=row.id,
            job_id=row.job_id,
            task=row.task_name,
            queue=row.queue_name,
            error=row.reason,
            attempts=row.attempts,
            failed_at=row.created_at,
            retried=row.retried_at is not None,
        )
        for row in letters.only(*fields, "retried_at")[:limit]
    ]


def prune_backlog(alias: str) -> int | None:
    cutoff = JobPruner.cutoff()
    if cutoff is None:
        return None
    return count_rows(Job.objects.using(alias).finished().filter(finished_at__lt=cutoff)).value


def take_snapshot(alias: str = "default") -> Snapshot:
    """Read everything now (a dozen cheap statements)."""
    now = timezone.now()
    outbox, oldest_pending = outbox_counts(alias, now)
    return Snapshot(
        taken_at=now,
        queues=queue_states(alias, now),
        workers=worker_states(alias, now),
        dead_letters=count_rows(
            DeadLetter.objects.using(alias).filter(Q(retried_at__isnull=True))
        ).value,
        outbox=outbox,
        outbox_oldest_pending_age=oldest_pending,
        prune_backlog=prune_backlog(alias),
    )


_cache: dict[str, tuple[float, Snapshot]] = {}
_cache_lock = threading.Lock()


def cached_snapshot(alias: str = "default", max_age: float | None = None) -> Snapshot:
    """The last snapshot of ``alias`` if younger than ``max_age`` seconds
    (default ``METRICS_CACHE_SECONDS``), else a new one."""
    max_age = float(jobs_settings.METRICS_CACHE_SECONDS if max_age is None else max_age)
    with _cache_lock:
        hit = _cache.get(alias)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return hit[1]
    snapshot = take_snapshot(alias)
    with _cache_lock:
        _cache[alias] = (time.monotonic(), snapshot)
    return snapshot


def clear_cache() -> None:
    """Forget cached snapshots (tests; after a settings change)."""
    with _cache_lock:
        _cache.clear()
