"""Extra sections of ``manage.py jobs status``, provided by other features.

``jobs status`` always shows the sections listed in :data:`SECTIONS`; each is a
title, its columns and a *provider*: a function of the database alias that
returns the section's rows (dicts keyed by the columns, JSON-serializable
values). A section whose feature is not installed has no provider and shows
"none" (an empty list in ``--json``), so scripts can rely on its key.

A feature fills its section once, at import time of a module the ``jobs``
command imports (its own ``django_jobs/cli/<module>.py``) or from
``AppConfig.ready()``::

    from django_jobs.observability import sections

    sections.provide(
        "paused_queues",
        columns=("queue", "paused_at", "paused_by"),
        rows=lambda alias: [...],
    )

A provider runs on every redraw of ``jobs status --watch``: keep it to an
indexed read or two. Nothing here imports a model (a leaf module).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SECTIONS", "Row", "Section", "provide"]

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Section:
    """One section of ``jobs status``: ``key`` is its key in ``--json``."""

    key: str
    title: str
    columns: tuple[str, ...]
    # alias -> rows; None: the feature providing it is not installed ("none").
    rows: Callable[[str], list[Row]] | None = None

    def read(self, alias: str) -> list[Row]:
        return [] if self.rows is None else list(self.rows(alias))


# In display order. Flow control fills the first two (pause/resume, circuit breakers).
SECTIONS: list[Section] = [
    Section("paused_queues", "Paused queues", ("queue",)),
    Section("open_circuits", "Open circuits", ("circuit",)),
]


def provide(
    key: str,
    *,
    rows: Callable[[str], list[Row]],
    columns: Sequence[str],
    title: str | None = None,
) -> Section:
    """Set the provider of section ``key`` (added after the others if new)."""
    if not key.isidentifier():
        raise ValueError(f"a status section key must be an identifier, got {key!r}")
    if not columns:
        raise ValueError(f"status section {key!r} needs at least one column")
    for index, section in enumerate(SECTIONS):
        if section.key == key:
            SECTIONS[index] = dataclasses.replace(
                section, rows=rows, columns=tuple(columns), title=title or section.title
            )
            return SECTIONS[index]
    section = Section(key, title or key.replace("_", " ").capitalize(), tuple(columns), rows)
    SECTIONS.append(section)
    return section
