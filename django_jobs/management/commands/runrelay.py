"""``manage.py runrelay``: run the outbox relay alone (runworker runs it by default)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_jobs.management.commands._options import (
    MAX_BATCH,
    MAX_SECONDS,
    Number,
    check_options,
    configure_logging,
    schema_errors,
)
from django_jobs.outbox.relay import RelayService

NUMBERS = {
    "batch_size": Number(int, 1, MAX_BATCH),
    "poll_interval": Number(float, 0, MAX_SECONDS, above_minimum=True),
}


class Command(BaseCommand):
    help = "Dispatch committed outbox events to subscribers and publishers until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=NUMBERS["batch_size"],
            default=None,
            help=f"Events dispatched per transaction, 1 to {MAX_BATCH} "
            "(default DJANGO_JOBS['OUTBOX_BATCH_SIZE']).",
        )
        parser.add_argument(
            "--poll-interval",
            type=NUMBERS["poll_interval"],
            default=None,
            help="Seconds between polls without notification, more than 0 "
            "(default DJANGO_JOBS['POLL_INTERVAL']).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Dispatch what is pending now, then exit 0."
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        check_options(options, NUMBERS)
        configure_logging(options["verbosity"])
        service = RelayService(
            options["database"],
            batch_size=options["batch_size"],
            poll_interval=options["poll_interval"],
        )
        if options["once"]:
            with schema_errors(options["database"]):
                count = service.relay.drain()
            self.stdout.write(f"dispatched {count} event(s)")
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            service.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        with schema_errors(options["database"]):
            service.run_forever()
        self.stdout.write(f"relay stopped: dispatched {service.relay.dispatched} event(s)")
