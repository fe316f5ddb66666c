"""Django admin for django_jobs, one module per model plus the overview page.

Shared pieces: ``counts`` (estimated counts, paginator), ``stats`` (skip scans,
per-queue counts, throughput), ``filters``, ``actions`` (bulk + one-click),
``display`` (human times, badges, JSON) and ``charts`` (SVG).
"""

from django_jobs.admin import (  # noqa: F401 - registers
    alerts,
    circuits,
    dead_letters,
    jobs,
    outbox,
    overview,
    queues,
    schedules,
    workers,
    workflows,
)
