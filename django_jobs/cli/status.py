"""``manage.py jobs status [--watch [SECONDS]] [--json] [--queue Q]``.

One read of the database (:func:`~django_jobs.observability.snapshot.take_snapshot`:
bounded counts, planner estimates above ``ADMIN_EXACT_COUNT_LIMIT``, the
oldest due job from the claim index), the newest dead letters, and the
sections other features provide (:mod:`django_jobs.observability.sections`:
paused queues, open circuits). It is turned into one document
(:func:`status_document`), printed as aligned tables
(:mod:`django_jobs.cli.status_text`) or as JSON (``--json``).

The JSON document (``"version": 1``; keys are only ever added)::

    {"version": 1, "database": "default", "taken_at": "2026-12-02T15:40:01.123456+00:00",
     "queue_filter": ["default"] | null,
     "queues": [{"name", "ready", "scheduled", "running", "failed",
                 "exact": bool (false: some counts are planner estimates),
                 "oldest_ready_age_seconds": float | null}],
     "workers": [{"id", "hostname", "pid", "pool", "concurrency",
                  "queues": [..] ([]: every queue), "heartbeat_age_seconds",
                  "running", "stale": bool (heartbeat older than LEASE_SECONDS)}],
     "dead_letters": int (not retried, every queue),
     "latest_failures": [{"id", "job_id", "task", "queue", "error", "attempts",
                          "failed_at": iso, "retried": bool}],
     "outbox": {"pending", "failed", "oldest_pending_age_seconds"},
     "paused_queues": [{...}], "open_circuits": [{...}], ...every section}

``--watch`` prints one such document per line (JSON Lines) with ``--json``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from django_jobs.cli import Subcommand
from django_jobs.cli.status_text import render_text
from django_jobs.management.commands._options import Number, check_options, schema_errors
from django_jobs.observability import sections
from django_jobs.observability.snapshot import Snapshot, latest_failures, take_snapshot

VERSION = 1
# --watch without SECONDS redraws every this many seconds.
DEFAULT_WATCH = 2.0
NUMBERS = {"watch": Number(float, 0.2, 3600.0), "failures": Number(int, 0, 100)}
# ANSI: cursor home, clear screen (a terminal only).
CLEAR = "\x1b[H\x1b[2J"


def _matches(queue: str, wanted: list[str] | None) -> bool:
    return not wanted or queue in wanted


def _serves(worker_queues: list[str], wanted: list[str] | None) -> bool:
    return not wanted or not worker_queues or any(q in worker_queues for q in wanted)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def snapshot_part(snapshot: Snapshot, queues: list[str] | None) -> dict[str, Any]:
    return {
        "queues": [
            {
                "name": q.name,
                "ready": q.ready,
                "scheduled": q.scheduled,
                "running": q.running,
                "failed": q.failed,
                "exact": q.exact,
                "oldest_ready_age_seconds": _seconds(q.oldest_ready_age),
            }
            for q in snapshot.queues
            if _matches(q.name, queues)
        ],
        "workers": [
            {
                "id": str(w.id),
                "hostname": w.hostname,
                "pid": w.pid,
                "pool": w.pool,
                "concurrency": w.concurrency,
                "queues": w.queues,
                "heartbeat_age_seconds": _seconds(w.heartbeat_age),
                "running": w.running,
                "stale": w.stale,
            }
            for w in snapshot.workers
            if _serves(w.queues, queues)
        ],
        "dead_letters": snapshot.dead_letters,
        "outbox": {
            "pending": snapshot.outbox.get("PENDING", 0),
            "failed": snapshot.outbox.get("FAILED", 0),
            "oldest_pending_age_seconds": _seconds(snapshot.outbox_oldest_pending_age),
        },
    }


def section_rows(alias: str, queues: list[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Every provided section; rows with a ``queue`` field follow ``--queue``."""
    return {
        section.key: [
            row
            for row in section.read(alias)
            if "queue" not in row or _matches(str(row["queue"]), queues)
        ]
        for section in sections.SECTIONS
    }


