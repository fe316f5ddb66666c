"""When ``runworker --burst`` may exit.

A burst worker exits once a claim that asked for jobs found none and it
holds none. Jobs that wait READY behind a lane (a concurrency limit, a rate
limit, a circuit) will become claimable by themselves, so while there are
any, due, in the worker's queues, it keeps polling, for at most
``burst_wait`` seconds without claiming anything (a limit of one per hour
must not hold it an hour). Jobs of paused queues do not hold it: a pause
ends only when someone resumes it. What is left READY is logged on exit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("django_jobs.worker")


class BurstExit:
    """Decides, for one burst worker, whether "nothing claimed" means done."""

    def __init__(self, engine: Any, queues: Sequence[str] | None, wait: float) -> None:
        self.engine = engine
        self.queues = queues
        self.wait = wait
        self._last_claim = time.monotonic()
        self._announced = False

    def claimed(self) -> None:
        """A claim took jobs: the bounded wait starts again from now."""
        self._last_claim = time.monotonic()
        self._announced = False

    def may_exit(self) -> bool:
        """Whether to exit now; logs why it waits, or what it leaves behind."""
        behind_lanes, paused = self.engine.held_back(self.queues)
        idle = time.monotonic() - self._last_claim
        if behind_lanes and idle < self.wait:
            if not self._announced:
                logger.info(
                    "burst: %d due job(s) wait behind a concurrency limit, a rate limit or "
                    "a circuit; waiting for them (up to %.0fs without a claim)",
                    behind_lanes,
                    self.wait,
                )
                self._announced = True
            return False
        if behind_lanes or paused:
            logger.warning(
                "burst: exiting with %d due job(s) left READY: %d behind a concurrency limit, "
                "a rate limit or a circuit (nothing claimed for %.0fs), %d in paused queues",
                behind_lanes + paused,
                behind_lanes,
                idle,
                paused,
            )
        else:
            logger.info("burst: nothing left to run")
        return True
