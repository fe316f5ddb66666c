"""Large ``enqueue_many`` batches: COPY into a staging table, then one INSERT ...
SELECT on PostgreSQL (engine.postgres_bulk); the same results as the
array-bound insert, which SQLite's path and small batches keep."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs.engine import get_engine, postgres
from django_jobs.engine.postgres_bulk import COPY_THRESHOLD
from django_jobs.models import FlowLane, Job
from django_jobs.status import JobStatus
from tests.integration.conftest import connection_params
from tests.testapp import flow_tasks, tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])


@pytest.fixture
def copy_from_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """COPY from 2 rows (default COPY_THRESHOLD): small batches take the COPY path."""
    monkeypatch.setattr(postgres, "COPY_THRESHOLD", 2)


def staged(queries: CaptureQueriesContext) -> bool:
    return any("django_jobs_staging" in q["sql"] for q in queries.captured_queries)


def test_a_batch_above_the_threshold_is_stored_as_the_small_path_stores_it():
    n = COPY_THRESHOLD + 3
    later = timezone.now() + timedelta(hours=1)
    calls = [(i, i + 1) for i in range(n)]
    with CaptureQueriesContext(connections["default"]) as queries:
        jobs = tasks.add.enqueue_many(calls)
    later_jobs = tasks.add.using(run_after=later).enqueue_many(calls[:COPY_THRESHOLD])
    assert staged(queries) == (connections["default"].vendor == "postgresql")
    assert [j.args for j in jobs] == [list(c) for c in calls]
    assert [j.pk for j in jobs] == sorted(j.pk for j in jobs)  # ids in input order
    stored = {j.pk: j for j in Job.objects.all()}
    assert len(stored) == n + COPY_THRESHOLD
    for job in [jobs[0], jobs[-1], later_jobs[0]]:
        row = stored[job.pk]
        assert (row.args, row.status, row.task_name) == (job.args, JobStatus.READY, job.task_name)
        # What enqueue_many returns is what the database stored.
        assert (row.run_after, row.enqueued_at) == (job.run_after, job.enqueued_at)
        assert row.requested_run_after == job.requested_run_after
    assert stored[later_jobs[0].pk].run_after == later
    assert stored[jobs[0].pk].run_after == stored[jobs[0].pk].enqueued_at


def test_idempotency_keys_within_the_batch_and_against_existing_rows(copy_from_two):
    existing = tasks.add.using(idempotency_key="held").enqueue(0, 0)
    add = tasks.add
    rows = [
        add.encoded_job("[1, 1]", idempotency_key="k1"),
        add.encoded_job("[2, 2]", idempotency_key="k2"),
        add.encoded_job("[3, 3]", idempotency_key="k1"),  # same key twice in the batch
        add.encoded_job("[4, 4]"),
        add.encoded_job("[5, 5]", idempotency_key="held"),  # held by an active job
    ]
    with CaptureQueriesContext(connections["default"]) as queries:
        result = get_engine().insert_jobs(rows)
    assert staged(queries) == (connections["default"].vendor == "postgresql")
    assert [r.created for r in result] == [True, True, False, True, False]
    assert result[2].job.pk == result[0].job.pk
    assert result[4].job.pk == existing.pk
    assert Job.objects.count() == 4
    assert Job.objects.get(idempotency_key="k1").args == [1, 1]
    again = get_engine().insert_jobs(rows[:2])  # a repeated batch is a no-op
    assert [(r.created, r.job.pk) for r in again] == [(False, r.job.pk) for r in result[:2]]
    assert Job.objects.count() == 4


def test_unique_for_skips_keys_enqueued_within_the_period(copy_from_two):
    unique = tasks.add.using(idempotency_key="batch", unique_for=timedelta(hours=1))
    first = unique.enqueue_many([(1, 1), (2, 2)])
    Job.objects.filter(pk__in=[j.pk for j in first]).update(status=JobStatus.SUCCESSFUL)
    with CaptureQueriesContext(connections["default"]) as queries:
        again = unique.enqueue_many([(1, 1), (2, 2), (3, 3)])
    assert staged(queries) == (connections["default"].vendor == "postgresql")
    assert [j.pk for j in again[:2]] == [j.pk for j in first]
    assert [j.status for j in again] == [JobStatus.SUCCESSFUL] * 2 + [JobStatus.READY]
    assert Job.objects.count() == 3


def test_lanes_meta_and_options_are_stored(copy_from_two):
    jobs = flow_tasks.one_per_key.using(priority=7, queue_name="bulkq").enqueue_many(
        [("red", 0), ("blue", 0), ("red", 0)]
    )
    stored = Job.objects.in_bulk([j.pk for j in jobs])
    lanes = ["flow-test:red", "flow-test:blue", "flow-test:red"]
    assert [stored[j.pk].flow_lane for j in jobs] == lanes
    assert {(j.priority, j.queue_name) for j in stored.values()} == {(7, "bulkq")}
    assert set(FlowLane.objects.values_list("key", flat=True)) >= {
        "flow-test:red",
        "flow-test:blue",
    }
    meta = '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
    row = tasks.add.encoded_job("[1, 2]")
    rows = [row.__class__(**{**_fields(row), "meta_json": meta}), row]
    result = get_engine().insert_jobs(rows)
    assert Job.objects.get(pk=result[0].job.pk).meta == json.loads(meta)
    assert Job.objects.get(pk=result[1].job.pk).meta == {}


def _fields(row: object) -> dict[str, object]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}  # type: ignore[attr-defined]


def test_a_bad_row_writes_nothing(copy_from_two):
    with pytest.raises(TypeError, match="item 3"):
        tasks.add.enqueue_many([(1, 2), (3, 4), (5, 6), (object(), 1)])
    assert not Job.objects.exists()


def test_a_failing_batch_rolls_back_and_the_transaction_can_enqueue_again(copy_from_two):
    # A priority outside the range passes no Python check here (encoded_job is
    # trusted input), so the database refuses it (smallint, check constraint).
    row = tasks.add.encoded_job("[1, 2]")
    bad = row.__class__(**{**_fields(row), "priority": 70_000})
    with pytest.raises(DatabaseError), transaction.atomic():
        get_engine().insert_jobs([row, bad])
    assert not Job.objects.exists()
    with (
        transaction.atomic()
    ):  # two COPY batches in one transaction: the staging table is new each time
        tasks.add.enqueue_many([(1, 1), (2, 2)])
        tasks.add.enqueue_many([(3, 3), (4, 4)])
    assert Job.objects.count() == 4


@pytest.mark.postgres
def test_the_copy_path_notifies_each_due_queue_once_on_commit(copy_from_two):
    import psycopg  # PostgreSQL only: the test's own LISTEN connection

    from django_jobs.engine.pg import JOBS_CHANNEL

    with psycopg.connect(**connection_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {JOBS_CHANNEL}")
        tasks.add.enqueue_many([(i, i) for i in range(5)])
        tasks.add.using(queue_name="later", run_after=timedelta(hours=1)).enqueue_many(
            [(1, 1), (2, 2)]
        )
        payloads = [n.payload for n in listener.notifies(timeout=0.5)]
    assert payloads == ["default"]
