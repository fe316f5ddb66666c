"""Small HTML helpers shared by the admin pages: human times, statuses, JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_jobs.status import JobStatus

# Above this, pretty JSON is cut (a page must stay fast for a huge payload).
MAX_JSON_CHARS = 100_000


def human_seconds(seconds: float) -> str:
    """A compact duration: "45 ms", "12 s", "3 min", "2 h 5 min", "3 d 4 h"."""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes and hours < 10 else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def exact_time(value: datetime) -> str:
    """The full local time, for hover titles."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def relative_time(
    value: datetime | None, now: datetime | None = None, prefix: str = "", label: str = ""
) -> SafeString | str:
    """An HTML ``<time>``: "3 min ago" or "in 5 min"; "<label> <exact time>" on hover."""
    if value is None:
        return "-"
    now = now or timezone.now()
    delta = (value - now).total_seconds()
    if abs(delta) < 1:
        text = "just now"
    elif delta > 0:
        text = f"in {human_seconds(delta)}"
    else:
        text = f"{human_seconds(delta)} ago"
    title = f"{label} {exact_time(value)}" if label else exact_time(value)
    return format_html(
        '<time datetime="{}" title="{}">{}{}</time>', value.isoformat(), title, prefix, text
    )


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return human_seconds((end - start).total_seconds())


def status_label(
    status: str, run_after: datetime | None = None, now: datetime | None = None
) -> str:
    """The status shown to people: READY jobs due later are "Scheduled"."""
    if status == JobStatus.READY and run_after is not None and run_after > (now or timezone.now()):
        return "Scheduled"
    return str(JobStatus(status).label) if status in JobStatus.values else status


def status_badge(
    status: str, run_after: datetime | None = None, now: datetime | None = None
) -> SafeString:
    label = status_label(status, run_after, now)
    return format_html('<span class="jobs-status jobs-status-{}">{}</span>', label.lower(), label)


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in a ``<pre>``, cut at :data:`MAX_JSON_CHARS`."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    if len(text) > MAX_JSON_CHARS:
        text = text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS:,} more characters)"
    return format_html('<pre class="jobs-json">{}</pre>', text)


def short_task(task_name: str) -> SafeString:
    """``module.path.<b>function</b>``: the function name stands out."""
    module, _, name = task_name.rpartition(".")
    if not module:
        return format_html('<span class="jobs-task"><b>{}</b></span>', name)
    return format_html(
        '<span class="jobs-task" title="{}">'
        '<span class="jobs-module">{}.</span><wbr><b>{}</b></span>',
        task_name,
        module,
        name,
    )


def seconds_since(value: datetime | None, now: datetime | None = None) -> float | None:
    if value is None:
        return None
    return ((now or timezone.now()) - value) / timedelta(seconds=1)


def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp from a JSON error entry, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def attempt_errors(errors: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Error entries newest first, each with a human ``when``."""
    return [
        {**error, "when": relative_time(parse_time(error.get("at")))}
        for error in reversed(errors or [])
        if isinstance(error, dict)
    ]
