"""The relay: turn committed events into jobs, batch by batch.

Runs as a service inside ``runworker`` (``--no-relay`` turns it off) or alone
in ``manage.py runrelay``. Any number of relays may run: each batch is one
transaction that claims PENDING events with ``FOR UPDATE SKIP LOCKED``,
enqueues their jobs and marks them DISPATCHED (see
:mod:`django_jobs.engine.outbox` for the per-key ordering rule). A relay
killed mid-batch leaves its transaction uncommitted: the events stay PENDING
and another batch takes them, with no job enqueued twice.

Wake-ups: LISTEN/NOTIFY on PostgreSQL (``publish()`` notifies on commit),
polling every ``POLL_INTERVAL`` (jittered) as the backstop and on other
databases. Every ``PRUNE_INTERVAL`` it deletes events dispatched longer than
``OUTBOX_RETENTION`` ago, in batches.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta

from django.db import DatabaseError, connections
from django.utils import timezone

from django_jobs.backoff import outage_delay
from django_jobs.conf import jobs_settings
from django_jobs.engine.outbox import get_outbox_engine
from django_jobs.exceptions import describe_exception
from django_jobs.outbox.delivery import plan_jobs
from django_jobs.rows import DispatchReport

logger = logging.getLogger("django_jobs.outbox")

# Pause after a batch in which every claimed event waited behind an earlier
# event of its key held by another relay: that relay commits within
# milliseconds, so polling soon beats waiting a full interval.
BLOCKED_RETRY_SECONDS = 0.05
# drain() (runrelay --once, runworker --burst) stops waiting for such events after this.
DRAIN_BLOCKED_GIVE_UP_SECONDS = 30.0


class Relay:
    """Dispatches pending events of one database; each call is one transaction."""

    def __init__(self, database: str = "default", *, batch_size: int | None = None) -> None:
        self.database = database
        self.batch_size = int(batch_size or jobs_settings.OUTBOX_BATCH_SIZE)
        self.dispatched = 0

    def dispatch_once(self) -> DispatchReport:
        """Dispatch one batch (claim, enqueue jobs, mark DISPATCHED, commit)."""
        report = get_outbox_engine(self.database).dispatch_batch(self.batch_size, plan_jobs)
        self.dispatched += report.dispatched
        if report.dispatched:
            logger.debug(
                "relay: dispatched %d event(s) as %d job(s), %d blocked",
                report.dispatched,
                report.jobs,
                report.blocked,
            )
        return report

    def drain(self) -> int:
        """Dispatch until nothing is pending (or only blocked); returns events dispatched."""
        total = batches = 0
        waited_since: float | None = None
        while True:
            report = self.dispatch_once()
            total += report.dispatched
            batches += 1
            if batches % 20 == 0:
                logger.info("relay: %d event(s) dispatched so far", total)
            if report.dispatched or not report.blocked:
                waited_since = None
                if not report.dispatched:
                    return total
                continue
            # Only blocked events left: another relay holds earlier ones of their keys.
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since > DRAIN_BLOCKED_GIVE_UP_SECONDS:
                logger.warning(
                    "relay: %d event(s) still wait behind events held by another relay; "
                    "leaving them to it",
                    report.blocked,
                )
                return total
            time.sleep(BLOCKED_RETRY_SECONDS)

    def prune_once(self) -> int:
        """Delete dispatched events older than OUTBOX_RETENTION, batch by batch."""
        retention = jobs_settings.OUTBOX_RETENTION
        if retention is None:
            return 0
        before = timezone.now() - timedelta(seconds=float(retention))
        batch = int(jobs_settings.PRUNE_BATCH_SIZE)
        engine = get_outbox_engine(self.database)
        total = 0
        while True:
            deleted = engine.prune_dispatched(before, batch)
            total += deleted
            if deleted < batch:
                break
        if total:
            logger.info("relay: pruned %d dispatched event(s)", total)
        return total


class RelayService:
    """A :class:`Relay` in a background thread: a worker service (start/stop)."""

    def __init__(
        self,
        database: str = "default",
        *,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        drain_first: bool = False,
    ) -> None:
        self.relay = Relay(database, batch_size=batch_size)
        self.database = database
        self.poll_interval = float(poll_interval or jobs_settings.POLL_INTERVAL)
        prune = jobs_settings.PRUNE_INTERVAL
        self.prune_interval: float | None = float(prune) if prune else None
        self.drain_first = drain_first
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.drain_first:
            # --burst: what was published before the worker started becomes jobs
            # before the worker looks for jobs.
            try:
                self.relay.drain()
            except DatabaseError:
                logger.warning("relay: could not drain pending events first", exc_info=True)
        self._start_listener()
        self._thread = threading.Thread(target=self.run, name="django_jobs-relay", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """Run in the calling thread until :meth:`stop` (``runrelay``)."""
        logger.info("relay started on database %r", self.database)
        self._start_listener()
        self.run()
        if self._listener is not None:
            self._listener.stop()  # type: ignore[attr-defined]
        logger.info("relay stopped after %d event(s)", self.relay.dispatched)

    def _start_listener(self) -> None:
        engine = get_outbox_engine(self.database)
        if engine.supports_notify and jobs_settings.USE_NOTIFY:
            # psycopg is an optional dependency: imported by PostgreSQL projects only.
            from django_jobs.engine.pg import OUTBOX_CHANNEL
            from django_jobs.worker.notify import NotifyListener

            self._listener = NotifyListener(
                self.database, None, self._wake.set, channel=OUTBOX_CHANNEL
            )
            self._listener.start()

    def stop(self) -> None:
        """Stop after the current batch (a batch is one short transaction)."""
        self._stop_event.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()  # type: ignore[attr-defined]
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def run(self) -> None:
        """The relay loop (runs in the calling thread until :meth:`stop`)."""
        failures = 0
        next_prune = time.monotonic() + random.uniform(0, self.prune_interval or 0)
        try:
            while not self._stop_event.is_set():
                self._wake.clear()
                try:
                    report = self.relay.dispatch_once()
                    if self.prune_interval and time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + self.prune_interval
                        self.relay.prune_once()
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = outage_delay(failures)
                    logger.log(
                        logging.WARNING if isinstance(exc, DatabaseError) else logging.ERROR,
                        "relay: batch failed (%d in a row), retrying in %.1fs: %s",
                        failures,
                        delay,
                        describe_exception(exc),
                        exc_info=True,
                    )
                    connections[self.database].close()
                    self._stop_event.wait(delay)
                    continue
                if report.dispatched:
                    continue  # more may be pending: go again at once
                if report.blocked:
                    self._wake.wait(BLOCKED_RETRY_SECONDS)
                else:
                    self._wake.wait(self.poll_interval * random.uniform(0.75, 1.25))
        finally:
            connections[self.database].close()
