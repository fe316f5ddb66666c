"""Database engines: one implementation of :class:`~django_jobs.engine.base.Engine`
per database family. The worker, the admin and the outbox talk only to this
interface, never to SQL.
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
