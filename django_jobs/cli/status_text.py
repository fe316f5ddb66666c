"""The terminal rendering of ``jobs status``: aligned tables from the status document.

Works on the JSON-ready document of :func:`django_jobs.cli.status.status_document`,
so the table and ``--json`` can never disagree. Colours (Django's command
style) only when given one, which ``jobs status`` does for a terminal only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django_jobs.observability import sections

Styler = Callable[[str], str]
# Narrowest error column before the error is cut.
MIN_ERROR_WIDTH = 20
# Columns whose values are right-aligned (numbers).
NUMERIC = {"READY", "SCHEDULED", "RUNNING", "FAILED", "JOB", "CONCURRENCY", "HELD"}


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h03m``, ``4d02h``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    for size, unit, sub_size, sub_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{(whole % size) // sub_size:02d}{sub_unit}"
    return f"{whole}s"


def count(value: int, exact: bool = True) -> str:
    return f"{value:,}" if exact else f"≈{value:,}"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[Styler | None] | None = None,
) -> list[str]:
    """Aligned lines: a header, then the rows (``styles[i]`` styles row i, after padding)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if headers[i] in NUMERIC else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    lines = [line(headers)]
    for index, row in enumerate(rows):
        text = line(row)
        style = styles[index] if styles else None
        lines.append(style(text) if style else text)
    return lines


def first_line(text: str, width: int) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


def _queues(document: dict[str, Any], warn: Styler | None) -> list[str]:
    queues = document["queues"]
    if not queues:
        return ["none"]
    rows = [
        [
            q["name"],
            count(q["ready"], q["exact"]),
            count(q["scheduled"], q["exact"]),
            count(q["running"], q["exact"]),
            count(q["failed"], q["exact"]),
            duration(q["oldest_ready_age_seconds"]),
        ]
        for q in queues
    ]
    lines = table(
        ("QUEUE", "READY", "SCHEDULED", "RUNNING", "FAILED", "OLDEST READY"),
        rows,
        [warn if q["failed"] else None for q in queues],
    )
    if not all(q["exact"] for q in queues):
        lines.append("≈: PostgreSQL's estimate (above ADMIN_EXACT_COUNT_LIMIT rows)")
    return lines


def _workers(document: dict[str, Any], error: Styler | None) -> list[str]:
    workers = document["workers"]
    if not workers:
        return ["none"]
    rows = [
        [
            f"{w['hostname']}:{w['pid']}",
            w["pool"],
            ",".join(w["queues"]) or "*",
            duration(w["heartbeat_age_seconds"]) + " ago",
            str(w["concurrency"]),
            f"{w['running']:,}",
            "STALE" if w["stale"] else "live",
        ]
        for w in workers
    ]
    # HELD: RUNNING rows the worker owns, prefetched claims included (so it
    # can exceed CONCURRENCY while jobs are quick; see PREFETCH).
    return table(
        ("WORKER", "POOL", "QUEUES", "HEARTBEAT", "CONCURRENCY", "HELD", "STATE"),
        rows,
        [error if w["stale"] else None for w in workers],
    )


def _failures(document: dict[str, Any], taken_at: datetime, width: int) -> list[str]:
    failures = document["latest_failures"]
    if not failures:
        return ["none"]
    rows = [
        [
            duration((taken_at - datetime.fromisoformat(f["failed_at"])).total_seconds()) + " ago",
            str(f["job_id"]),
            f["task"],
            f["queue"],
            f["error"],
        ]
        for f in failures
    ]
    headers = ("WHEN", "JOB", "TASK", "QUEUE", "ERROR")
    # The error takes what the terminal has left after the other columns.
    used = sum(max(len(headers[i]), *(len(r[i]) for r in rows)) + 2 for i in range(4))
    room = max(MIN_ERROR_WIDTH, width - used)
    for row, failure in zip(rows, failures, strict=True):
        prefix = "(retried) " if failure["retried"] else ""
        row[4] = first_line(prefix + row[4], room)
    return table(headers, rows)


def _section(key: str, document: dict[str, Any]) -> list[str]:
    rows = document.get(key) or []
    if not rows:
        return ["none"]
    found = next((s for s in sections.SECTIONS if s.key == key), None)
    columns = list(found.columns) if found else sorted({k for row in rows for k in row})
    cells = [["-" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    return table([c.upper().replace("_", " ") for c in columns], cells)


def render_text(document: dict[str, Any], style: Any = None, width: int | None = None) -> str:
    """The document as titled, aligned tables (``style``: Django's command style or None)."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    heading: Styler | None = style.MIGRATE_HEADING if style else None
    taken_at = datetime.fromisoformat(document["taken_at"])
    only = f"  queues: {', '.join(document['queue_filter'])}" if document["queue_filter"] else ""
    at = f"{taken_at:%Y-%m-%d %H:%M:%S %Z}"
    out = [f"django_jobs status: database {document['database']!r} at {at}{only}"]

    def block(title: str, lines: list[str]) -> None:
        out.append("")
        out.append(heading(title) if heading else title)
        out.extend(lines)

    workers = document["workers"]
    stale = sum(1 for w in workers if w["stale"])
    block("Queues", _queues(document, style.WARNING if style else None))
    block(
        f"Workers ({len(workers) - stale} live, {stale} stale)",
        _workers(document, style.ERROR if style else None),
    )
    block(
        f"Latest failures ({document['dead_letters']:,} dead letters not retried)",
        _failures(document, taken_at, width),
    )
    outbox = document["outbox"]
    block(
        "Outbox",
        [
            f"{outbox['pending']:,} pending, {outbox['failed']:,} failed, "
            f"oldest pending {duration(outbox['oldest_pending_age_seconds'])}"
        ],
    )
    for section in sections.SECTIONS:
        block(section.title, _section(section.key, document))
    return "\n".join(out) + "\n"
