"""``manage.py runworker``: run jobs. Parses options and hands off to Worker."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.alerts.service import AlertService
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import WorkerStartError
from django_jobs.management.commands._options import (
    MAX_BATCH,
    MAX_PROCESSES,
    MAX_SECONDS,
    MAX_THREADS,
    Number,
    check_options,
    configure_logging,
    schema_errors,
)
from django_jobs.outbox.relay import RelayService
from django_jobs.scheduling.service import SchedulerService
from django_jobs.worker.worker import Worker, WorkerOptions

NUMBERS = {
    "concurrency": Number(int, 1, MAX_THREADS),
    "async_concurrency": Number(int, 1, MAX_BATCH),
    "batch_size": Number(int, 1, MAX_BATCH),
    "prefetch": Number(int, 0, MAX_BATCH),
    "poll_interval": Number(float, 0, MAX_SECONDS, above_minimum=True),
    "shutdown_timeout": Number(float, 0, MAX_SECONDS),
    "burst_wait": Number(float, 0, MAX_SECONDS),
    "max_jobs": Number(int, 1),
    "max_tasks_per_child": Number(int, 1),
    "max_memory_per_child": Number(float, 0, above_minimum=True, unit="MiB"),
    "metrics_port": Number(int, 1, 65535),
    "health_port": Number(int, 1, 65535),
}


class Command(BaseCommand):
    help = "Claim and run background jobs until stopped (SIGTERM/SIGINT for a graceful stop)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            "-q",
            action="append",
            dest="queues",
            metavar="NAME",
            help="Queue to take jobs from (repeatable). Default: every queue.",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=NUMBERS["concurrency"],
            default=10,
            help=f"Jobs run at the same time (default 10): 1 to {MAX_THREADS} threads, "
            f"or 1 to {MAX_PROCESSES} child processes with --pool process.",
        )
        parser.add_argument(
            "--async-concurrency",
            type=NUMBERS["async_concurrency"],
            default=None,
            help=f"Coroutines (async def tasks) run at the same time on the worker's event loop, "
            f"beside the threads or children: 1 to {MAX_BATCH} "
            "(default: DJANGO_JOBS['ASYNC_CONCURRENCY'], 100).",
        )
        parser.add_argument(
            "--pool",
            choices=["thread", "process"],
            default="thread",
            help="Run jobs in threads (default) or child processes.",
        )
        parser.add_argument(
            "--burst", action="store_true", help="Run what is runnable now, then exit 0."
        )
        parser.add_argument(
            "--burst-wait",
            type=NUMBERS["burst_wait"],
            default=60.0,
            help="With --burst: seconds to keep waiting, without a claim, for due jobs held "
            "back by a concurrency limit, a rate limit or a circuit (default 60).",
        )
        parser.add_argument(
            "--batch-size",
            type=NUMBERS["batch_size"],
            default=None,
            help=f"Most jobs claimed per statement, 1 to {MAX_BATCH} "
            "(default: concurrency + prefetch + async concurrency).",
        )
        parser.add_argument(
            "--prefetch",
            type=NUMBERS["prefetch"],
            default=None,
            help="Most jobs claimed beyond the free slots while jobs are quick "
            "(default: DJANGO_JOBS['PREFETCH'], 90; 0 turns it off).",
        )
        parser.add_argument(
            "--poll-interval",
            type=NUMBERS["poll_interval"],
            default=None,
            help="Seconds between polls without notification, more than 0 "
            "(default: DJANGO_JOBS['POLL_INTERVAL'], 1).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=NUMBERS["shutdown_timeout"],
            default=30.0,
            help="Seconds running jobs get to finish on SIGTERM, 0 or more (default 30).",
        )
        parser.add_argument(
            "--max-jobs",
            type=NUMBERS["max_jobs"],
            default=None,
            help="Exit after running this many jobs (for supervisor recycling).",
        )
        parser.add_argument(
            "--no-relay",
            action="store_false",
            dest="relay",
            help="Do not run the outbox relay in this worker (run `manage.py runrelay` instead).",
        )
        parser.add_argument(
            "--no-scheduler",
            action="store_false",
            dest="scheduler",
            help="Do not run the scheduler in this worker (run `manage.py runscheduler` "
            "instead, or leave schedules to other workers).",
        )
        parser.add_argument(
            "--no-alerts",
            action="store_false",
            dest="alerts",
            help="Do not evaluate DJANGO_JOBS['ALERTS'] rules in this worker "
            "(other workers still do).",
        )
        parser.add_argument(
            "--max-tasks-per-child",
            type=NUMBERS["max_tasks_per_child"],
            default=None,
            help="With --pool process: replace a child process after this many jobs.",
        )
        parser.add_argument(
            "--max-memory-per-child",
            type=NUMBERS["max_memory_per_child"],
            default=None,
            metavar="MIB",
            help="With --pool process: replace a child process whose resident memory "
            "passes this many MiB after a job.",
        )
        parser.add_argument(
            "--metrics-port",
            type=NUMBERS["metrics_port"],
            default=None,
            metavar="PORT",
            help="Serve this worker's Prometheus metrics (job durations, finished jobs) "
            "on PORT (needs the [metrics] extra).",
        )
        parser.add_argument(
            "--health-port",
            type=NUMBERS["health_port"],
            default=None,
            metavar="PORT",
            help="Serve this worker's liveness probe on PORT: 200 while it heartbeats, else 503.",
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        check_options(options, NUMBERS)
        if options.get("async_concurrency") is None:  # the setting, checked like the option
            setting = jobs_settings.ASYNC_CONCURRENCY
            try:
                options["async_concurrency"] = NUMBERS["async_concurrency"](setting)
            except argparse.ArgumentTypeError as exc:
                raise CommandError(f"DJANGO_JOBS['ASYNC_CONCURRENCY'] {exc}") from None
        if options["burst"] and jobs_settings.EAGER:
            raise CommandError(
                "DJANGO_JOBS['EAGER'] is on: jobs run in the process that enqueues them, on "
                "commit, so runworker --burst would find nothing it should run; turn EAGER off "
                "for workers (or call django_jobs.testing.run_jobs() in tests)"
            )
        if options["pool"] == "process":
            if not hasattr(os, "fork"):
                raise CommandError("--pool process needs fork(), which this platform lacks")
            if options["concurrency"] > MAX_PROCESSES:
                raise CommandError(
                    f"--concurrency must be between 1 and {MAX_PROCESSES} with --pool process, "
                    f"got {options['concurrency']}"
                )
        for name in ("max_tasks_per_child", "max_memory_per_child"):
            if options[name] is not None and options["pool"] != "process":
                raise CommandError(f"--{name.replace('_', '-')} needs --pool process")
        configure_logging(options["verbosity"])
        worker = Worker(
            WorkerOptions(
                queues=options["queues"],
                concurrency=options["concurrency"],
                async_concurrency=options["async_concurrency"],
                pool=options["pool"],
                burst=options["burst"],
                burst_wait=options["burst_wait"],
                batch_size=options["batch_size"],
                prefetch=options["prefetch"],
                poll_interval=options["poll_interval"],
                shutdown_timeout=options["shutdown_timeout"],
                database=options["database"],
                max_jobs=options["max_jobs"],
                max_tasks_per_child=options["max_tasks_per_child"],
                max_memory_per_child=options["max_memory_per_child"],
                metrics_port=options["metrics_port"],
                health_port=options["health_port"],
            )
        )
        if options["relay"]:
            worker.services.append(
                RelayService(
                    options["database"],
                    poll_interval=options["poll_interval"],
                    drain_first=options["burst"],
                )
            )
        if options["scheduler"]:
            worker.services.append(SchedulerService(options["database"], on_fired=worker.wake))
        if options["alerts"] and not options["burst"]:
            alerts = AlertService.from_settings(options["database"])
            if alerts is not None:
                worker.services.append(alerts)
        worker.install_signal_handlers()
        with schema_errors(options["database"]):
            try:
                code = worker.run()
            except WorkerStartError as exc:
                raise CommandError(str(exc)) from exc
        max_jobs = options["max_jobs"]
        if max_jobs and worker.ledger.ran >= max_jobs:
            self.stdout.write(f"--max-jobs {max_jobs} reached: ran {worker.ledger.summary()}")
        if code:
            raise SystemExit(code)
