"""Database gauges for Prometheus, computed at scrape time from a cached snapshot.

prometheus-client (the maintained library) renders the exposition format; this
module only says what the numbers are, as a custom collector
(``prometheus_client.registry.Collector``), so every scrape reads one
:func:`~django_jobs.observability.snapshot.cached_snapshot` and nothing is kept
between scrapes. Labels are bounded: queue names and statuses only.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from django_jobs.observability.snapshot import Snapshot, cached_snapshot

CONTENT_TYPE = CONTENT_TYPE_LATEST
# django_jobs_jobs{queue,status}: the states a queue is shown in.
QUEUE_STATES = ("ready", "scheduled", "running", "failed")


def families(snapshot: Snapshot) -> list[Metric]:
    """The gauges named in DESIGN.md ("Observability"), plus two for the dashboard."""
    jobs = GaugeMetricFamily(
        "django_jobs_jobs",
        "Jobs per queue and state (planner estimates above ADMIN_EXACT_COUNT_LIMIT).",
        labels=["queue", "status"],
    )
    oldest = GaugeMetricFamily(
        "django_jobs_oldest_ready_age_seconds",
        "Seconds the job due longest has waited, per queue (0: none waiting).",
        labels=["queue"],
    )
    for queue in snapshot.queues:
        for state in QUEUE_STATES:
            jobs.add_metric([queue.name, state], getattr(queue, state))
        oldest.add_metric([queue.name], queue.oldest_ready_age or 0.0)
    outbox = GaugeMetricFamily(
        "django_jobs_outbox_events", "Outbox events not dispatched.", labels=["status"]
    )
    for status, count in snapshot.outbox.items():
        outbox.add_metric([status.lower()], count)
    result: list[Metric] = [
        jobs,
        oldest,
        GaugeMetricFamily(
            "django_jobs_dead_letters", "Dead letters not retried.", value=snapshot.dead_letters
        ),
        GaugeMetricFamily(
            "django_jobs_workers",
            "Workers whose heartbeat is fresher than LEASE_SECONDS.",
            value=len(snapshot.live_workers),
        ),
        outbox,
        GaugeMetricFamily(
            "django_jobs_outbox_oldest_pending_age_seconds",
            "Seconds the oldest pending outbox event has waited (0: none).",
            value=snapshot.outbox_oldest_pending_age or 0.0,
        ),
    ]
    if snapshot.prune_backlog is not None:
        result.append(
            GaugeMetricFamily(
                "django_jobs_prune_backlog",
                "Finished jobs older than FINISHED_JOB_RETENTION, not pruned yet.",
                value=snapshot.prune_backlog,
            )
        )
    return result


class DatabaseCollector(Collector):
    """Collects the database gauges of one alias at each scrape."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def collect(self) -> Iterator[Metric]:
        yield from families(cached_snapshot(self.alias))


_registries: dict[str, CollectorRegistry] = {}


def render(alias: str = "default") -> bytes:
    """The text exposition of the database gauges of ``alias``."""
    registry = _registries.get(alias)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(alias))
        _registries[alias] = registry
    return bytes(generate_latest(registry))
