"""A clock for tests: freeze or advance what django_jobs takes for "now".

While frozen or advanced, :func:`django_jobs.clock.now` reads this clock:
``run_jobs()`` claims the jobs due at that time, retries are scheduled from
it, and a ``run_after`` timedelta given at enqueue counts from it. Neither
``time`` nor the database is patched: the database keeps its own clock and
the in-process claim is given this one's time as a parameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone

from django_jobs import clock as library_clock


class Clock:
    """Real time, or a frozen time, or real time plus an offset."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return timezone.now() + self._offset

    def _install(self) -> None:
        active = self._frozen is not None or self._offset != timedelta(0)
        library_clock.source = self.now if active else None

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at ``at`` (an aware datetime; default: its current time)."""
        if at is not None and timezone.is_naive(at):
            raise ValueError(f"the clock needs an aware datetime, got the naive {at!r}")
        self._frozen = at if at is not None else self.now()
        self._install()
        return self._frozen

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by ``delta`` (a timedelta or seconds); frozen stays frozen."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"the clock only moves forward, got {step}")
        if self._frozen is not None:
            self._frozen += step
        else:
            self._offset += step
        self._install()
        return self.now()

    @contextlib.contextmanager
    def frozen(self, at: datetime | None = None) -> Iterator[Clock]:
        """``with clock.frozen(at):`` frozen inside the block, as before after it."""
        saved = self._frozen, self._offset
        self.freeze(at)
        try:
            yield self
        finally:
            self._frozen, self._offset = saved
            self._install()

    def reset(self) -> None:
        """Back to the real time."""
        self._frozen, self._offset = None, timedelta(0)
        self._install()


clock = Clock()
