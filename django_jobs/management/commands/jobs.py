"""``manage.py jobs SUBCOMMAND``: operator commands (pause/resume/cancel/status ...).

Thin: each subcommand lives in :mod:`django_jobs.cli`; this only dispatches.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.cli import Subcommand, cancel
from django_jobs.cli import queues as queue_commands
from django_jobs.cli.status import status

# Each feature appends its subcommands here (one line per module).
SUBCOMMANDS: list[Subcommand] = []
SUBCOMMANDS.append(status)
SUBCOMMANDS.append(cancel.SUBCOMMAND)
SUBCOMMANDS += [queue_commands.PAUSE, queue_commands.RESUME]


class Command(BaseCommand):
    help = (
        "Operate django_jobs: " + ", ".join(s.name for s in SUBCOMMANDS)
        if SUBCOMMANDS
        else ("Operate django_jobs.")
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default", help="Database alias to use.")
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        for sub in SUBCOMMANDS:
            sub_parser = subparsers.add_parser(sub.name, help=sub.help, description=sub.help)
            sub.add_arguments(sub_parser)

    def handle(self, *args: Any, **options: Any) -> None:
        by_name = {sub.name: sub for sub in SUBCOMMANDS}
        name = options.get("subcommand")
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none yet"
            raise CommandError(f"give a subcommand: {known}")
        by_name[name].handle(self, options)