def status_document(
    alias: str = "default", queues: list[str] | None = None, failures: int = 10
) -> dict[str, Any]:
    """The state of ``alias`` as the documented JSON-ready dict (schema above)."""
    snapshot = take_snapshot(alias)
    document: dict[str, Any] = {
        "version": VERSION,
        "database": alias,
        "taken_at": snapshot.taken_at.isoformat(),
        "queue_filter": queues or None,
        **snapshot_part(snapshot, queues),
        "latest_failures": [
            {
                "id": f.id,
                "job_id": f.job_id,
                "task": f.task,
                "queue": f.queue,
                "error": f.error,
                "attempts": f.attempts,
                "failed_at": f.failed_at.isoformat(),
                "retried": f.retried,
            }
            for f in (latest_failures(alias, failures, queues) if failures else [])
        ],
    }
    document.update(section_rows(alias, queues))
    return document


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_WATCH,
        default=None,
        type=NUMBERS["watch"],
        metavar="SECONDS",
        help=f"Redraw every SECONDS (default {DEFAULT_WATCH:g}; 0.2 to 3600) until Ctrl-C.",
    )
    parser.add_argument(
        "--json", action="store_true", help="Print JSON (one document per line with --watch)."
    )
    parser.add_argument(
        "--queue",
        "-q",
        action="append",
        dest="queues",
        metavar="NAME",
        help="Show this queue only (repeatable): its counts, the workers serving it, its failures.",
    )
    parser.add_argument(
        "--failures",
        type=NUMBERS["failures"],
        default=10,
        metavar="N",
        help="Latest dead letters shown (default 10, 0 to 100).",
    )


def _frame(command: BaseCommand, options: dict[str, Any], colour: bool) -> str:
    document = status_document(options["database"], options.get("queues"), options["failures"])
    if options["json"]:
        return json.dumps(document, sort_keys=False) + "\n"
    return render_text(document, command.style if colour else None)


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    options.setdefault("failures", 10)
    check_options(options, NUMBERS)
    alias = options["database"]
    tty = command.stdout.isatty()
    colour = tty and not options.get("no_color")
    if options.get("watch") is None:
        try:
            with schema_errors(alias):  # no tables: "run migrate"; an outage passes through
                command.stdout.write(_frame(command, options, colour), ending="")
        except DatabaseError as exc:
            connections[alias].close()
            problem = f"{type(exc).__name__}: {exc}".strip()
            raise CommandError(f"database {alias!r} unavailable: {problem}") from exc
        return
    try:
        watch(command, options, colour, clear=tty and not options["json"])
    except KeyboardInterrupt:
        command.stdout.write("")  # end the line the ^C was echoed on


def watch(command: BaseCommand, options: dict[str, Any], colour: bool, clear: bool) -> None:
    """Redraw every ``--watch`` seconds until interrupted; an outage shows, then passes."""
    alias, interval = options["database"], float(options["watch"])
    while True:
        started = time.monotonic()
        try:
            frame = _frame(command, options, colour)
        except DatabaseError as exc:
            connections[alias].close()  # reconnect on the next redraw
            problem = f"database {alias!r} unavailable: {type(exc).__name__}: {exc}".strip()
            frame = (
                json.dumps({"version": VERSION, "database": alias, "error": problem}) + "\n"
                if options["json"]
                else problem + f"\n(retrying every {interval:g}s, Ctrl-C to stop)\n"
            )
        if clear:
            frame = CLEAR + frame
        elif not options["json"]:
            frame += "\n"
        command.stdout.write(frame, ending="")
        command.stdout.flush()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


status = Subcommand(
    name="status",
    help="Show queues, workers, the latest failures, paused queues and open circuits.",
    add_arguments=add_arguments,
    handle=handle,
)
