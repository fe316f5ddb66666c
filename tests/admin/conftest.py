"""Admin test setup: throughput buckets are cached, so every test starts empty;
``frozen_now`` stops the clock for pages that print relative times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from django.core.cache import cache
from django.utils import timezone


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """``timezone.now()`` returns one instant for the whole test.

    Factories and pages then agree on "now", so "20 s ago" cannot become
    "21 s ago" on a loaded machine. (Database defaults still use the database clock.)
    """
    now = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now
