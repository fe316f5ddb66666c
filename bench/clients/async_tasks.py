"""django_jobs tasks of bench/async_tasks.py (loaded through DJANGO_JOBS["TASK_MODULES"]
there only, so the other benchmarks' workers have no async task to claim for)."""

from __future__ import annotations

import asyncio
import time

from django_jobs import task


@task
async def async_sleep(seconds: float) -> None:
    """Waits on the event loop: one worker runs --async-concurrency of these at once."""
    await asyncio.sleep(seconds)


@task
def thread_sleep(seconds: float) -> None:
    """Holds a thread: one worker runs --concurrency of these at once."""
    time.sleep(seconds)
