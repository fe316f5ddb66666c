"""The worker loop: claim jobs for the free slots (plus a prefetch while jobs
are quick), hand them to the executor, write outcomes back in batches, sleep
until woken.

Wake-ups come from LISTEN/NOTIFY (PostgreSQL), from finished jobs, from
signals, and from the jittered poll timer that backs them up.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Protocol, TypeVar

from django.db import DatabaseError, connections

from django_jobs.backoff import outage_delay
from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine
from django_jobs.exceptions import exception_message
from django_jobs.observability import tracing
from django_jobs.rows import Cancellation, ClaimedJob, Completion, Failure, WorkerInfo
from django_jobs.worker import async_pool
from django_jobs.worker.burst import BurstExit
from django_jobs.worker.executor import Executor, Finished, ThreadExecutor
from django_jobs.worker.heartbeat import Heartbeat
from django_jobs.worker.ledger import Ledger
from django_jobs.worker.pacing import ClaimPacing
from django_jobs.worker.probe import HealthServer, liveness
from django_jobs.worker.process_pool import ProcessExecutor
from django_jobs.worker.pruner import Pruner
from django_jobs.worker.rejections import rejection_hint
from django_jobs.worker.runner import Settled, timeout_failure

logger = logging.getLogger("django_jobs.worker")
T = TypeVar("T")

# A prefetched job still waiting for a slot after this many seconds (the jobs
# ahead of it turned out slow) is handed back for another worker to run.
HAND_BACK_AFTER = 1.0
# A statement the database rejects for good (a table or column that is not
# there, a prepared statement PgBouncer lost) is not an outage: after this many
# in a row the worker stops with exit code 1 and says why, rather than retrying
# forever under a misleading "database unavailable". Everything else (lost
# connections, deadlocks, timeouts, a read-only node after a failover) is
# retried with backoff for as long as it lasts.
REJECTED_IN_A_ROW_LIMIT = 3
# At shutdown, how long to wait for a heartbeat in flight (one beat is a few
# short statements; a database outage makes it fail within its connect timeout).
HEARTBEAT_JOIN_TIMEOUT = 10.0


class Service(Protocol):
    """A background component run alongside the worker (heartbeat, relay...)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclasses.dataclass
class WorkerOptions:
    queues: Sequence[str] | None = None  # None: every queue
    concurrency: int = 10
    async_concurrency: int | None = None  # None: DJANGO_JOBS["ASYNC_CONCURRENCY"]
    pool: str = "thread"
    burst: bool = False
    burst_wait: float = 60.0  # seconds burst waits for jobs held back by lanes (worker.burst)
    batch_size: int | None = None  # None: concurrency + prefetch + async concurrency
    prefetch: int | None = None  # None: DJANGO_JOBS["PREFETCH"]; 0 claims free slots only
    poll_interval: float | None = None  # None: DJANGO_JOBS["POLL_INTERVAL"]
    shutdown_timeout: float = 30.0
    database: str = "default"
    max_jobs: int | None = None  # exit after this many jobs (for recycling by a supervisor)
    lease_seconds: float | None = None  # None: DJANGO_JOBS["LEASE_SECONDS"]
    max_tasks_per_child: int | None = None  # pool="process": recycle a child after N jobs
    max_memory_per_child: float | None = None  # pool="process": recycle past N MiB resident
    metrics_port: int | None = None  # serve the worker's Prometheus metrics on this port
    health_port: int | None = None  # serve the worker's liveness probe on this port


