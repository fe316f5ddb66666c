"""pytest fixtures ``jobs`` and ``outbox`` (registered by the ``pytest11``
entry point of this distribution, so installing it is enough).

A module of its own, outside :mod:`django_jobs.testing`: pytest imports it
before Django is set up, so it must import nothing that defines models.

Both need pytest-django's database: they request ``db``, so a test under
``@pytest.mark.django_db(transaction=True)`` gets that mode and any other
test a ``TestCase``-like transaction, rolled back at the end. The test clock
is reset after each test that used ``jobs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def jobs(db: Any) -> Iterator[Any]:
    """Run and assert jobs in the test's process: ``jobs.run_jobs()``,
    ``jobs.assert_enqueued(task, args=...)``, ``jobs.clock.advance(...)``."""
    # Imported when used: the plugin is loaded before Django is set up.
    from django_jobs.testing.helpers import JobsHelper

    helper = JobsHelper()
    try:
        yield helper
    finally:
        helper.clock.reset()


@pytest.fixture
def outbox(db: Any) -> Any:
    """Assert published events: ``outbox.assert_published("order.created", ...)``."""
    # Imported when used: the plugin is loaded before Django is set up.
    from django_jobs.testing.helpers import OutboxHelper

    return OutboxHelper()
