"""Metrics, health and status: read-only views of the database and the worker.

- :mod:`.snapshot`: one cheap read of queues, workers, dead letters, outbox.
- :mod:`.metrics`: the database gauges as a prometheus-client collector.
- :mod:`.worker_metrics`: the worker's counters and histogram, its
  ``--metrics-port`` and ``--health-port`` servers.
- :mod:`.health`: the health verdict of :func:`django_jobs.views.health`.
"""
