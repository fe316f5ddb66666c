"""Database engines: one implementation of :class:`~django_jobs.engine.base.Engine`
per database family. The worker, the admin and the outbox talk only to this
interface (and their own ORM querysets), never to raw SQL.

- ``base``: the interface, typed results and contracts; no queries.
- ``generic``: every operation through the Django ORM (any database).
- ``postgres`` (statements in ``postgres_sql``) / ``outbox_postgres``: raw SQL
  for PostgreSQL's hot paths, inheriting the rest from the ORM engines;
  ``pg``: their shared plumbing (prepared-statement cursor, NOTIFY channels);
  ``claimed``: the claimed-job columns, written once.
- ``outbox``: the outbox's ORM engine; ``instances``: model instances from rows.

All raw SQL of the package is in these modules (migrations aside). The
admin's read-only statements live here too, as ``Engine.distinct_names``
(index skip scans for the filter lists) and ``Engine.estimate_rows``
(PostgreSQL's EXPLAIN row estimate): moving them cost two methods, and keeps
the rule "raw SQL in one place per database" true with no exception to
remember. The admin keeps its portable ORM querysets (bounded counts, grouped
counts, throughput buckets): those are not SQL.
"""

from __future__ import annotations

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections

from django_jobs.engine.base import Engine
from django_jobs.engine.generic import GenericEngine


@cache
def _engine_for(alias: str, vendor: str) -> Engine:
    if vendor == "postgresql":
        # psycopg is an optional dependency: imported by PostgreSQL projects only.
        from django_jobs.engine.postgres import PostgresEngine

        return PostgresEngine(alias)
    return GenericEngine(alias)


def get_engine(alias: str = DEFAULT_DB_ALIAS) -> Engine:
    """The engine for database ``alias``."""
    return _engine_for(alias, connections[alias].vendor)


__all__ = ["Engine", "get_engine"]
