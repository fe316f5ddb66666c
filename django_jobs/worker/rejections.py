"""Statements the database rejects for good (a schema not migrated, a pooler
that loses prepared statements), told apart from passing errors (an outage),
with what to do about them."""

from __future__ import annotations

from django.db import DatabaseError, ProgrammingError

# What a connection pooler in transaction mode does to prepared statements:
# the server connection that prepared one is not the next one (26000
# invalid_sql_statement_name), or another client's "_pg3_0" is already there
# (42P05 duplicate_prepared_statement; PgBouncer 1.18 does both).
PREPARED_STATEMENT_SQLSTATES = frozenset({"26000", "42P05"})
PREPARED_STATEMENT_HINT = (
    "prepared statements do not survive this connection: behind PgBouncer in transaction "
    "mode set DJANGO_JOBS['PREPARED_STATEMENTS'] = False (or use PgBouncer 1.22+ with "
    "max_prepared_statements)"
)


def prepared_statement_lost(exc: DatabaseError) -> bool:
    """Whether ``exc`` is a pooler mixing up prepared statements (see above)."""
    return str(getattr(exc.__cause__, "sqlstate", None) or "") in PREPARED_STATEMENT_SQLSTATES


def rejection_hint(exc: DatabaseError) -> str | None:
    """What to do about a statement the database rejects for good; None for a passing error."""
    sqlstate = str(getattr(exc.__cause__, "sqlstate", None) or "")
    if prepared_statement_lost(exc):
        return PREPARED_STATEMENT_HINT
    if sqlstate.startswith("42") or (not sqlstate and isinstance(exc, ProgrammingError)):
        return "is the schema migrated (manage.py migrate)?"  # undefined table/column...
    return None