class Worker:
    """One ``runworker`` process."""

    def __init__(self, options: WorkerOptions, *, executor: Executor | None = None) -> None:
        self.options = options
        self.id = uuid.uuid4()
        self.engine = get_engine(options.database)
        self.lease_seconds = float(options.lease_seconds or jobs_settings.LEASE_SECONDS)
        self.poll_interval = float(options.poll_interval or jobs_settings.POLL_INTERVAL)
        prefetch = jobs_settings.PREFETCH if options.prefetch is None else options.prefetch
        self.prefetch = int(prefetch)
        self.async_slots = int(options.async_concurrency or jobs_settings.ASYNC_CONCURRENCY)
        self.batch_size = options.batch_size or options.concurrency + prefetch + self.async_slots
        self._releasing: list[ClaimedJob] = []  # handed back, release not confirmed yet
        self._wake = threading.Event()
        self._heartbeat: Heartbeat | None = None
        self._stopping = False
        self._signals_received = 0
        self.executor: Executor = executor or self._make_executor()
        self.pacing = ClaimPacing(
            self.executor, options.concurrency, self.prefetch, self.batch_size
        )
        self._pending: list[Finished] = []  # outcomes not yet written
        self._found_nothing = False  # the last claim asked for jobs and found none
        self._burst = BurstExit(self.engine, options.queues, options.burst_wait)
        self.services: list[Service] = []
        self.ledger = Ledger()  # every job's end: --max-jobs and the exit message
        self.exit_code = 0
        self.last_loop = time.monotonic()  # the loop's last turn (--health-port)

    @property
    def processed(self) -> int:
        """Jobs run to an end so far, whatever the end (see :class:`Ledger`)."""
        return self.ledger.ran

    def _make_executor(self) -> Executor:
        pool: Executor = ThreadExecutor(self.options.concurrency, self._wake.set)
        if self.options.pool == "process":  # a loop for async tasks beside either pool
            pool = ProcessExecutor(
                self.options.concurrency,
                self._wake.set,
                max_tasks_per_child=self.options.max_tasks_per_child,
                max_memory_mb=self.options.max_memory_per_child,
            )
        return async_pool.with_loop(pool, self.async_slots, self._wake.set, self.prefetch)

    def held_jobs(self) -> list[ClaimedJob]:
        """Claims this worker still owns: running, or finished with the outcome unwritten."""
        pending = [job for job, _ in list(self._pending)]
        return [*self.executor.held_jobs(), *pending, *list(self._releasing)]

    # -- lifecycle -------------------------------------------------------

    def wake(self) -> None:
        """Look for jobs now (a service just made some due)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; finish running jobs within the shutdown timeout."""
        self._stopping = True
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_received += 1
        if self._signals_received > 1:
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            self.executor.abort()
            os._exit(1)
        logger.info(
            "%s received: finishing running jobs (up to %.0fs), Ctrl+C again to exit now",
            signal.Signals(signum).name,
            self.options.shutdown_timeout,
        )
        self.request_stop()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _register(self) -> WorkerInfo:
        info = WorkerInfo(
            id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.options.queues or []),
            concurrency=self.options.concurrency,
            pool=self.options.pool,
        )
        self.engine.register_worker(info)
        return info

    def _start_services(self, info: WorkerInfo) -> None:
        self._heartbeat = Heartbeat(
            info,
            self.options.database,
            lease_seconds=self.lease_seconds,
            held_jobs=self.held_jobs,
            on_cancel_requested=self.executor.cancel,
        )
        self.services.insert(0, self._heartbeat)
        pruner = Pruner.from_settings(self.options.database)
        if pruner is not None:
            self.services.append(pruner)
        if self.engine.supports_notify and jobs_settings.USE_NOTIFY:
            from django_jobs.worker.notify import NotifyListener  # psycopg: optional

            self.services.append(
                NotifyListener(self.options.database, self.options.queues, self._wake.set)
            )
        for service in self.services:
            service.start()
        self.executor.start()

    def _start_probes(self) -> None:
        """Listen on --metrics-port / --health-port (WorkerStartError if taken)."""
        if self.options.metrics_port is not None:
            # prometheus-client is the optional extra [metrics]: only with --metrics-port.
            from django_jobs.observability.worker_metrics import WorkerMetrics

            metrics = WorkerMetrics()
            metrics.serve(self.options.metrics_port)
            self.executor.observer = metrics.observe
        if self.options.health_port is not None:
            probe = HealthServer(
                self.options.health_port,
                lambda: liveness(
                    last_loop=lambda: self.last_loop,
                    last_beat=lambda: self._heartbeat.last_success if self._heartbeat else None,
                    limit=self.lease_seconds,
                ),
            )
            self.services.append(probe)

    def run(self) -> int:
        """Run until stopped (or drained with ``burst``); returns the exit code."""
        self._start_probes()  # before registering: a port in use leaves nothing behind
        info = self._register()  # before the try: a failed registration leaves nothing to undo
        try:
            # Inside the try: a start that fails half-way (no thread can be
            # started) still stops what did start and removes the worker row.
            self._start_services(info)
            logger.info(
                "worker %s started: queues=%s concurrency=%d pool=%s",
                self.id,
                ",".join(self.options.queues or ["*"]),
                self.options.concurrency,
                self.options.pool,
            )
            self._loop()
            self._drain_on_shutdown()
        finally:
            for service in reversed(self.services):
                service.stop()
            self.executor.stop()
            # A beat in flight re-creates a missing Worker row (touch_worker), so
            # the heartbeat must have ended before the row is removed.
            if self._heartbeat is not None and self._heartbeat.is_alive():
                self._heartbeat.join(HEARTBEAT_JOIN_TIMEOUT)
            self._safely(self.engine.unregister_worker, self.id)
            connections.close_all()
        logger.info("worker %s stopped after %s", self.id, self.ledger.summary())
        return self.exit_code

    # -- the loop ----------------------------------------------------------

    def _loop(self) -> None:
        failures = rejected = 0
        while not self._stopping:
            self.last_loop = time.monotonic()
            self._wake.clear()
            try:
                self._expire_overdue()
                self._hand_back_stale()
                if failures or rejected:
                    self._release_orphans()
                claimed, asked = self._flush_and_claim()
                failures = rejected = 0
            except DatabaseError as exc:
                hint = rejection_hint(exc)
                connections[self.options.database].close()
                if hint is None:  # an outage (or a passing error): back off and retry
                    failures, rejected = failures + 1, 0
                    delay = outage_delay(failures)
                    logger.warning(
                        "database unavailable (%d in a row); retrying in %.1fs",
                        failures,
                        delay,
                        exc_info=True,
                    )
                    self._wake.wait(delay)
                    continue
                rejected += 1
                if rejected >= REJECTED_IN_A_ROW_LIMIT:
                    logger.critical(
                        "the database rejected the worker's statements %d times in a row "
                        "(%s: %s); %s Stopping",
                        rejected,
                        type(exc).__name__,
                        exception_message(exc).strip(),
                        hint,
                    )
                    self.exit_code = 1
                    self.request_stop()
                    break
                logger.exception(
                    "the database rejected a statement (%s): %s; reconnecting and retrying",
                    type(exc).__name__,
                    hint,
                )
                self._wake.wait(1.0)
                continue
            if self.options.max_jobs and self.ledger.ran >= self.options.max_jobs:
                logger.info("ran %d job(s) (--max-jobs): stopping", self.ledger.ran)
                self.request_stop()
                break
            if claimed:
                self._burst.claimed()
                if claimed >= asked:
                    continue  # more may be waiting: claim again as soon as slots free up
                # Fewer than asked for: nothing more is claimable now (a lane
                # is full, the queue ran dry). The jobs just claimed wake the
                # loop as they finish; an immediate claim would find nothing.
                if self.pacing.gather_quick_batch():
                    continue
            if (
                self.options.burst
                and self._found_nothing
                and not self.executor.held_jobs()  # held: an unwritten outcome may add a step
                and not self._pending
                and self._burst.may_exit()
            ):
                break
            if self._pending:
                continue
            if self.executor.free_slots() > 0:
                self._wake.wait(self.poll_interval * random.uniform(0.75, 1.25))
            else:  # every slot busy: woken when a job finishes; check hand-backs meanwhile
                self._wake.wait(min(self.poll_interval, HAND_BACK_AFTER / 2))

    def _flush_and_claim(self) -> tuple[int, int]:
        """Write finished jobs' outcomes and claim for the free slots (and prefetch).
        Failures are written one by one first; the successes and the claim go
        in ONE round trip and one commit (``engine.complete_and_claim``)."""
        self._pending.extend(self.executor.take_outcomes())
        self._write_failures()
        completions = [o for _, o in self._pending if isinstance(o, Completion)]
        limit, lane_limit = self._claim_limit()
        if not completions and limit <= 0:
            self._found_nothing = False
            return 0, 0
        done, jobs = async_pool.complete_and_claim(self, completions, limit, lane_limit)
        # Only a claim that asked for jobs and got none says "empty" (--burst; worker.burst).
        self._found_nothing = limit > 0 and not jobs
        self._acknowledged(completions, done)
        if jobs:
            self.executor.submit(jobs)
        return len(jobs), limit

    def _claim_limit(self) -> tuple[int, int]:
        """How many jobs to claim now, and how many of them in lanes (worker.pacing)."""
        if self._stopping:
            return 0, 0
        room = None
        if self.options.max_jobs:
            # held_jobs, not running_jobs: a job finishing right now is in one
            # snapshot either way (running, or an outcome not taken yet).
            unfinished = len(self.executor.held_jobs()) + len(self._pending)
            room = self.options.max_jobs - self.ledger.ran - unfinished
        return self.pacing.limits(room)

    def _release_orphans(self) -> None:
        """After a database error: release jobs claimed by a statement whose
        answer was lost, now rather than after their lease."""
        released = self.engine.release_orphans(self.id, [j.id for j in self.held_jobs()])
        if released:
            logger.warning("released %d job(s) of a claim whose answer was lost", released)

    def _hand_back_stale(self) -> None:
        """Release prefetched jobs that waited too long for a slot.

        Slow jobs ahead of them hold every slot while another worker may be
        idle. No more prefetching until a slot frees up, so the jobs are not
        claimed straight back.
        """
        stale = self.executor.take_unstarted(HAND_BACK_AFTER)
        if stale:
            self.pacing.prefetch_paused = True
            self._releasing.extend(stale)
        if not self._releasing:
            return
        # Kept (and their leases renewed) until the release is confirmed, and
        # never run: a release whose answer was lost may have committed, and
        # another worker may be running them already.
        released = self.engine.release_jobs(self._releasing)
        self.ledger.record_handed_back(released)
        logger.info(
            "handed back %d prefetched job(s) that waited over %.0fs for a free slot",
            released,
            HAND_BACK_AFTER,
        )
        self._releasing = []

    def _flush(self) -> None:
        """Write finished jobs' outcomes: successes in one batch, failures one by one."""
        self._pending.extend(self.executor.take_outcomes())
        self._write_failures()
        completions = [o for _, o in self._pending if isinstance(o, Completion)]
        if completions:
            self._acknowledged(completions, self.engine.complete_jobs(completions))
        self._pending.clear()

    def _write_failures(self) -> None:
        """Write failed outcomes one by one and drop them (and settled ones) from _pending.

        Each is dropped (and recorded in the ledger) only once written, so a
        database error loses nothing.
        """
        for item in [p for p in self._pending if not isinstance(p[1], Completion)]:
            job, outcome = item
            if isinstance(outcome, Failure):
                written = self.engine.fail_job(outcome)
                if not written:
                    logger.warning("job %s: failure ignored, the claim was lost", job.id)
                self.ledger.record_failure(outcome.retry_at, written=written)
            elif isinstance(outcome, Cancellation):  # CANCELLED unless its outcome came first
                self.ledger.record_cancelled(written=self.engine.cancel_running(outcome))
            elif outcome is Settled.WRITTEN:
                self.ledger.record_written()
            else:
                self.ledger.record_lost()
            self._pending = [p for p in self._pending if p is not item]

    def _acknowledged(self, completions: list[Completion], done: set[int]) -> None:
        lost = 0
        for completion in completions:
            if completion.job.id not in done:
                lost += 1
                logger.warning(
                    "job %s: completion ignored, the claim was lost (lease expired)",
                    completion.job.id,
                    extra={"job_id": completion.job.id},
                )
        self._pending.clear()
        self.ledger.record_completions(len(completions), lost=lost)

    def _expire_overdue(self) -> None:
        overdue = self.executor.expire_overdue()
        if overdue:
            ended = [(job, timeout_failure(job)) for job in overdue]
            if tracing.AVAILABLE:  # the attempt cannot end its own span now
                killed = getattr(self.executor, "kills_overdue", False)
                for job, failure in ended:
                    tracing.record_unfinished(job, failure, still_running=not killed)
            observer = getattr(self.executor, "observer", None)  # a test's executor may lack it
            if observer is not None:
                for job, failure in ended:
                    observer(job, failure, job.timeout)
            self._pending.extend(ended)
            self._flush()

    def _drain_on_shutdown(self) -> None:
        unstarted = self._releasing + self.executor.take_unstarted()
        if unstarted:
            released = self._safely(self.engine.release_jobs, unstarted) or 0
            self.ledger.record_handed_back(released)
            logger.info("shutdown: handed back %d job(s) that had not started", released)
            self._releasing = []
        deadline = time.monotonic() + self.options.shutdown_timeout
        while self.executor.running_jobs() and time.monotonic() < deadline:
            self._wake.wait(0.05)
            self._wake.clear()
            self._safely(self._flush)
        self._safely(self._flush)
        # Everything still queued goes back too (a child process that never
        # became ready), taken out of the backlog so it is not started now.
        unfinished = [*self.executor.take_unstarted(keep_free=False), *self.executor.running_jobs()]
        if unfinished:
            released = self._safely(self.engine.release_jobs, unfinished) or 0
            self.ledger.record_handed_back(released)
            logger.warning("shutdown timeout: handed back %d unfinished job(s) to READY", released)

    def _safely(self, func: Callable[..., T], *args: Any) -> T | None:
        try:
            return func(*args)
        except DatabaseError:
            logger.warning("database error during shutdown", exc_info=True)
            return None
