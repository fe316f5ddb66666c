"""A quicker flush between transactional tests on PostgreSQL.

Django empties every table after each ``transaction=True`` test with one
``TRUNCATE`` of all of them, which on PostgreSQL makes new files for every
table and index: about 0.1 s a flush here, most of the PostgreSQL pass's
teardown time (83 s of tests/integration's 121 s). A ``DELETE`` of a nearly
empty table costs next to nothing. Tables that grew past ``TRUNCATE_FROM``
rows (as counted by the statistics collector) are still truncated, so that a
test which enqueued thousands of jobs leaves no dead rows behind for the next
tests to scan (autovacuum may be off on the test server).

The DELETEs run in the flush's transaction (``execute_sql_flush``); Django's
foreign keys on PostgreSQL are DEFERRABLE INITIALLY DEFERRED, so the order of
the tables does not matter. Flushes that reset sequences keep Django's own
statement.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql.operations import DatabaseOperations

TRUNCATE_FROM = 1000

_django_sql_flush = DatabaseOperations.sql_flush

_FLUSH = """
DO $flush$
DECLARE
    name text;
    big text[] := ARRAY(
        SELECT relname::text FROM pg_stat_user_tables
        WHERE relname = ANY(ARRAY[{names}]) AND n_live_tup + n_dead_tup >= {limit}
    );
BEGIN
    IF cardinality(big) > 0 THEN
        EXECUTE 'TRUNCATE ' || (SELECT string_agg(quote_ident(b), ', ') FROM unnest(big) b)
            || ' CASCADE';
    END IF;
    FOREACH name IN ARRAY ARRAY[{names}] LOOP
        IF NOT name = ANY(big) THEN
            EXECUTE 'DELETE FROM ' || quote_ident(name);
        END IF;
    END LOOP;
END
$flush$;
"""


def _sql_flush(
    self: DatabaseOperations,
    style: Any,
    tables: list[str],
    *,
    reset_sequences: bool = False,
    allow_cascade: bool = False,
) -> list[str]:
    if not tables or reset_sequences:
        return list(
            _django_sql_flush(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        )
    names = ", ".join("'" + table.replace("'", "''") + "'" for table in tables)
    return [_FLUSH.format(names=names, limit=TRUNCATE_FROM)]


def install() -> None:
    """Make PostgreSQL flushes in this process use ``_sql_flush``."""
    DatabaseOperations.sql_flush = _sql_flush  # type: ignore[method-assign]
