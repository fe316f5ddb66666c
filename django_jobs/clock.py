"""The time django_jobs decides with in Python: ``now()``.

Python-side decisions (a ``run_after`` timedelta counted at enqueue, a retry's
time, an error entry's time) read :func:`now`, which is Django's
``timezone.now()`` unless a test clock (``django_jobs.testing.clock``) is
installed. Times decided in SQL (PostgreSQL's ``now()``) are the database's;
the in-process claim of ``django_jobs.testing.run_jobs`` is given its time
explicitly (``Engine.claim_jobs_at``), so nothing here patches either clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

# None: the real clock. Set by django_jobs.testing's Clock while frozen or advanced.
source: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time for django_jobs' own decisions (aware)."""
    return timezone.now() if source is None else source()
