"""The worker's heartbeat: lease renewal, news of cancels, and recovery of
dead workers' jobs.

The statement that renews the leases also returns which of those jobs an
operator cancelled; they are handed to ``on_cancel_requested`` (the worker
tells its pool to stop them), so a cancel is heard within one interval.

It runs in its own thread with its own database connection and never runs
jobs, so a busy pool never delays a heartbeat and a long job keeps its lease.

Recovery is gated: a worker only recovers other workers' jobs after its own
heartbeats have succeeded without a break for a whole lease. After a database
outage every lease has expired; the gate gives every live worker time to renew
its own before anyone treats them as dead, so an outage never makes a live
job run twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from django.db import connections

from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine
from django_jobs.rows import ClaimedJob, WorkerInfo

logger = logging.getLogger("django_jobs.worker")

# Jobs recovered per statement, and statements per recovery pass.
RECOVERY_BATCH_SIZE = 500
RECOVERY_BATCHES = 10


class Heartbeat(threading.Thread):
    """Renews held leases every HEARTBEAT_INTERVAL and recovers expired ones."""

    def __init__(
        self,
        worker: WorkerInfo,
        database: str,
        *,
        lease_seconds: float,
        held_jobs: Callable[[], Sequence[ClaimedJob]],
        on_cancel_requested: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        super().__init__(name="django_jobs-heartbeat", daemon=True)
        self.worker = worker
        self.database = database
        self.lease_seconds = lease_seconds
        self.held_jobs = held_jobs
        self.on_cancel_requested = on_cancel_requested
        self.interval = float(jobs_settings.HEARTBEAT_INTERVAL)
        self.recovery_interval = float(jobs_settings.RECOVERY_INTERVAL)
        self._stop_event = threading.Event()
        self.last_success = time.monotonic()
        # Start of the current run of successful heartbeats (None: last one failed).
        self.healthy_since: float | None = None

    def stop(self) -> None:
        self._stop_event.set()

    def may_recover(self, now: float) -> bool:
        """True once this worker's heartbeats have succeeded for a whole lease."""
        return self.healthy_since is not None and now - self.healthy_since >= self.lease_seconds

    def run(self) -> None:
        # Stagger the recovery scans of workers started together.
        next_recovery = time.monotonic() + random.uniform(0, self.recovery_interval)
        failures = 0
        try:
            while not self._stop_event.is_set():
                try:
                    self.beat()
                    now = time.monotonic()
                    if now >= next_recovery and self.may_recover(now):
                        next_recovery = now + self.recovery_interval * random.uniform(0.8, 1.2)
                        self.recover()
                    failures = 0
                    wait = self.interval
                except Exception:
                    failures += 1
                    self.healthy_since = None
                    wait = min(self.interval, 0.25 * 2**failures)
                    logger.warning(
                        "heartbeat failed (%d in a row); retrying in %.1fs",
                        failures,
                        wait,
                        exc_info=failures == 1,  # one traceback per outage is enough
                    )
                    connections[self.database].close()
                self._stop_event.wait(wait)
        finally:
            connections.close_all()

    def beat(self) -> int:
        """Renew the leases of the jobs this worker holds, pass on their cancels;
        touch its Worker row."""
        engine = get_engine(self.database)
        renewal = engine.renew_leases(self.held_jobs(), self.lease_seconds)
        if renewal.cancel_requested and self.on_cancel_requested is not None:
            self.on_cancel_requested(renewal.cancel_requested)
        engine.touch_worker(self.worker)
        now = time.monotonic()
        if self.healthy_since is None:
            self.healthy_since = now
        self.last_success = now
        return renewal.renewed

    def recover(self) -> None:
        engine = get_engine(self.database)
        retried = dead = 0
        for _ in range(RECOVERY_BATCHES):  # bounded: the next beat is due
            report = engine.recover_expired(RECOVERY_BATCH_SIZE)
            retried, dead = retried + report.retried, dead + report.dead_lettered
            if report.retried + report.dead_lettered + report.cancelled < RECOVERY_BATCH_SIZE:
                break
        if retried or dead:
            logger.warning("recovered %d job(s) of dead workers, %d dead-lettered", retried, dead)
        # Workflow steps whose job finished with no advance (dead-lettered just
        # above, cancelled by an operator): belt and braces, cheap when none.
        engine.settle_orphans()
        engine.prune_dead_workers(max(self.lease_seconds * 4, 300))
