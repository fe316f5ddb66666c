"""django_jobs tasks of the benchmark."""

from __future__ import annotations

import time

from bench.clients.base import record_latency
from django_jobs import task


@task
def noop() -> None:
    """Does nothing: the benchmark measures the queue, not the work."""


@task
def latency(t0: float) -> None:
    record_latency(t0)


@task
def count(results: list[object]) -> int:
    """A chord's callback: how many results it got."""
    return len(results)


@task
def query() -> None:
    """One ``SELECT 1`` on the job thread's own connection (bench/many_hosts.py counts them)."""
    from django.db import connection  # a task body; imported where it runs

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@task
def pause(ms: float) -> None:
    """Sleeps ``ms`` milliseconds: the soak's 5 ms and 50 ms jobs."""
    time.sleep(ms / 1000)
