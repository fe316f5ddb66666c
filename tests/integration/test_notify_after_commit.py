"""Enqueue wake-ups on PostgreSQL are sent after the enqueuing transaction
commits, in a transaction of their own (engine.postgres_notify): one per due
queue per committed transaction, none for a rollback or a job not yet due."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import transaction

from django_jobs.engine.pg import JOBS_CHANNEL
from tests.integration.conftest import connection_params
from tests.testapp import tasks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(**connection_params(), autocommit=True) as conn:
        conn.execute(f"LISTEN {JOBS_CHANNEL}")
        yield conn


def heard(conn: psycopg.Connection[Any]) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=0.3)]


def test_one_wake_up_per_due_queue_after_the_commit(listener):
    with transaction.atomic():
        tasks.add.enqueue(1, 2)
        tasks.add.enqueue(3, 4)
        tasks.in_other_queue.enqueue()
        tasks.add.using(queue_name="later", run_after=timedelta(hours=1)).enqueue(1, 1)
        assert heard(listener) == []  # nothing before the commit
    assert sorted(heard(listener)) == ["default", "other"]
    tasks.add.enqueue(5, 6)  # autocommit: at once
    assert heard(listener) == ["default"]


def test_a_rolled_back_enqueue_wakes_no_one(listener):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        raise RuntimeError
    assert heard(listener) == []


def test_a_rolled_back_savepoint_keeps_the_outer_wake_up(listener):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            tasks.in_other_queue.enqueue()  # registers the callback, then rolled back
            raise RuntimeError
        tasks.add.enqueue(1, 2)
    assert heard(listener) == ["default"]
