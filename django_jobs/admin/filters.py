"""List filters whose choices never come from ``SELECT DISTINCT`` over a big table,
and the exact-match search the admin pages share.

Statuses are fixed; task and queue names come from an index skip scan
(:mod:`django_jobs.stats`). Each filter narrows the list with an
indexed column, so the filtered page reads ~one page of index entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest

from django_jobs import stats
from django_jobs.status import JobStatus

SCHEDULED = "SCHEDULED"


class JobStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (JobStatus.READY, "Ready (due or scheduled)"),
            (SCHEDULED, "Scheduled (run later)"),
            (JobStatus.RUNNING, "Running"),
            (JobStatus.SUCCESSFUL, "Successful"),
            (JobStatus.FAILED, "Failed"),
            (JobStatus.CANCELLED, "Cancelled"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == SCHEDULED:
            return queryset.filter(status=JobStatus.READY, run_after__gt=Now())
        if value in JobStatus.values:
            return queryset.filter(status=value)
        return queryset


class _NameFilter(admin.SimpleListFilter):
    """Exact match on an indexed name column; choices from a skip scan.

    A subclass names the column (``field``) and where its distinct values come
    from (``distinct_names``, a :mod:`~django_jobs.stats` function of the
    database alias).
    """

    field: ClassVar[str]
    distinct_names: ClassVar[Callable[[str], list[str]]]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Through the class: a function stored on it is not bound to the filter.
        names = type(self).distinct_names(model_admin.get_queryset(request).db)
        current = self.value()
        if current and current not in names:
            names.append(current)  # a value typed into the URL stays selectable
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class _QueueFilter(_NameFilter):
    title = "queue"
    parameter_name = "queue"
    field = "queue_name"


class _TaskFilter(_NameFilter):
    title = "task"
    parameter_name = "task"
    field = "task_name"


class JobQueueFilter(_QueueFilter):
    distinct_names = stats.queue_names


class JobTaskFilter(_TaskFilter):
    distinct_names = stats.task_names


class DeadLetterQueueFilter(_QueueFilter):
    distinct_names = stats.dead_letter_queue_names


class DeadLetterTaskFilter(_TaskFilter):
    distinct_names = stats.dead_letter_task_names


class RetriedFilter(admin.SimpleListFilter):
    title = "retried"
    parameter_name = "retried"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Not retried yet"), ("yes", "Retried")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return queryset.filter(retried_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(retried_at__isnull=False)
        return queryset


M = TypeVar("M", bound=Model)


def exact_search(queryset: QuerySet[M], search_term: str, key_field: str) -> QuerySet[M]:
    """Admin search by exact id (``17`` or ``#17``) or exact ``key_field`` value.

    Both are indexed: no ILIKE scan over a table of millions of rows.
    """
    term = search_term.strip()
    if not term:
        return queryset
    match = Q(**{key_field: term})
    number = term.removeprefix("#")
    if number.isdigit() and len(number) < 19:  # fits a bigint
        match |= Q(pk=int(number))
    return queryset.filter(match)
