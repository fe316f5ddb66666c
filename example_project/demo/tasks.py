"""Demo tasks: one succeeds, one fails then succeeds, one always fails, one is
slow and reports progress."""

from __future__ import annotations

import logging
import time
from typing import Any

from django import tasks as django_tasks
from django.tasks import TaskContext

from django_jobs import current_job, subscriber, task
from django_jobs.outbox import Event

logger = logging.getLogger("django_jobs.demo")


@task
def send_welcome(user_id: int) -> dict[str, object]:
    """Always succeeds."""
    return {"user_id": user_id, "sent": True}


@task(max_attempts=4, backoff="fixed")
def flaky_sync(order_id: int) -> str:
    """Fails on its first attempt, succeeds on the next."""
    if current_job().attempt < 2:
        raise ConnectionError(f"partner API timed out for order {order_id}")
    return f"order {order_id} synced on attempt {current_job().attempt}"


@task(max_attempts=2, backoff="fixed", queue_name="critical")
def charge_card(order_id: int) -> None:
    """Always fails: ends in the dead letters after 2 attempts."""
    raise ValueError(f"card declined for order {order_id}")


@task(queue_name="reports", timeout=120)
def build_report(rows: int = 20) -> dict[str, int]:
    """Slow: reports progress as it goes."""
    job = current_job()
    for done in range(1, rows + 1):
        time.sleep(0.25)
        job.set_progress({"done": done, "total": rows})
    return {"rows": rows}


# The same kind of work through Django's own task API (django.tasks), stored
# and run by django_jobs: TASKS["default"] is django_jobs.backend.JobsBackend.
@django_tasks.task(takes_context=True, queue_name="reports")
def generate_report(
    context: TaskContext[Any, Any], rows: int = 20, pause: float = 0.2
) -> dict[str, Any]:
    """Slow report with a progress bar: the example's "generate report" page polls it."""
    job = current_job()
    total = 0
    for done in range(1, rows + 1):
        time.sleep(pause)
        total += done
        job.set_progress({"done": done, "total": rows})
    return {"rows": rows, "sum": total, "attempt": context.attempt}


# Transactional outbox: enqueue_demo_batch() publishes "demo.order.placed" in its
# transaction; the relay inside runworker turns it into a job for this task.
@subscriber("demo.order.*")
def ship_order(event: Event) -> dict[str, Any]:
    """Receives each order event once, after the publishing transaction commits."""
    return {"event": event.id, "topic": event.topic, "order_id": event.payload["order_id"]}
