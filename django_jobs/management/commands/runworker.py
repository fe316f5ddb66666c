"""``manage.py runworker``: run jobs. Parses options and hands off to Worker."""

from __future__ import annotations

import logging
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import ProgrammingError

from django_jobs.worker.worker import Worker, WorkerOptions


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
            type=int,
            default=10,
            help="Jobs run at the same time (default 10).",
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
            "--batch-size",
            type=int,
            default=None,
            help="Most jobs claimed per statement (default: concurrency + prefetch).",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=None,
            help="Most jobs claimed beyond the free slots while jobs are quick "
            "(default: DJANGO_JOBS['PREFETCH'], 90; 0 turns it off).",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=None,
            help="Seconds between polls without notification (default 1).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="Seconds running jobs get to finish on SIGTERM (default 30).",
        )
        parser.add_argument(
            "--max-jobs",
            type=int,
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
            "--max-tasks-per-child",
            type=int,
            default=None,
            help="With --pool process: replace a child process after this many jobs.",
        )
        parser.add_argument(
            "--max-memory-per-child",
            type=float,
            default=None,
            metavar="MIB",
            help="With --pool process: replace a child process whose resident memory "
            "passes this many MiB after a job.",
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("concurrency", "batch_size", "max_jobs", "max_tasks_per_child"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["max_memory_per_child"] is not None and options["max_memory_per_child"] <= 0:
            raise CommandError("--max-memory-per-child must be a positive number of MiB")
        if options["pool"] == "process" and not hasattr(os, "fork"):
            raise CommandError("--pool process needs fork(), which this platform lacks")
        for name in ("max_tasks_per_child", "max_memory_per_child"):
            if options[name] is not None and options["pool"] != "process":
                raise CommandError(f"--{name.replace('_', '-')} needs --pool process")
        for name in ("poll_interval", "shutdown_timeout", "prefetch"):
            if options[name] is not None and options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must not be negative")
        _configure_logging(options["verbosity"])
        worker = Worker(
            WorkerOptions(
                queues=options["queues"],
                concurrency=options["concurrency"],
                pool=options["pool"],
                burst=options["burst"],
                batch_size=options["batch_size"],
                prefetch=options["prefetch"],
                poll_interval=options["poll_interval"],
                shutdown_timeout=options["shutdown_timeout"],
                database=options["database"],
                max_jobs=options["max_jobs"],
                max_tasks_per_child=options["max_tasks_per_child"],
                max_memory_per_child=options["max_memory_per_child"],
            )
        )
        if options["relay"]:
            from django_jobs.outbox.relay import RelayService

            worker.services.append(
                RelayService(
                    options["database"],
                    poll_interval=options["poll_interval"],
                    drain_first=options["burst"],
                )
            )
        worker.install_signal_handlers()
        try:
            code = worker.run()
        except ProgrammingError as exc:
            raise CommandError(
                f"the database {options['database']!r} rejects django_jobs' statements "
                f"({str(exc).strip()}): is the schema migrated? Run `manage.py migrate`."
            ) from exc
        max_jobs = options["max_jobs"]
        if max_jobs and worker.ledger.ran >= max_jobs:
            self.stdout.write(f"--max-jobs {max_jobs} reached: ran {worker.ledger.summary()}")
        if code:
            raise SystemExit(code)


def _configure_logging(verbosity: int) -> None:
    """Show worker logs on stderr unless the project configured django_jobs logging."""
    root = logging.getLogger("django_jobs")
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
