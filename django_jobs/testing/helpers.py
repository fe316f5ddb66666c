"""The helpers bound to one database alias: what the pytest fixtures ``jobs``
and ``outbox`` return and what :class:`~django_jobs.testing.mixins.JobsTestMixin`
delegates to. Their methods take the module functions' names and arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS

from django_jobs import testing
from django_jobs.testing.clock import Clock
from django_jobs.worker.inline import JobRun

if TYPE_CHECKING:
    from django_jobs.models import Job, OutboxEvent
    from django_jobs.tasks import Task


class JobsHelper:
    """``jobs``: run and inspect jobs of ``database``; ``clock`` is the test clock."""

    def __init__(self, database: str = DEFAULT_DB_ALIAS) -> None:
        self.database = database
        self.clock: Clock = testing.clock

    def run_jobs(
        self,
        queue: str | Sequence[str] | None = None,
        until_empty: bool = True,
        **options: Any,
    ) -> list[JobRun]:
        options.setdefault("database", self.database)
        return testing.run_jobs(queue, until_empty, **options)

    def _db(self, task: Task[Any, Any] | str) -> str:
        if isinstance(task, str) or task.database == DEFAULT_DB_ALIAS:
            return self.database
        return task.database

    def enqueued_jobs(self, task: Task[Any, Any] | str | None = None, **options: Any) -> list[Job]:
        options.setdefault("database", self._db(task) if task is not None else self.database)
        return testing.enqueued_jobs(task, **options)

    def assert_enqueued(
        self,
        task: Task[Any, Any] | str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        count: int | None = None,
        **options: Any,
    ) -> list[Job]:
        options.setdefault("database", self._db(task))
        return testing.assert_enqueued(task, args, kwargs, count, **options)

    def assert_not_enqueued(self, task: Task[Any, Any] | str) -> None:
        testing.assert_not_enqueued(task, database=self._db(task))


class OutboxHelper:
    """``outbox``: inspect events published to ``database``'s outbox."""

    def __init__(self, database: str = DEFAULT_DB_ALIAS) -> None:
        self.database = database

    def published(self, topic: str | None = None) -> list[OutboxEvent]:
        return testing.published_events(topic, database=self.database)

    def assert_published(self, topic: str, *args: Any, **kwargs: Any) -> list[OutboxEvent]:
        kwargs.setdefault("database", self.database)
        return testing.assert_published(topic, *args, **kwargs)

    def assert_not_published(self, topic: str) -> None:
        testing.assert_not_published(topic, database=self.database)
