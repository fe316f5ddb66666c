"""Fixtures for lock tests: a rival PostgreSQL session holding row locks, and
a lock timeout on Django's connection so that a statement that waits on such
a lock fails within a second (saying so) instead of hanging the suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection

LOCK_TIMEOUT = "1s"
LOCK_WAIT_MESSAGE = "waited on a lock held by another transaction: SKIP LOCKED missing?"


def connection_params() -> dict[str, Any]:
    """Django's connection parameters, usable by a plain psycopg.connect()."""
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "server_side_binding", "prepare_threshold"):
        params.pop(name, None)
    return params


@pytest.fixture
def rival() -> Iterator[psycopg.Connection[Any]]:
    """A second session, in a transaction: the row locks it takes are held
    until it rolls back (or the test ends)."""
    with psycopg.connect(**connection_params()) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def lock_rows(rival: psycopg.Connection[Any]) -> Callable[[str, list[int]], None]:
    """``lock_rows(table, ids)``: the rival session locks those rows FOR UPDATE."""

    def lock(table: str, ids: list[int]) -> None:
        locked = rival.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) FOR UPDATE",  # test constant table name
            [ids],
        ).fetchall()
        assert sorted(row[0] for row in locked) == sorted(ids)

    return lock


def _waited_on_a_lock(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.errors.LockNotAvailable) or isinstance(
        exc.__cause__, psycopg.errors.LockNotAvailable
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # A lock timeout anywhere in a test body (Django wraps psycopg's error) is
    # reported as what it means, not as a bare OperationalError.
    try:
        return (yield)
    except Exception as exc:
        if _waited_on_a_lock(exc):
            pytest.fail(f"{LOCK_WAIT_MESSAGE} ({str(exc).strip()})", pytrace=False)
        raise


@pytest.fixture
def no_lock_waits() -> Iterator[None]:
    """Django's connection gives up on any lock after a second, for the whole
    test: the regression of a lock test is a hang, not a wrong answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [LOCK_TIMEOUT])
    yield
    if connection.connection is not None and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
