"""Server-rendered SVG bar charts: no JavaScript library, no CDN, works offline.

:func:`bar_chart` turns throughput buckets into geometry; the template
``admin/django_jobs/includes/bar_chart.html`` draws it. Each bar stacks
failed (bottom, red) under succeeded (green) and has a hover title.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from django.utils import timezone

from django_jobs.stats import Bucket

WIDTH = 480
HEIGHT = 150
BOTTOM = 20  # room for the x axis labels
TOP = 8
# The y axis labels are right-aligned LABEL_GAP left of the plot, in a gutter
# as wide as the widest label: CHAR_WIDTH is a generous width of one digit at
# the 11px chart font (a comma is narrower), MARGIN keeps it off the edge.
CHAR_WIDTH = 7
LABEL_GAP = 6
MARGIN = 4


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    left: int
    label_x: int
    plot_bottom: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    succeeded: int
    failed: int
    cancelled: int

    @property
    def legend(self) -> tuple[str, str]:
        """The succeeded and failed totals as shown ("12,345")."""
        return f"{self.succeeded:,}", f"{self.failed:,}"


def nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 4:
        return 4
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def bar_chart(title: str, buckets: Sequence[Bucket], label_format: str, label_every: int) -> Chart:
    """Geometry for a stacked bar chart of ``buckets`` (oldest first)."""
    plot_height = HEIGHT - BOTTOM - TOP
    plot_bottom = float(HEIGHT - BOTTOM)
    top = nice_max(max((b.succeeded + b.failed for b in buckets), default=0))
    y_ticks = [
        Tick(round(plot_bottom - plot_height * fraction, 2), f"{int(top * fraction):,}")
        for fraction in (0, 0.5, 1)
    ]
    left = MARGIN + CHAR_WIDTH * max(len(t.label) for t in y_ticks) + LABEL_GAP
    slot = (WIDTH - left) / max(len(buckets), 1)
    gap = 1.0 if slot > 4 else 0.0
    bars, x_ticks = [], []
    for index, bucket in enumerate(buckets):
        x = left + index * slot
        failed_h = plot_height * bucket.failed / top
        ok_h = plot_height * bucket.succeeded / top
        local = timezone.localtime(bucket.start)
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                width=round(slot - gap, 2),
                failed_y=round(plot_bottom - failed_h, 2),
                failed_height=round(failed_h, 2),
                ok_y=round(plot_bottom - failed_h - ok_h, 2),
                ok_height=round(ok_h, 2),
                title=(
                    f"{local:%Y-%m-%d %H:%M}: {bucket.succeeded:,} succeeded, "
                    f"{bucket.failed:,} failed, {bucket.cancelled:,} cancelled"
                ),
            )
        )
        if index % label_every == 0:
            x_ticks.append(Tick(round(x + slot / 2, 2), local.strftime(label_format)))
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        left=left,
        label_x=left - LABEL_GAP,
        plot_bottom=plot_bottom,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        succeeded=sum(b.succeeded for b in buckets),
        failed=sum(b.failed for b in buckets),
        cancelled=sum(b.cancelled for b in buckets),
    )
