"""Row counts that never run ``COUNT(*)`` over a big table.

:func:`count_rows` answers "how many rows match this queryset" for the admin
pages, ``jobs status``, the metrics and the alerts, with one rule: **a count
is never lower than what the page can prove.** So every count starts as a
*bounded* count: ``COUNT(*)`` over a ``LIMIT bound + 1`` subquery, which
reads at most bound + 1 rows (an index or the first heap pages; about 10,001
index entries take a few ms, so every page stays fast at 1,000,000 rows). At
or below the bound (``ADMIN_EXACT_COUNT_LIMIT``) that *is* the exact answer,
and the paginator reaches every row. Only when it overflows does PostgreSQL's
planner estimate come in, and then as ``max(estimate, bound + 1)``: the
planner knows nothing about a table never analyzed (``reltuples`` -1, or 0
after a VACUUM of an empty table) and guesses a few hundred rows from its
size, and a stale estimate can be far behind a fast-growing table. Shown as
"≈".

Other databases (SQLite in development) always get exact counts. The
estimate's SQL (EXPLAIN) is the engine's (``Engine.estimate_rows``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

from django_jobs.conf import jobs_settings
from django_jobs.engine import get_engine

logger = logging.getLogger("django_jobs.counts")

if TYPE_CHECKING:
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator


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


def count_rows(queryset: QuerySet[Any], limit: int | None = None) -> RowCount:
    """Exact up to ``limit`` (default ``ADMIN_EXACT_COUNT_LIMIT``), estimated above.

    An estimate is never below ``limit + 1``, the number of rows the bounded
    count saw: whatever the planner believes, the page has proved that many.
    """
    limit = exact_limit() if limit is None else limit
    engine = get_engine(queryset.db)
    if not engine.estimates_rows:
        return RowCount(queryset.count())
    counted = bounded_count(queryset, limit)
    if counted <= limit:
        return RowCount(counted)
    # EXPLAIN rather than raw pg_class.reltuples, also unfiltered: the planner
    # scales reltuples by the table's current size in pages, so it follows
    # growth since the last ANALYZE; for a table never analyzed it guesses.
    return RowCount(max(engine.estimate_rows(queryset), counted), exact=False)


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
