"""One cheap indexed read per rule kind: the rule's value now.

- failure_rate: the statuses of the jobs that finished in the window, newest
  first, at most :data:`SAMPLE_LIMIT` rows, from the partial index on
  ``finished_at`` (finished rows only);
- oldest_ready_age: ``MIN(run_after)`` of due READY jobs (partial claim index);
- dead_letters: a bounded count of dead letters created in the window
  (``created_at`` index);
- stale_workers: the Worker table (one row per running process);
- outbox_pending_age: the oldest PENDING event, as the metrics view reads it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db.models import Min

from django_jobs.alerts.rules import Rule
from django_jobs.conf import jobs_settings
from django_jobs.counts import count_rows
from django_jobs.models import DeadLetter, Job, OutboxEvent, Worker
from django_jobs.status import JobStatus

# failure_rate looks at most at this many of the latest finished jobs of the
# window: the rate of the newest 10,000 is the rate that matters, and a busy
# queue's window never costs more than that to read.
SAMPLE_LIMIT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Measurement:
    value: float | None  # None: no data (never breaches, resolves a firing rule)
    detail: str  # what the value is made of, for the message


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def failure_rate(rule: Rule, alias: str, now: datetime) -> Measurement:
    assert rule.window is not None
    jobs = (
        Job.objects.using(alias)
        .finished()
        .filter(finished_at__gte=now - timedelta(seconds=rule.window))
    )
    if rule.task:
        jobs = jobs.filter(task_name=rule.task)
    if rule.queue:
        jobs = jobs.filter(queue_name=rule.queue)
    statuses = Counter(
        jobs.order_by("-finished_at").values_list("status", flat=True)[:SAMPLE_LIMIT]
    )
    failed = statuses[JobStatus.FAILED]
    total = failed + statuses[JobStatus.SUCCESSFUL]  # cancelled jobs are no verdict
    detail = f"{failed} of {total} finished job(s) failed in the last {rule.window:g}s"
    if total < rule.min_jobs:
        return Measurement(None, f"{detail} (fewer than min_jobs={rule.min_jobs})")
    return Measurement(failed / total, detail)


def oldest_ready_age(rule: Rule, alias: str, now: datetime) -> Measurement:
    jobs = Job.objects.using(alias).filter(status=JobStatus.READY, run_after__lte=now)
    if rule.queue:
        jobs = jobs.filter(queue_name=rule.queue)
    oldest = jobs.order_by().aggregate(oldest=Min("run_after"))["oldest"]
    age = _age(now, oldest)
    where = f"queue {rule.queue}" if rule.queue else "any queue"
    if age is None:
        return Measurement(None, f"no job is waiting in {where}")
    return Measurement(age, f"the job due longest in {where} has waited {age:.0f}s")


def dead_letters(rule: Rule, alias: str, now: datetime) -> Measurement:
    assert rule.window is not None
    letters = DeadLetter.objects.using(alias).filter(
        created_at__gte=now - timedelta(seconds=rule.window)
    )
    if rule.task:
        letters = letters.filter(task_name=rule.task)
    if rule.queue:
        letters = letters.filter(queue_name=rule.queue)
    count = count_rows(letters).value
    return Measurement(float(count), f"{count} dead letter(s) in the last {rule.window:g}s")


def stale_workers(rule: Rule, alias: str, now: datetime) -> Measurement:
    lease = float(jobs_settings.LEASE_SECONDS)
    workers = Worker.objects.using(alias)
    stale = list(
        workers.filter(last_heartbeat_at__lt=now - timedelta(seconds=lease))
        .order_by("last_heartbeat_at")
        .values_list("hostname", "pid")[:5]
    )
    count = workers.filter(last_heartbeat_at__lt=now - timedelta(seconds=lease)).count()
    names = ", ".join(f"{host}:{pid}" for host, pid in stale)
    detail = f"{count} worker(s) without a heartbeat for {lease:g}s"
    return Measurement(float(count), f"{detail} ({names})" if names else detail)


def outbox_pending_age(rule: Rule, alias: str, now: datetime) -> Measurement:
    oldest = (
        OutboxEvent.objects.using(alias)
        .pending()
        .order_by("pk")
        .values_list("created_at", flat=True)
        .first()
    )
    age = _age(now, oldest)
    if age is None:
        return Measurement(None, "no outbox event is pending")
    return Measurement(age, f"the oldest pending outbox event has waited {age:.0f}s")


MEASURES: dict[str, Callable[[Rule, str, datetime], Measurement]] = {
    "failure_rate": failure_rate,
    "oldest_ready_age": oldest_ready_age,
    "dead_letters": dead_letters,
    "stale_workers": stale_workers,
    "outbox_pending_age": outbox_pending_age,
}


def measure(rule: Rule, alias: str, now: datetime) -> Measurement:
    return MEASURES[rule.kind](rule, alias, now)
