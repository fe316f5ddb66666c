"""PostgreSQL plumbing shared by the job engine (``postgres``), the outbox engine
(``outbox_postgres``) and the LISTEN side (``worker.notify``, the outbox relay):

- the NOTIFY channels, named once: the SQL binds them as a parameter of
  ``pg_notify`` and the listeners LISTEN on the same constants;
- :func:`hot_cursor`, the prepared-statement cursor for statements run
  thousands of times per connection (PREPARED_STATEMENTS).

jsonb read by a raw cursor is decoded by :func:`django_jobs.codec.from_jsonb`
(the one JSON rule set); nothing else is adapted here.
"""

from __future__ import annotations

import weakref
from typing import Any, Self

import psycopg

from django_jobs.conf import jobs_settings
from django_jobs.rows import TaskFilter

# Enqueues, releases and recoveries notify this channel with the job's queue
# name as payload; workers LISTEN on it.
JOBS_CHANNEL = "django_jobs"
# publish() notifies this channel (empty payload: any event wakes a relay).
OUTBOX_CHANNEL = "django_jobs_outbox"

# Django turns psycopg's preparing off (prepare_threshold=None), which also
# ignores prepare=True. A threshold no statement reaches prepares exactly the
# statements that ask for it: ours, not the project's.
_EXPLICIT_PREPARE_ONLY = 2**62

# Runs of each hot statement per connection, to prepare it on its second run.
# Not psycopg's own prepare_threshold=2: that is per connection, and would also
# prepare the project's queries on a server-side-binding connection.
_statement_runs: weakref.WeakKeyDictionary[psycopg.Connection[Any], dict[str, int]] = (
    weakref.WeakKeyDictionary()
)


class _PreparedCursor(psycopg.Cursor[Any]):
    """Server-side binding; each statement prepared on its second run on a
    connection. The worker runs the same few statements thousands of times per
    connection; a web request with CONN_MAX_AGE=0 enqueues on a fresh
    connection and would pay preparing's extra round trip for nothing."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        if prepare is None:
            runs = _statement_runs.setdefault(self.connection, {})
            count = runs.get(query, 0)
            if count < 2:
                runs[query] = count + 1
            prepare = count >= 1
        return super().execute(query, params, prepare=prepare, binary=binary)


def hot_cursor(connection: Any) -> Any:
    """A cursor on Django ``connection`` for the hot path: Django's wrapper
    (errors, query logging, thread checks) around a prepared-statement psycopg
    cursor, unless PREPARED_STATEMENTS is off (PgBouncer in transaction mode
    before 1.22)."""
    if not jobs_settings.PREPARED_STATEMENTS:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _EXPLICIT_PREPARE_ONLY
    with connection.wrap_database_errors:
        # Django has no public way to wrap a cursor of our own class.
        return connection._prepare_cursor(_PreparedCursor(raw))


def notify_enabled() -> bool:
    """Whether statements send NOTIFY wake-ups (USE_NOTIFY; off behind PgBouncer
    in transaction mode)."""
    return bool(jobs_settings.USE_NOTIFY)


def task_params(tasks: TaskFilter | None) -> dict[str, Any]:
    """The claim statements' %(tasks)s / %(tasks_in)s (postgres_sql.TASK_FILTER)."""
    if tasks is None:
        return {"tasks": None, "tasks_in": True}
    return {"tasks": list(tasks.names), "tasks_in": tasks.include}
