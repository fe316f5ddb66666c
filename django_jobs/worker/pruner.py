"""Periodic pruning of finished jobs inside the worker (no cron needed).

Its own thread and connection: a pruning pass over millions of rows may take
minutes and must never delay a heartbeat (leases would run out) or a claim.
"""

from __future__ import annotations

import logging
import random
import threading

from django.db import connections

from django_jobs.conf import jobs_settings
from django_jobs.pruning import JobPruner

logger = logging.getLogger("django_jobs.worker")

# Breather between batches so a big backlog does not monopolise the database.
BATCH_PAUSE = 0.05


class Pruner(threading.Thread):
    """Every PRUNE_INTERVAL, deletes finished jobs older than FINISHED_JOB_RETENTION."""

    def __init__(self, database: str, interval: float) -> None:
        super().__init__(name="django_jobs-pruner", daemon=True)
        self.database = database
        self.interval = interval
        self._stop_event = threading.Event()

    @classmethod
    def from_settings(cls, database: str) -> Pruner | None:
        """A pruner, or None when PRUNE_INTERVAL or FINISHED_JOB_RETENTION is None."""
        interval = jobs_settings.PRUNE_INTERVAL
        if not interval or jobs_settings.FINISHED_JOB_RETENTION is None:
            return None
        return cls(database, float(interval))

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        # First pass at a random point of the first interval: workers started
        # together do not all prune at once.
        wait = random.uniform(0, self.interval)
        try:
            while not self._stop_event.wait(wait):
                wait = self.interval
                try:
                    self.prune_once()
                except Exception:
                    logger.warning("pruning failed; next try in %.0fs", wait, exc_info=True)
                    connections[self.database].close()
        finally:
            connections.close_all()

    def prune_once(self) -> int:
        pruner = JobPruner(self.database)
        before = pruner.cutoff()
        if before is None:
            return 0
        progress = pruner.prune(before, should_stop=self._stop_event.is_set, pause=BATCH_PAUSE)
        if progress.deleted:
            logger.info("pruned %d finished job(s) in %.1fs", progress.deleted, progress.elapsed)
        return progress.deleted
