"""The worker's own metrics (``runworker --metrics-port``).

Observations are made in the worker process where outcomes are recorded
(:class:`~django_jobs.worker.executor.PoolBookkeeping` calls
:meth:`WorkerMetrics.observe`): in the thread pool by the runner thread, in the
process pool by the parent when a child's outcome arrives over the pipe (or
its crash is reaped). Children never hold metrics, so nothing is lost when a
child is recycled or killed, and one registry serves the whole worker.

Labels: task, queue, status (successful, retried, failed, lost): bounded by
the registered tasks, never a job id or an argument.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from django_jobs.exceptions import WorkerStartError
from django_jobs.rows import ClaimedJob, Completion, Failure

# Seconds: from sub-millisecond no-op jobs to the default 300 s timeout.
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def outcome_status(outcome: object) -> str:
    """The ``status`` label of an outcome (see :mod:`django_jobs.worker.runner`)."""
    if isinstance(outcome, Completion):
        return "successful"
    if isinstance(outcome, Failure):
        return "retried" if outcome.retry_at is not None else "failed"
    # Settled.WRITTEN: an atomic task committed its own completion.
    return "successful" if getattr(outcome, "value", None) == "written" else "lost"


class WorkerMetrics:
    """The counters and histogram of one worker process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["task", "queue", "status"]
        self.duration = Histogram(
            "django_jobs_job_duration_seconds",
            "Run time of job attempts in this worker.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.finished = Counter(
            "django_jobs_jobs_finished",
            "Job attempts this worker ran to an end.",
            labels,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, job: ClaimedJob, outcome: object, seconds: float) -> None:
        """Count one attempt's end (thread-safe; a few microseconds)."""
        key = (job.task_name, job.queue_name, outcome_status(outcome))
        children = self._children.get(key)
        if children is None:
            with self._lock:
                children = (self.duration.labels(*key), self.finished.labels(*key))
                self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def serve(self, port: int, host: str = "") -> None:
        """Serve ``/metrics`` on ``port`` in a daemon thread; WorkerStartError if taken."""
        try:
            start_http_server(port, addr=host or "0.0.0.0", registry=self.registry)
        except OSError as exc:
            raise WorkerStartError(f"--metrics-port {port}: cannot listen ({exc})") from exc
