"""``manage.py jobs pause QUEUE`` and ``jobs resume QUEUE``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs import queues
from django_jobs.cli import Subcommand
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Circuit, Queue
from django_jobs.observability import sections
from django_jobs.status import CircuitState


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


# ``jobs status``: paused queues and circuits not closed (a few rows each).
def paused_queues(alias: str) -> list[sections.Row]:
    rows = Queue.objects.using(alias).filter(paused=True).order_by("name")
    return [
        {"queue": q.name, "paused_at": q.paused_at.isoformat() if q.paused_at else None}
        for q in rows
    ]


def open_circuits(alias: str) -> list[sections.Row]:
    rows = Circuit.objects.using(alias).exclude(state=CircuitState.CLOSED).order_by("name")
    return [
        {
            "circuit": c.name,
            "state": c.state,
            "opened_at": c.opened_at.isoformat() if c.opened_at else None,
        }
        for c in rows
    ]


sections.provide("paused_queues", columns=("queue", "paused_at"), rows=paused_queues)
sections.provide("open_circuits", columns=("circuit", "state", "opened_at"), rows=open_circuits)
