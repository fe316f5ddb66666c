"""``manage.py jobs pause QUEUE`` and ``jobs resume QUEUE``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs import queues
from django_jobs.cli import Subcommand
from django_jobs.exceptions import InvalidJobOptions


def _queue_argument(parser: CommandParser) -> None:
    parser.add_argument("queue", help="Queue name.")


def _handler(paused: bool) -> Any:
    def handle(command: BaseCommand, options: dict[str, Any]) -> None:
        name, database = options["queue"], options["database"]
        try:
            action = queues.pause if paused else queues.resume
            changed = action(name, database=database)
        except InvalidJobOptions as exc:
            raise CommandError(str(exc)) from None
        verb = "paused" if paused else "resumed"
        if changed:
            command.stdout.write(command.style.SUCCESS(f"queue {name!r} {verb}"))
        else:
            command.stdout.write(f"queue {name!r} was already {verb}")

    return handle


PAUSE = Subcommand(
    "pause",
    "Stop workers claiming jobs of a queue (running jobs finish); survives restarts.",
    _queue_argument,
    _handler(True),
)
RESUME = Subcommand(
    "resume", "Let workers claim jobs of a paused queue again.", _queue_argument, _handler(False)
)
