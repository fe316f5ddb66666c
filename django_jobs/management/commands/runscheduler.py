"""``manage.py runscheduler``: run the scheduler alone (runworker runs it by default)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.management.commands._options import configure_logging, schema_errors
from django_jobs.scheduling.service import ScheduleConfigError, SchedulerService


class Command(BaseCommand):
    help = (
        "Enqueue one job per tick of every enabled schedule until stopped "
        "(any number may run: the database decides which one enqueues a tick)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Sync the schedules, enqueue the ticks due now, then exit 0.",
        )
        parser.add_argument("--database", default="default", help="Database alias to use.")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        service = SchedulerService(options["database"])
        with schema_errors(options["database"]):
            try:
                if options["once"]:
                    service.scheduler.sync()
                    count = service.scheduler.fire_due()
                    self.stdout.write(f"enqueued {count} scheduled job(s)")
                    return

                def stop(signum: int, frame: FrameType | None) -> None:
                    service.stop()

                signal.signal(signal.SIGTERM, stop)
                signal.signal(signal.SIGINT, stop)
                service.run_forever()
            except ScheduleConfigError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(f"scheduler stopped: enqueued {service.scheduler.fired} job(s)")
