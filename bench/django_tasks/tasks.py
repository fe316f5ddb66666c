"""The tasks of the django.tasks benchmark, identical for both backends."""

from __future__ import annotations

import os
import time

from django.tasks import task


@task
def noop() -> None:
    """The drain and enqueue workloads."""


@task
def latency(t0: float) -> None:
    """Append enqueue-to-start seconds to BENCH_LATENCY_FILE."""
    elapsed = time.time() - t0
    with open(os.environ["BENCH_LATENCY_FILE"], "a") as handle:
        handle.write(f"{elapsed:.6f}\n")


@task
def sleep_for(seconds: float) -> float:
    """The crash check: a task long enough to SIGKILL its worker in the middle."""
    time.sleep(seconds)
    return seconds
