"""Row counts that never run ``COUNT(*)`` over a big table.

:func:`count_rows` answers "how many rows match this queryset" for admin
pages. Up to ``ADMIN_EXACT_COUNT_LIMIT`` rows the answer is exact; above it,
PostgreSQL answers with an estimate:

- unfiltered: ``pg_class.reltuples`` (kept current by autovacuum / ANALYZE);
- filtered: a *bounded* count first (``COUNT(*)`` over a ``LIMIT limit + 1``
  subquery reads at most limit + 1 rows), then, only when it overflows, the
  planner's row estimate from ``EXPLAIN``.

Other databases (SQLite in development) always get exact counts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

from django_jobs.conf import jobs_settings

logger = logging.getLogger("django_jobs.admin")

if TYPE_CHECKING:
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator

# The planner's statistics for a whole table: no rows are read. reltuples is
# -1 for a table never vacuumed or analyzed (PostgreSQL 14+); callers fall
# back to counting then. Read-only catalog lookup: safe under any concurrency.
PG_TABLE_ESTIMATE = "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)"

# Prefix for the ORM's own SELECT (its parameters stay bound): the planner's
# estimate of the rows the query returns, without running it.
PG_EXPLAIN_PREFIX = "EXPLAIN (FORMAT JSON) "


@dataclasses.dataclass(frozen=True, slots=True)
class RowCount:
    """A number of rows; ``exact`` False means a planner estimate."""

    value: int
    exact: bool = True

    def __str__(self) -> str:
        text = f"{self.value:,}"
        return text if self.exact else f"≈{text}"


def total(counts: Iterable[RowCount]) -> RowCount:
    """The sum; exact only if every part is."""
    counts = list(counts)
    return RowCount(sum(c.value for c in counts), all(c.exact for c in counts))


def exact_limit() -> int:
    return int(jobs_settings.ADMIN_EXACT_COUNT_LIMIT)


def bounded_count(queryset: QuerySet[Any], limit: int) -> int:
    """Exact count, but reading at most ``limit + 1`` rows."""
    return queryset.order_by()[: limit + 1].count()


def table_estimate(queryset: QuerySet[Any]) -> int | None:
    """``pg_class.reltuples`` of the queryset's table, None if unknown."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(PG_TABLE_ESTIMATE, [queryset.model._meta.db_table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of the rows ``queryset`` returns (no rows read)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(PG_EXPLAIN_PREFIX + sql, params)
        plan: Any = cursor.fetchone()[0]
    if isinstance(plan, str | bytes):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def count_rows(queryset: QuerySet[Any], limit: int | None = None) -> RowCount:
    """Exact up to ``limit`` (default ``ADMIN_EXACT_COUNT_LIMIT``), estimated above."""
    limit = exact_limit() if limit is None else limit
    if connections[queryset.db].vendor != "postgresql":
        return RowCount(queryset.count())
    if not queryset.query.where:
        estimate = table_estimate(queryset)
        if estimate is not None and estimate > limit:
            return RowCount(estimate, exact=False)
    counted = bounded_count(queryset, limit)
    if counted <= limit:
        return RowCount(counted)
    # More rows than we are willing to count: the estimate is at least what we saw.
    return RowCount(max(planner_estimate(queryset), counted), exact=False)


class EstimatedCountPaginator(PaginatorBase):
    """A paginator whose ``count`` comes from :func:`count_rows`.

    ``count_is_estimate`` tells templates to say "about N".
    """

    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        rows = count_rows(object_list)
        self.count_is_estimate = not rows.exact
        return rows.value

    def validate_number(self, number: Any) -> int:
        # An estimate can promise more pages than there are: a page past the
        # real end is empty (Django's page() slices an empty list), not an error.
        self.count  # noqa: B018 - sets count_is_estimate
        if not self.count_is_estimate:
            return int(super().validate_number(number))
        try:
            value = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if value < 1:
            raise EmptyPage("That page number is less than 1")
        return value


def model_count(model: type[Model], alias: str = "default") -> RowCount:
    """Rows in ``model``'s table (estimated when big)."""
    return count_rows(model._default_manager.using(alias).all())
