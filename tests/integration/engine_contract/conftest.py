"""The engine contract suite, the way River's ``riverdrivertest`` runs one set
of tests against every driver: each test takes the ``engine`` (job engine) or
``outbox_engine`` fixture and runs once per engine/database pair of this pass.

- PostgreSQL pass: ``postgres-sql`` (the raw-SQL engine PostgreSQL gets) and
  ``postgres-orm`` (the portable ORM engine, the path MySQL/MariaDB take, on
  the same database: constructed directly, not through ``get_engine``).
- SQLite pass: ``sqlite-orm``.

Row-lock tests (SKIP LOCKED) are marked ``postgres``: they run on the
PostgreSQL pairs only (SQLite has no row locks; its writers are serialized).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_jobs.engine.base import Engine
from django_jobs.engine.generic import GenericEngine
from django_jobs.engine.outbox import OutboxEngine
from django_jobs.engine.outbox_postgres import PostgresOutboxEngine
from django_jobs.engine.postgres import PostgresEngine
from django_jobs.rows import NewJob
from tests.conftest import TEST_DB

ALIAS = "default"

ENGINE_PAIRS: dict[str, list[tuple[str, type[Engine]]]] = {
    "postgres": [("postgres-sql", PostgresEngine), ("postgres-orm", GenericEngine)],
    "sqlite": [("sqlite-orm", GenericEngine)],
}
OUTBOX_PAIRS: dict[str, list[tuple[str, type[OutboxEngine]]]] = {
    "postgres": [("postgres-sql", PostgresOutboxEngine), ("postgres-orm", OutboxEngine)],
    "sqlite": [("sqlite-orm", OutboxEngine)],
}


def _params(pairs: list[tuple[str, type[Any]]]) -> list[Any]:
    return [pytest.param(cls, id=name) for name, cls in pairs]


@pytest.fixture(params=_params(ENGINE_PAIRS[TEST_DB]))
def engine(request: pytest.FixtureRequest) -> Engine:
    """The job engine under test, on this pass's database."""
    return request.param(ALIAS)


@pytest.fixture(params=_params(OUTBOX_PAIRS[TEST_DB]))
def outbox_engine(request: pytest.FixtureRequest) -> OutboxEngine:
    """The outbox engine under test, on this pass's database."""
    return request.param(ALIAS)


def new_job(
    *args: Any,
    task_name: str = "tests.testapp.tasks.add",
    queue_name: str = "default",
    priority: int = 0,
    max_attempts: int = 3,
    run_after: Any = None,
    key: str | None = None,
) -> NewJob:
    """One row for ``Engine.insert_jobs``, as the task API builds it."""
    return NewJob(
        task_name=task_name,
        queue_name=queue_name,
        priority=priority,
        args_json=json.dumps(list(args), separators=(",", ":")),
        kwargs_json="{}",
        max_attempts=max_attempts,
        timeout=300.0,
        run_after=run_after,
        idempotency_key=key,
    )
