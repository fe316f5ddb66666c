"""The scheduler: turn due schedule ticks into jobs, pass after pass.

Runs as a service inside ``runworker`` (``--no-scheduler`` turns it off) or
alone in ``manage.py runscheduler``. Any number may run at once: each pass is
one transaction of :meth:`Engine.fire_due_schedules`, which locks the due
rows (``SKIP LOCKED``), decides "due" by the database's clock and moves
``next_run_at`` by compare-and-set, so a tick gets exactly one job whatever
the number of schedulers, their restarts or their hosts' clocks.

An idle scheduler sleeps until the earliest enabled tick (as the database
counts it), at most ``SCHEDULER_MAX_SLEEP`` seconds (so a schedule added or
edited in the admin is picked up within that), instead of polling fast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, connections

from django_jobs.backoff import outage_delay
from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine
from django_jobs.exceptions import WorkerStartError, describe_exception
from django_jobs.scheduling.definitions import load_definitions
from django_jobs.scheduling.planner import plan_ticks
from django_jobs.scheduling.plans import FireReport

logger = logging.getLogger("django_jobs.scheduler")

# Due schedules locked and fired per transaction; a pass that fills it goes again at once.
FIRE_BATCH = 100
# Shortest sleep between passes: a tick due "now" is fired by the next pass, and
# another scheduler holding a due row commits within milliseconds.
MIN_SLEEP = 0.01
# Scheduler.fire_due (runscheduler --once) stops after this many seconds.
FIRE_DUE_MAX_SECONDS = 60.0


class ScheduleConfigError(WorkerStartError):
    """Schedule definitions that cannot run (the same problems ``manage.py check`` reports)."""


class Scheduler:
    """Syncs definitions and fires due ticks on one database; each call is one transaction."""

    def __init__(self, database: str = "default", *, batch_size: int = FIRE_BATCH) -> None:
        self.database = database
        self.batch_size = batch_size
        self.fired = 0  # jobs enqueued by this scheduler
        self.passes = 0

    def sync(self) -> dict[str, int]:
        """Write the code and settings definitions to the Schedule table.

        Raises :class:`ScheduleConfigError` (writing nothing) when any is invalid.
        """
        definitions, problems = load_definitions()
        if problems:
            raise ScheduleConfigError(
                "schedules cannot run (see manage.py check): " + "; ".join(problems)
            )
        counts = get_engine(self.database).sync_schedules(definitions)
        if counts["created"] or counts["updated"] or counts["removed"]:
            logger.info(
                "schedules synced: %d created, %d updated, %d disabled (removed from code)",
                counts["created"],
                counts["updated"],
                counts["removed"],
            )
        return counts

    def fire_once(self) -> FireReport:
        """Fire the due ticks of up to ``batch_size`` schedules (one transaction)."""
        report = get_engine(self.database).fire_due_schedules(self.batch_size, plan_ticks)
        self.passes += 1
        self.fired += report.jobs
        if report.jobs or report.skipped:
            logger.debug(
                "scheduler: %d schedule(s) due, %d job(s), %d tick(s) skipped, %d lost",
                report.schedules,
                report.jobs,
                report.skipped,
                report.lost,
            )
        return report

    def fire_due(self, max_seconds: float = FIRE_DUE_MAX_SECONDS) -> int:
        """Fire until nothing is due now (at most ``max_seconds``: schedules that
        fall due faster than they are fired would never let it end); returns the jobs."""
        total = 0
        deadline = time.monotonic() + max_seconds
        while True:
            report = self.fire_once()
            total += report.jobs
            if report.schedules < self.batch_size or time.monotonic() > deadline:
                return total


def sleep_after(report: FireReport, max_sleep: float, batch_size: int) -> float:
    """Seconds to sleep after a pass: none while work remains, else until the next tick."""
    if report.schedules >= batch_size:
        return 0.0
    if report.wait is None:
        return max_sleep
    return min(max(report.wait, MIN_SLEEP), max_sleep)


class SchedulerService:
    """A :class:`Scheduler` in a background thread: a worker service (start/stop)."""

    def __init__(
        self,
        database: str = "default",
        *,
        on_fired: Callable[[], None] | None = None,
        max_sleep: float | None = None,
    ) -> None:
        self.scheduler = Scheduler(database)
        self.database = database
        self.on_fired = on_fired  # the worker's wake-up: the tick's job is due now
        self.max_sleep = float(max_sleep or jobs_settings.SCHEDULER_MAX_SLEEP)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Sync the definitions (refusing invalid ones), then fire in a thread."""
        self.scheduler.sync()
        self._thread = threading.Thread(target=self.run, name="django_jobs-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass (a pass is one short transaction)."""
        self._stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def run(self) -> None:
        """The scheduler loop (runs in the calling thread until :meth:`stop`)."""
        failures = 0
        try:
            while not self._stop_event.is_set():
                try:
                    report = self.scheduler.fire_once()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = outage_delay(failures)
                    logger.log(
                        logging.WARNING if isinstance(exc, DatabaseError) else logging.ERROR,
                        "scheduler: pass failed (%d in a row), retrying in %.1fs: %s",
                        failures,
                        delay,
                        describe_exception(exc),
                        exc_info=True,
                    )
                    connections[self.database].close()
                    self._stop_event.wait(delay)
                    continue
                if report.jobs and self.on_fired is not None:
                    self.on_fired()
                self._stop_event.wait(
                    sleep_after(report, self.max_sleep, self.scheduler.batch_size)
                )
        finally:
            connections[self.database].close()

    def run_forever(self) -> None:
        """Sync, then run in the calling thread until :meth:`stop` (``runscheduler``)."""
        self.scheduler.sync()
        logger.info("scheduler started on database %r", self.database)
        self.run()
        logger.info("scheduler stopped after %d job(s)", self.scheduler.fired)
