"""Django admin for django_jobs, one module per model plus the overview page.

Shared pieces: ``counts`` (estimated counts, paginator), ``stats`` (skip scans,
per-queue counts, throughput), ``filters``, ``actions`` (bulk + one-click),
``display`` (human times, badges, JSON) and ``charts`` (SVG).

``counts`` and ``stats`` are also read by the worker (alerts) and the metrics
view, in projects without ``django.contrib.admin``: the pages register only
where the admin is installed.
"""

from django.apps import apps

if apps.is_installed("django.contrib.admin"):
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
