"""Background services of a worker that never run jobs: heartbeats and
lease renewal, recovery of jobs whose worker died, pruning.

They run in their own thread with their own database connection, so a busy
pool never delays a heartbeat and a long job keeps its lease.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine

logger = logging.getLogger("django_jobs.worker")


class Heartbeat(threading.Thread):
    """Renews leases every HEARTBEAT_INTERVAL and recovers expired ones."""

    def __init__(self, worker_id: uuid.UUID, database: str, *, lease_seconds: float) -> None:
        super().__init__(name="django_jobs-heartbeat", daemon=True)
        self.worker_id = worker_id
        self.database = database
        self.lease_seconds = lease_seconds
        self.interval = float(jobs_settings.HEARTBEAT_INTERVAL)
        self.recovery_interval = float(jobs_settings.RECOVERY_INTERVAL)
        prune = jobs_settings.PRUNE_INTERVAL
        self.prune_interval: float | None = float(prune) if prune else None
        self._stop_event = threading.Event()
        self.last_success = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        engine = get_engine(self.database)
        # Stagger the periodic tasks of workers started together.
        next_recovery = time.monotonic() + random.uniform(0, self.recovery_interval)
        next_prune = time.monotonic() + random.uniform(0, self.prune_interval or 0)
        failures = 0
        try:
            while not self._stop_event.is_set():
                try:
                    engine.heartbeat(self.worker_id, self.lease_seconds)
                    self.last_success = time.monotonic()
                    now = time.monotonic()
                    if now >= next_recovery:
                        next_recovery = now + self.recovery_interval
                        report = engine.recover_expired()
                        if report.retried or report.dead_lettered:
                            logger.warning(
                                "recovered %d job(s) from dead workers, %d dead-lettered",
                                report.retried,
                                report.dead_lettered,
                            )
                        engine.prune_dead_workers(max(self.lease_seconds * 4, 300))
                    if self.prune_interval and now >= next_prune:
                        next_prune = now + self.prune_interval
                        self.prune_once()
                    failures = 0
                    wait = self.interval
                except Exception:
                    failures += 1
                    wait = min(self.interval, 0.5 * 2**failures)
                    logger.exception(
                        "heartbeat failed (%d in a row); retrying in %.1fs", failures, wait
                    )
                    connections[self.database].close()
                self._stop_event.wait(wait)
        finally:
            connections.close_all()

    def prune_once(self) -> int:
        retention = jobs_settings.FINISHED_JOB_RETENTION
        if retention is None:
            return 0
        before = timezone.now() - timedelta(seconds=float(retention))
        deleted = get_engine(self.database).prune_finished(
            before, int(jobs_settings.PRUNE_BATCH_SIZE)
        )
        if deleted:
            logger.info("pruned %d finished job(s)", deleted)
        return deleted
