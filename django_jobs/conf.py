"""Settings for django_jobs, read lazily from ``settings.DJANGO_JOBS``.

Every key is optional. Units are in the names' docs below; durations are
seconds (floats allowed). Values are re-read when Django's ``setting_changed``
signal fires, so ``override_settings(DJANGO_JOBS={...})`` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Modules imported at startup (AppConfig.ready, in the worker and the web
    # process alike) besides each installed app's tasks module, like Celery's
    # ``imports``: list here every module that defines tasks (@task, @subscriber,
    # django.tasks) outside a tasks.py, e.g. ["myapp.jobs", "myapp.handlers"].
    # The worker runs registered tasks only; a job naming anything else is
    # dead-lettered and nothing it names is imported.
    "TASK_MODULES": [],
    # Queue used when a task does not name one.
    "DEFAULT_QUEUE": "default",
    # Attempts (first run included) before a failing job goes to the dead letters.
    "DEFAULT_MAX_ATTEMPTS": 3,
    # Seconds a job may run before it is failed with a timeout error.
    "DEFAULT_TIMEOUT": 300.0,
    # "exponential", "linear", "fixed", "fibonacci" or a callable (attempt) -> seconds.
    "DEFAULT_BACKOFF": "exponential",
    # Base delay in seconds for the backoff strategies.
    "BACKOFF_BASE": 2.0,
    # Largest retry delay in seconds, whatever the strategy says.
    "BACKOFF_MAX": 3600.0,
    # Seconds a claimed job stays owned by its worker without a heartbeat. It
    # must outlast any stall of a live worker's heartbeat thread; a dead
    # worker's jobs run again about this long after it died (see the docs,
    # operations/crash-safety).
    "LEASE_SECONDS": 30.0,
    # Seconds between heartbeats; at most half of LEASE_SECONDS (5 tries per lease here).
    "HEARTBEAT_INTERVAL": 5.0,
    # Seconds a cancelled RUNNING job gets to stop before its worker gives up on it:
    # the process pool kills the child running it (and starts another), the thread pool
    # abandons a thread stuck in a C call and starts another. Either way the job ends
    # CANCELLED. The worker learns of a cancel at its next heartbeat (HEARTBEAT_INTERVAL).
    "CANCEL_GRACE": 5.0,
    # Seconds between each worker's scans for jobs whose lease expired (their worker died).
    "RECOVERY_INTERVAL": 5.0,
    # Most jobs a worker claims beyond its free slots, so its threads never wait for the
    # database between quick jobs. The worker only prefetches about 50 ms of work (from
    # recent run times): nothing when jobs are slow. A prefetched job still waiting for a
    # slot after 1 s is handed back for another worker. 0 turns prefetch off.
    "PREFETCH": 90,
    # Most coroutines (jobs of async def tasks) a worker runs at once on its event loop,
    # beside its threads or child processes (runworker --async-concurrency). A positive int.
    "ASYNC_CONCURRENCY": 100,
    # Seconds between polls when no notification arrives (jittered +-25%).
    "POLL_INTERVAL": 1.0,
    # Use LISTEN/NOTIFY on PostgreSQL. Turn off behind PgBouncer in transaction mode.
    "USE_NOTIFY": True,
    # Prepare the hot-path statements on PostgreSQL (claim, complete, enqueue). Turn off
    # behind PgBouncer in transaction mode older than 1.22, or without max_prepared_statements.
    "PREPARED_STATEMENTS": True,
    # Largest JSON, in bytes, of a job's arguments (args and kwargs together), of its
    # result and of its progress: enqueue() and set_progress() raise ValueError, a
    # larger result fails the attempt. None or 0 turns the limit off.
    "MAX_PAYLOAD_BYTES": 1024 * 1024,
    # Seconds finished jobs (SUCCESSFUL, FAILED, CANCELLED) are kept; None keeps them forever.
    "FINISHED_JOB_RETENTION": 7 * 24 * 3600.0,
    # Rows deleted per pruning statement.
    "PRUNE_BATCH_SIZE": 1000,
    # Seconds between pruning passes run by workers; None disables worker pruning.
    "PRUNE_INTERVAL": 600.0,
    # Admin: counts up to this many rows are exact (a count reads at most this many
    # + 1 rows); above it, PostgreSQL's planner estimate, never below this, is shown
    # ("about 1,000,000") so no page ever counts a big table.
    "ADMIN_EXACT_COUNT_LIMIT": 10_000,
    # Admin: seconds between automatic refreshes of the overview page; 0 turns it off.
    "ADMIN_REFRESH_SECONDS": 10,
    # Seconds a job status URL (django_jobs.http.accepted) stays valid after it was
    # issued; later the status view answers 410 Gone. A positive number.
    "STATUS_TOKEN_MAX_AGE": 7 * 24 * 3600.0,
    # -- flow control (docs/howto/flow-control.md) ----------------------------
    # Queue-wide limits, queue name -> {"CONCURRENCY": N (RUNNING jobs at most),
    # "RATE_LIMIT": "N/s" | "N/m" | "N/h" (starts at most per period)}, enforced
    # across all workers at claim time, e.g. {"payments": {"CONCURRENCY": 5}}.
    # They apply to the queue's jobs of tasks without a limit of their own.
    "QUEUES": {},
    # Circuit breakers, name -> {"FAILURES": N, "WINDOW": seconds, "COOLDOWN":
    # seconds}: after N failed attempts of @task(circuit=name) jobs within
    # WINDOW the circuit opens; its jobs wait READY (no attempt counted) for
    # COOLDOWN, then one probe job runs: success closes it, failure reopens it.
    "CIRCUITS": {},
    # -- eager mode (docs/howto/testing.md) ------------------------------------
    # Run each job in the enqueueing process when its transaction commits,
    # through the worker's runner, instead of leaving it for runworker. For tests
    # and local development: system check django_jobs.W030 warns when DEBUG is
    # False. Jobs scheduled for later (run_after) are left for a worker.
    "EAGER": False,
    # Eager mode: retry a failed job at once (no backoff wait) until it succeeds or
    # is dead-lettered; False: one attempt, its retry left READY for a worker.
    "EAGER_RETRIES": True,
    # Eager mode: "propagate" re-raises the exception of a job that failed for good
    # out of the commit that ran it (after the failure is recorded); "store" only
    # records it (errors, dead letter), as a worker would.
    "EAGER_EXCEPTIONS": "propagate",
    # -- transactional outbox ------------------------------------------------
    # Events the relay claims and dispatches per transaction.
    "OUTBOX_BATCH_SIZE": 500,
    # Seconds DISPATCHED events are kept; None keeps them forever. FAILED events
    # are never pruned (an operator re-dispatches or deletes them).
    "OUTBOX_RETENTION": 7 * 24 * 3600.0,
    # External publishers, name -> options. Each delivery is a job of the built-in
    # task django_jobs.outbox.delivery.deliver, so it gets retries and dead letters:
    #   {"orders-hook": {"BACKEND": "webhook", "TOPICS": ["order.*"],
    #                    "URL": "https://...", "SECRET": "..."},
    #    "broker": {"BACKEND": "rabbitmq", "URL": "amqp://guest:guest@localhost/%2F",
    #               "EXCHANGE": "events"}}
    # Common options: TOPICS (patterns, default every topic), MAX_ATTEMPTS (8),
    # BACKOFF ("exponential"), QUEUE (DEFAULT_QUEUE), PRIORITY (0), TIMEOUT (10 s).
    "OUTBOX_PUBLISHERS": {},
    # -- observability (docs/howto/observability.md) ---------------------------
    # Bearer token that lets a scraper read django_jobs.views.metrics without a
    # staff session: "Authorization: Bearer <token>". At least 32 characters;
    # None: staff users only.
    "METRICS_TOKEN": None,
    # Seconds the metrics and health views reuse one database snapshot, so many
    # scrapers (or a load balancer probing every second) cost one set of queries.
    "METRICS_CACHE_SECONDS": 5.0,
    # Health: seconds the oldest due job may wait before django_jobs.views.health
    # answers 503; None: reported but never unhealthy.
    "HEALTH_MAX_READY_AGE": None,
    # -- alerts (docs/howto/alerts.md) -----------------------------------------
    # Alert rules, name -> rule, evaluated by the workers (one evaluation per rule
    # and interval cluster-wide). Every rule has "kind" and "threshold" (fires at
    # value >= threshold), optionally "for" (seconds the condition must hold
    # before firing, like Prometheus' for:) and "severity" (a label, default
    # "warning"). Kinds: "failure_rate" (FAILED / finished jobs, 0 < threshold
    # <= 1; "task" and/or "queue", "window" seconds (300), "min_jobs" (10)),
    # "oldest_ready_age" (seconds; "queue"), "dead_letters" (new ones in "window"
    # seconds (300), threshold 1; "task", "queue"), "stale_workers" (workers
    # without a heartbeat for LEASE_SECONDS, threshold 1), "outbox_pending_age"
    # (seconds), e.g. {"payments-failing": {"kind": "failure_rate", "queue":
    # "payments", "threshold": 0.2, "window": 300, "min_jobs": 10}}.
    "ALERTS": {},
    # Seconds between evaluations of each rule (any number of workers share
    # them: a rule evaluated less than 3/4 of this ago is skipped); None: the
    # workers evaluate no rule (runworker --no-alerts does that for one worker).
    "ALERT_INTERVAL": 30.0,
    # Email settings.ADMINS (django.core.mail.mail_admins) when a rule fires and
    # when it resolves; the django_jobs.signals.alert signal is sent either way.
    "ALERT_MAIL_ADMINS": True,
    # -- schedules (docs/howto/schedules.md) -----------------------------------
    # Schedules with arguments, name -> {"task", "cron" or "every" (seconds),
    # "timezone", "args", "kwargs", "queue_name", "priority", "catch_up", "overlap"}.
    "SCHEDULES": {},
    # catch_up="all": most jobs enqueued for one schedule's missed ticks (the latest ones).
    "SCHEDULE_CATCH_UP_LIMIT": 100,
    # catch_up="skip": seconds late a lone due tick may be and still run.
    "SCHEDULE_MISFIRE_GRACE": 60.0,
    # Longest sleep of an idle scheduler (picks up schedules added in the admin).
    "SCHEDULER_MAX_SLEEP": 30.0,
}


class JobsSettings:
    """Attribute access to ``DJANGO_JOBS`` merged over :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._cache is None:
            user = getattr(settings, "DJANGO_JOBS", {}) or {}
            unknown = set(user) - set(DEFAULTS)
            merged = {**DEFAULTS, **{k: v for k, v in user.items() if k in DEFAULTS}}
            merged["_UNKNOWN"] = sorted(unknown)
            self._cache = merged
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self._load()
        try:
            return values[name]
        except KeyError:
            raise AttributeError(f"unknown django_jobs setting {name!r}") from None

    def unknown_keys(self) -> list[str]:
        return list(self._load()["_UNKNOWN"])

    def reload(self) -> None:
        self._cache = None


jobs_settings = JobsSettings()


@receiver(setting_changed)
def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == "DJANGO_JOBS":
        jobs_settings.reload()
