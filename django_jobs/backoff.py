"""Retry delay strategies: pure functions of the attempt number (1 = first run).

``exponential`` (the default) is capped and uses "equal jitter": the delay is
uniform in [d/2, d], so retries of jobs that failed together spread out
without ever coming back sooner than half the nominal delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

BackoffName = Literal["exponential", "linear", "fixed", "fibonacci"]
BackoffSpec = BackoffName | Callable[[int], float]
BACKOFF_NAMES: tuple[str, ...] = ("exponential", "linear", "fixed", "fibonacci")


def _fibonacci(n: int) -> int:
    a, b = 1, 1
    for _ in range(max(n - 1, 0)):
        a, b = b, a + b
    return a


def nominal_delay(strategy: BackoffName, attempt: int, base: float, cap: float) -> float:
    """The delay before retry number ``attempt`` (>= 1), without jitter."""
    n = max(attempt, 1)
    if strategy == "exponential":
        # Avoid float overflow for silly attempt numbers: the cap wins long before.
        value = base * (2.0 ** min(n - 1, 62))
    elif strategy == "linear":
        value = base * n
    elif strategy == "fixed":
        value = base
    elif strategy == "fibonacci":
        value = base * _fibonacci(min(n, 90))
    else:
        raise ValueError(f"unknown backoff strategy {strategy!r}")
    return min(value, cap)


def compute_delay(
    spec: BackoffSpec,
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` before the next one."""
    if callable(spec):
        return max(0.0, min(float(spec(attempt)), cap))
    delay = nominal_delay(spec, attempt, base, cap)
    if spec == "exponential":
        delay = (rng or random).uniform(delay / 2, delay)
    return delay


def outage_delay(failures: int) -> float:
    """Seconds a background loop (worker, relay, scheduler) waits after ``failures``
    failed passes in a row: 0.25 s doubling up to 30 s, jittered by 20% so that
    workers cut off together do not all come back at once."""
    # 2 ** 7 * 0.25 is past the cap already: a bounded exponent never overflows.
    return min(30.0, 0.25 * 2.0 ** min(failures, 7)) * random.uniform(0.8, 1.2)
