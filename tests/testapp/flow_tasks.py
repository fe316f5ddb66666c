"""Tasks of the flow control tests: each records its start and end as Events."""

from __future__ import annotations

import time

from django_jobs import current_job, task
from tests.testapp.models import Event


def _run(name: str, key: str, seconds: float) -> None:
    job = current_job()
    Event.objects.create(job_id=job.id, name=f"{name}:start", value={"key": key, "t": time.time()})
    time.sleep(seconds)
    Event.objects.create(job_id=job.id, name=f"{name}:end", value={"key": key, "t": time.time()})


@task
def pausable(tag: str = "") -> None:
    _run("pausable", tag, 0)


@task(concurrency_limit=1, concurrency_key=lambda key, seconds: f"flow-test:{key}")
def one_per_key(key: str, seconds: float) -> None:
    _run("one_per_key", key, seconds)


@task(concurrency_limit=2)
def two_at_a_time(seconds: float) -> None:
    _run("two_at_a_time", "", seconds)


@task
def capped(seconds: float) -> None:
    """Limited by its queue (DJANGO_JOBS["QUEUES"]["capped"] in tests/settings.py)."""
    _run("capped", "", seconds)


@task(rate_limit="5/s")
def five_per_second(n: int) -> None:
    _run("five_per_second", "", 0)


@task
def unlimited(n: int) -> None:
    _run("unlimited", "", 0)


@task(circuit="test-circuit", max_attempts=1)
def partner_call(n: int) -> None:
    """Fails until an Event named "partner-healthy" exists."""
    _run("partner_call", "", 0.2)
    if not Event.objects.filter(name="partner-healthy").exists():
        raise ConnectionError("partner is down")


# bench/flow_control.py: no-op jobs, unlimited, one per key (100 keys), and
# rate-limited above the drain rate.
@task
def bench_free(n: int) -> None:
    return None


@task(concurrency_limit=1, concurrency_key=lambda n: f"bench:{n % 100}")
def bench_keyed(n: int) -> None:
    return None


@task(concurrency_limit=1, concurrency_key=lambda n: f"bench-wide:{n % 1000}")
def bench_keyed_wide(n: int) -> None:
    return None


@task(rate_limit="100000/s")
def bench_rated(n: int) -> None:
    return None


@task(rate_limit="1/h")
def once_an_hour(n: int) -> None:
    """runworker --burst: its second job waits longer than any burst does."""
    _run("once_an_hour", "", 0)
