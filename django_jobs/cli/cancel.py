"""``manage.py jobs cancel ID [ID...]``: cancel jobs by id.

A READY job ends CANCELLED at once; a RUNNING one gets ``cancel_requested_at``
and its worker stops it within a heartbeat interval (see docs/howto/cancel.md).
Every id is checked first: an unknown id, a finished job or a malformed id
fails the whole command with nothing written.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.cli import Subcommand
from django_jobs.engine import get_engine
from django_jobs.models import Job
from django_jobs.status import FINISHED_STATUSES


def _add_arguments(parser: CommandParser) -> None:
    parser.add_argument("ids", nargs="+", metavar="ID", help="Ids of the jobs to cancel.")


def parse_ids(raw: list[str]) -> list[int]:
    """The ids as integers, in order and without repeats; CommandError naming a bad one."""
    ids: list[int] = []
    for text in raw:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value <= 0 or not text.strip().isdigit():
            raise CommandError(f"job ids are positive integers, got {text!r}; nothing cancelled")
        if value not in ids:
            ids.append(value)
    return ids


def _handle(command: BaseCommand, options: dict[str, Any]) -> None:
    database = options["database"]
    ids = parse_ids(options["ids"])
    found = dict(Job.objects.using(database).filter(pk__in=ids).values_list("pk", "status"))
    problems = [f"job {i} does not exist" for i in ids if i not in found]
    problems += [
        f"job {i} has finished ({found[i]}) and cannot be cancelled"
        for i in ids
        if found.get(i) in FINISHED_STATUSES
    ]
    if problems:
        raise CommandError("; ".join(problems) + "; nothing cancelled")
    report = get_engine(database).cancel(ids)
    for job_id in report.cancelled:
        command.stdout.write(command.style.SUCCESS(f"job {job_id} cancelled"))
    for job_id in report.requested:
        command.stdout.write(
            command.style.SUCCESS(
                f"job {job_id} is running: cancel requested; its worker stops it within "
                "a few seconds and it ends CANCELLED"
            )
        )
    # Finished between the check above and the cancel: its outcome stands.
    missed = [i for i in ids if i not in report.cancelled and i not in report.requested]
    if missed:
        raise CommandError(
            ", ".join(f"job {i}" for i in missed) + " finished meanwhile and was not cancelled"
        )


SUBCOMMAND = Subcommand(
    name="cancel",
    help="Cancel jobs by id: READY ones at once, RUNNING ones are stopped by their worker.",
    add_arguments=_add_arguments,
    handle=_handle,
)
