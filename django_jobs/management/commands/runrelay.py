"""``manage.py runrelay``: run the outbox relay alone (runworker runs it by default)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.management.commands.runworker import _configure_logging
from django_jobs.outbox.relay import RelayService


class Command(BaseCommand):
    help = "Dispatch committed outbox events to subscribers and publishers until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Events dispatched per transaction (default DJANGO_JOBS['OUTBOX_BATCH_SIZE']).",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=None,
            help="Seconds between polls without notification (default POLL_INTERVAL).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Dispatch what is pending now, then exit 0."
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["poll_interval"] is not None and options["poll_interval"] <= 0:
            raise CommandError("--poll-interval must be positive")
        _configure_logging(options["verbosity"])
        service = RelayService(
            options["database"],
            batch_size=options["batch_size"],
            poll_interval=options["poll_interval"],
        )
        if options["once"]:
            count = service.relay.drain()
            self.stdout.write(f"dispatched {count} event(s)")
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            service.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        service.run_forever()
        self.stdout.write(f"relay stopped: dispatched {service.relay.dispatched} event(s)")
