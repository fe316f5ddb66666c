"""``unittest`` mixins for Django's ``TestCase`` / ``TransactionTestCase``.

.. code-block:: python

    class CheckoutTests(JobsTestMixin, TestCase):
        def test_sends_receipt(self):
            checkout(order)
            self.assertEnqueued(send_receipt, args=[order.pk])
            self.run_jobs()

``jobs_database`` picks the alias (list it in ``databases`` too). The test
clock (``self.clock``) is reset after each test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS

from django_jobs.testing.clock import Clock
from django_jobs.testing.helpers import JobsHelper, OutboxHelper
from django_jobs.worker.inline import JobRun

if TYPE_CHECKING:
    from django_jobs.models import Job, OutboxEvent
    from django_jobs.tasks import Task


class JobsTestMixin:
    """``self.run_jobs()``, ``self.assertEnqueued()``, ``self.assertNotEnqueued()``,
    ``self.enqueued_jobs()``, ``self.assertPublished()``, ``self.assertNotPublished()``,
    ``self.clock``."""

    jobs_database: str = DEFAULT_DB_ALIAS

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self._jobs = JobsHelper(self.jobs_database)
        self._outbox = OutboxHelper(self.jobs_database)
        self.addCleanup(self._jobs.clock.reset)  # type: ignore[attr-defined]

    @property
    def clock(self) -> Clock:
        return self._jobs.clock

    def run_jobs(
        self, queue: str | Sequence[str] | None = None, until_empty: bool = True, **options: Any
    ) -> list[JobRun]:
        return self._jobs.run_jobs(queue, until_empty, **options)

    def enqueued_jobs(self, task: Task[Any, Any] | str | None = None, **options: Any) -> list[Job]:
        return self._jobs.enqueued_jobs(task, **options)

    def assertEnqueued(
        self,
        task: Task[Any, Any] | str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        count: int | None = None,
        **options: Any,
    ) -> list[Job]:
        return self._jobs.assert_enqueued(task, args, kwargs, count, **options)

    def assertNotEnqueued(self, task: Task[Any, Any] | str) -> None:
        self._jobs.assert_not_enqueued(task)

    def assertPublished(self, topic: str, *args: Any, **kwargs: Any) -> list[OutboxEvent]:
        return self._outbox.assert_published(topic, *args, **kwargs)

    def assertNotPublished(self, topic: str) -> None:
        self._outbox.assert_not_published(topic)
