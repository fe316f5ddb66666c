"""claim_jobs / complete_and_claim narrowed to some tasks (rows.TaskFilter): the
worker's separate claims for its event loop and for its threads."""

from __future__ import annotations

import uuid

import pytest

from django_jobs.rows import Completion, TaskFilter
from django_jobs.status import JobStatus
from tests.testapp import async_tasks, tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()
ASYNC = TaskFilter((async_tasks.sleeps_counting.name,), include=True)
OTHERS = TaskFilter((async_tasks.sleeps_counting.name,), include=False)


def test_a_filtered_claim_takes_only_its_tasks_past_the_others(engine):
    coroutines = [async_tasks.sleeps_counting.enqueue(0).pk for _ in range(3)]
    plain = [tasks.add.enqueue(i, i).pk for i in range(3)]
    # Both kinds are due; each claim skips the other kind, wherever it is in the order.
    assert [j.id for j in engine.claim_jobs(WORKER, None, 2, 30, tasks=OTHERS)] == plain[:2]
    assert [j.id for j in engine.claim_jobs(WORKER, None, 10, 30, tasks=ASYNC)] == coroutines
    assert [j.id for j in engine.claim_jobs(WORKER, None, 10, 30, tasks=ASYNC)] == []
    assert [j.id for j in engine.claim_jobs(WORKER, None, 10, 30)] == plain[2:]


def test_complete_and_claim_completes_whatever_the_filter(engine):
    tasks.add.enqueue(1, 1)
    (running,) = engine.claim_jobs(WORKER, None, 1, 30, tasks=OTHERS)
    coroutine = async_tasks.sleeps_counting.enqueue(0)
    done, claimed = engine.complete_and_claim(
        [Completion(running, "2")], WORKER, None, 5, 30, tasks=ASYNC
    )
    assert done == {running.id}
    assert [j.id for j in claimed] == [coroutine.pk]
    coroutine.refresh_from_db()
    assert coroutine.status == JobStatus.RUNNING
    done, claimed = engine.complete_and_claim([], WORKER, ["default"], 5, 30, tasks=OTHERS)
    assert (done, claimed) == (set(), [])
