"""``async def`` tasks for tests/e2e/test_async_tasks.py (the worker's event loop)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async

from django_jobs import current_job, task
from tests.testapp.models import Event

# Coroutines of sleeps_counting running in this process right now, and the most
# seen at once. Only the event loop's thread touches them.
_running = 0
_most = 0


@task
async def sleeps_counting(seconds: float) -> int:
    """Sleep; return how many of these ran at once at most so far in this worker."""
    global _running, _most
    _running += 1
    _most = max(_most, _running)
    try:
        await asyncio.sleep(seconds)
    finally:
        _running -= 1
    return _most


@task(timeout=0.5, max_attempts=1)
async def sleeps_past_timeout(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "not cancelled"


@task(max_attempts=3)
async def waits_until_cancelled(seconds: float) -> str:
    job = current_job()
    await Event.objects.acreate(job_id=job.id, name="started")
    try:
        await asyncio.sleep(seconds)
    finally:
        # Cancelled or not: the body's finally runs, and sees the cancel request.
        await Event.objects.acreate(
            job_id=job.id, name="stopping", value={"cancel_requested": job.cancel_requested}
        )
    return "ran to the end"


@task
async def reports_itself(pause: float) -> dict[str, int]:
    """current_job() before and after an await: each coroutine sees its own job."""
    before = current_job().id
    await asyncio.sleep(pause)
    after = current_job()
    count = await sync_to_async(Event.objects.filter(job_id=after.id).count)()
    await Event.objects.acreate(job_id=after.id, name="async orm", value={"before": count})
    return {"before": before, "after": after.id, "attempt": after.attempt}
