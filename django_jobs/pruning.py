"""Pruning of finished jobs: bounded batches, used by workers and ``prunejobs``.

Each batch is one short statement in its own transaction, so pruning millions
of rows never holds long locks or bloats one huge transaction, and it can stop
between any two batches. Dead letters are a separate table and survive.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone

from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"`` or ``"2w"``."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number of seconds or a number followed by "
            "s, m, h, d or w (e.g. 3600, 12h, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclasses.dataclass
class PruneProgress:
    """Where a pruning run stands; passed to the progress callback after each batch."""

    deleted: int = 0
    batches: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Jobs deleted per second so far."""
        return self.deleted / self.elapsed if self.elapsed > 0 else 0.0


class JobPruner:
    """Deletes finished jobs (SUCCESSFUL, FAILED, CANCELLED) older than a cutoff."""

    def __init__(self, database: str = "default", batch_size: int | None = None) -> None:
        self.database = database
        self.batch_size = int(jobs_settings.PRUNE_BATCH_SIZE if batch_size is None else batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")

    @staticmethod
    def cutoff(older_than: float | None = None) -> datetime | None:
        """Jobs finished before this time are pruned; None when retention is off."""
        if older_than is None:
            retention = jobs_settings.FINISHED_JOB_RETENTION
            if retention is None:
                return None
            older_than = float(retention)
        if older_than < 0:
            raise ValueError(f"the retention must not be negative, got {older_than:g}s")
        return timezone.now() - timedelta(seconds=older_than)

    def count(self, before: datetime) -> int:
        """How many jobs a run with this cutoff would delete."""
        return get_engine(self.database).count_finished(before)

    def vacuum(self) -> float | None:
        """Reclaim the pruned rows' space now (PostgreSQL: ``VACUUM (ANALYZE)``, which
        blocks no worker); the seconds it took, or None where there is nothing to run."""
        started = time.monotonic()
        if not get_engine(self.database).vacuum_jobs():
            return None
        return time.monotonic() - started

    def prune(
        self,
        before: datetime,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_batch: Callable[[PruneProgress], None] | None = None,
        pause: float = 0.0,
    ) -> PruneProgress:
        """Delete batch after batch until none is left or ``should_stop()``."""
        engine = get_engine(self.database)
        progress = PruneProgress()
        while not should_stop():
            deleted = engine.prune_finished(before, self.batch_size)
            if not deleted:
                break
            progress.deleted += deleted
            progress.batches += 1
            if on_batch is not None:
                on_batch(progress)
            if deleted < self.batch_size:
                break
            if pause:
                time.sleep(pause)
        return progress
