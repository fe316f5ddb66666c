"""Claimed jobs waiting for a free thread or child, and how long jobs take.

Both executor pools keep their not-yet-started jobs in a :class:`Backlog`:
the worker claims a little more than its free slots (prefetch) so threads
never sit idle while it talks to the database. A backlog is ordered like the
claim (priority, then run_after, then id), so a later claim of more urgent
jobs still runs first, and it knows how long each job has waited, so the
worker can hand back jobs it is hoarding (see ``Worker._hand_back_stale``).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime

from django_jobs.rows import ClaimedJob

_Entry = tuple[tuple[int, datetime, int], int, float, ClaimedJob]


class Backlog:
    """Claimed jobs not started yet, most urgent first. Not thread-safe: the
    executor holds its own lock around every call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._heap: list[_Entry] = []
        self._serial = itertools.count()
        self._clock = clock  # settable for tests

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, job: ClaimedJob) -> None:
        key = (-job.priority, job.run_after, job.id)
        heapq.heappush(self._heap, (key, next(self._serial), self._clock(), job))

    def pop(self) -> ClaimedJob:
        return heapq.heappop(self._heap)[3]

    def jobs(self) -> list[ClaimedJob]:
        return [entry[3] for entry in self._heap]

    def take_waiting(self, longer_than: float, *, keep: int = 0) -> list[ClaimedJob]:
        """Remove and return jobs queued more than ``longer_than`` seconds ago,
        except the ``keep`` most urgent ones (they start as soon as a slot that
        is free right now is ready, e.g. a child process still starting)."""
        cutoff = self._clock() - longer_than
        if not any(entry[2] <= cutoff for entry in self._heap):
            return []  # the common case, checked on every worker loop: nothing to sort
        ordered = sorted(self._heap)
        kept, rest = ordered[: max(keep, 0)], ordered[max(keep, 0) :]
        stale = [entry for entry in rest if entry[2] <= cutoff]
        if stale:
            self._heap = kept + [entry for entry in rest if entry[2] > cutoff]
            heapq.heapify(self._heap)
        return [entry[3] for entry in stale]


class RuntimeMeter:
    """Exponentially weighted mean of recent job run times, in seconds."""

    WEIGHT = 0.1  # each new sample moves the mean by 10%: about the last 20 jobs count

    def __init__(self) -> None:
        self.mean: float | None = None

    def add(self, seconds: float) -> None:
        self.mean = (
            seconds if self.mean is None else self.mean + self.WEIGHT * (seconds - self.mean)
        )
