"""django.tasks tasks for the django-tasks-db peer."""

from __future__ import annotations

from django.tasks import task

from bench.clients.base import record_latency


@task
def noop() -> None:
    pass


@task
def latency(t0: float) -> None:
    record_latency(t0)
