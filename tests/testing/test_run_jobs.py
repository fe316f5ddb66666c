"""django_jobs.testing: run_jobs, the assertions and the clock, on the real
engine, inside TestCase transactions (pytest-django's default ``django_db``)
and in autocommit (``transaction=True``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from django_jobs import outbox
from django_jobs.models import DeadLetter, Job
from django_jobs.testing import (
    assert_enqueued,
    assert_not_enqueued,
    assert_not_published,
    assert_published,
    clock,
    enqueued_jobs,
    run_jobs,
)
from tests.testapp import tasks
from tests.testapp.models import Event, Execution

BOTH = pytest.mark.parametrize(
    "transactional",
    [
        pytest.param(False, marks=pytest.mark.django_db, id="in-testcase-transaction"),
        pytest.param(True, marks=pytest.mark.django_db(transaction=True), id="autocommit"),
    ],
)


@pytest.fixture(autouse=True)
def _real_clock():
    yield
    clock.reset()


@pytest.fixture
def db_mode(transactional: bool) -> None:
    # The marker of each parameter decides the mode; this checks it took effect.
    assert connection.in_atomic_block is not transactional


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_run_jobs_runs_uncommitted_jobs_and_returns_outcomes(transactional: bool) -> None:
    first = tasks.add.enqueue(2, 3)
    second = tasks.add.enqueue(4, 5)
    runs = run_jobs()
    assert [(r.job_id, r.task_name, r.status, r.result) for r in runs] == [
        (first.pk, "tests.testapp.tasks.add", "SUCCESSFUL", 5),
        (second.pk, "tests.testapp.tasks.add", "SUCCESSFUL", 9),
    ]
    assert runs[0].job.result == 5
    assert run_jobs() == []


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_retries_wait_for_backoff_unless_skipped_or_clock_advanced(transactional: bool) -> None:
    job = tasks.fail_times.enqueue(2)
    runs = run_jobs()
    # The first attempt failed; its retry is due after the backoff, not now.
    assert [(r.attempt, r.status) for r in runs] == [(1, "READY")]
    assert runs[0].error["message"] == "planned failure 1/2"
    assert runs[0].retry_at > clock.now()
    assert run_jobs() == []
    clock.advance(runs[0].retry_at - clock.now() + timedelta(milliseconds=1))
    # skip_backoff: the retry of a failure in this call is due at once.
    runs = run_jobs(skip_backoff=True)
    assert [(r.attempt, r.status, r.result) for r in runs] == [
        (2, "READY", None),
        (3, "SUCCESSFUL", 3),
    ]
    # Each attempt wrote an Event; in the test's transaction a failed attempt
    # runs in a savepoint rolled back with it (see docs/howto/testing.md).
    assert Event.objects.filter(job_id=job.pk).count() == (3 if transactional else 1)


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_exhausted_retries_dead_letter(transactional: bool) -> None:
    job = tasks.always_fails.enqueue()
    runs = run_jobs(skip_backoff=True)
    assert [(r.attempt, r.status) for r in runs] == [(1, "READY"), (2, "FAILED")]
    assert runs[-1].error["exception_class"] == "builtins.ValueError"
    letter = DeadLetter.objects.get(job_id=job.pk)
    assert "attempts exhausted (2/2)" in letter.reason


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_atomic_task_writes_commit_with_completion(transactional: bool) -> None:
    job = tasks.record_atomic.enqueue("x")
    (run,) = run_jobs()
    assert (run.status, run.result) == ("SUCCESSFUL", job.pk)
    assert Execution.objects.filter(job_id=job.pk).count() == 1


@pytest.mark.django_db
def test_atomic_body_rolls_back_on_failure() -> None:
    job = tasks.record_atomic.enqueue("x")
    Execution.objects.create(job_id=job.pk)  # the body's insert now violates the unique key
    (run,) = run_jobs()
    assert run.status == "READY"
    assert "IntegrityError" in run.error["exception_class"]
    # The test's transaction is intact (the body ran in a savepoint).
    assert Execution.objects.filter(job_id=job.pk).count() == 1


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_idempotency_key_holds(transactional: bool) -> None:
    one = tasks.add.using(idempotency_key="k").enqueue(1, 1)
    two = tasks.add.using(idempotency_key="k").enqueue(1, 1)
    assert one.pk == two.pk
    assert_enqueued(tasks.add, count=1)
    run_jobs()
    # Finished: the key is free again.
    three = tasks.add.using(idempotency_key="k").enqueue(1, 1)
    assert three.pk != one.pk


@BOTH
@pytest.mark.usefixtures("db_mode")
def test_outbox_events_reach_subscribers(transactional: bool) -> None:
    with transaction.atomic():
        outbox.publish("order.created", {"order_id": 7}, key="7")
    assert_published("order.created", payload={"order_id": 7}, key="7", count=1)
    runs = run_jobs()
    names = sorted(r.task_name.rsplit(".", 1)[1] for r in runs)
    assert names == ["on_any_order", "on_order_created"]
    assert all(r.succeeded for r in runs)
    logged = Event.objects.filter(name="on_order_created").get()
    assert logged.value["payload"] == {"order_id": 7}
    # Dispatched exactly once: a second drain finds nothing.
    assert run_jobs() == []


@pytest.mark.django_db
def test_run_jobs_filters_queues_and_until_empty() -> None:
    tasks.in_other_queue.enqueue()
    tasks.add.enqueue(1, 2)
    assert [r.queue_name for r in run_jobs(queue="other")] == ["other"]
    assert_enqueued(tasks.add, args=[1, 2])
    tasks.fail_times.enqueue(1)
    # until_empty=False: each job due now runs once, even if its retry is due at once.
    runs = run_jobs(until_empty=False, skip_backoff=True)
    assert sorted((r.task_name.rsplit(".", 1)[1], r.status) for r in runs) == [
        ("add", "SUCCESSFUL"),
        ("fail_times", "READY"),
    ]


@pytest.mark.django_db
def test_run_after_and_frozen_clock() -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with clock.frozen(start):
        later = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(1, 1)
        now = tasks.add.enqueue(2, 2)
        assert later.run_after == start + timedelta(minutes=5)
        assert [r.job_id for r in run_jobs()] == [now.pk]
        clock.advance(timedelta(minutes=4, seconds=59))
        assert run_jobs() == []
        clock.advance(1)
        assert [r.job_id for r in run_jobs()] == [later.pk]
    assert clock.now() > datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_clock_frozen_in_the_past_still_runs_immediate_jobs() -> None:
    with clock.frozen(datetime(2001, 1, 1, tzinfo=UTC)):
        job = tasks.add.enqueue(1, 1)
        (run,) = run_jobs()
    assert run.job_id == job.pk
    assert Job.objects.get(pk=job.pk).last_attempted_at == datetime(2001, 1, 1, tzinfo=UTC)


def test_clock_rejects_naive_and_backwards() -> None:
    with pytest.raises(ValueError, match="aware"):
        clock.freeze(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


@pytest.mark.django_db
def test_assertion_messages_list_what_was_enqueued() -> None:
    tasks.add.enqueue(1, 2)
    with pytest.raises(AssertionError) as info:
        assert_enqueued(tasks.add, args=[9, 9])
    message = str(info.value)
    assert "expected a job of tests.testapp.tasks.add with args=[9, 9] enqueued, found 0" in message
    assert "tests.testapp.tasks.add args=[1, 2] kwargs={}" in message
    with pytest.raises(AssertionError, match="expected 2 job"):
        assert_enqueued(tasks.add, count=2)
    with pytest.raises(AssertionError, match=r"expected no job of tests.testapp.tasks.add"):
        assert_not_enqueued(tasks.add)
    assert_not_enqueued(tasks.noop)
    assert [j.args for j in enqueued_jobs(tasks.add)] == [[1, 2]]
    assert enqueued_jobs("tests.testapp.tasks.add")[0].kwargs == {}


@pytest.mark.django_db
def test_published_assertion_messages() -> None:
    outbox.publish("order.created", {"order_id": 1})
    with pytest.raises(AssertionError) as info:
        assert_published("order.created", payload={"order_id": 2})
    assert "found 0. Published events:" in str(info.value)
    assert "order.created key=None payload={'order_id': 1}" in str(info.value)
    with pytest.raises(AssertionError, match=r"expected no .order\.created. event"):
        assert_not_published("order.created")
    assert_not_published("order.cancelled")


@pytest.mark.django_db(databases=["default", "jobs"])
def test_jobs_in_another_database_alias() -> None:
    job = tasks.add.using(database="jobs").enqueue(3, 4)
    assert_enqueued(tasks.add.using(database="jobs"), args=[3, 4])
    assert_not_enqueued(tasks.add)  # nothing in "default"
    assert run_jobs() == []
    (run,) = run_jobs(database="jobs")
    assert (run.job_id, run.result, run.database) == (job.pk, 7, "jobs")


@pytest.mark.django_db
def test_max_jobs_stops_a_runaway_drain() -> None:
    tasks.add.enqueue_many([(i, i) for i in range(5)])
    with pytest.raises(RuntimeError, match="ran 3 attempts"):
        run_jobs(max_jobs=3)
    assert len(enqueued_jobs(tasks.add)) == 2  # the fourth was handed back


@pytest.mark.django_db
def test_database_error_in_a_plain_task_leaves_the_test_transaction_usable() -> None:
    job = tasks.record.enqueue("x")
    Execution.objects.create(job_id=job.pk)  # the body's insert violates the unique key
    (run,) = run_jobs()
    assert run.status == "READY"
    assert "IntegrityError" in run.error["exception_class"]
    assert Execution.objects.filter(job_id=job.pk).count() == 1
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_run_jobs_refuses_to_run_outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core import mail

    monkeypatch.delattr(mail, "outbox")
    with pytest.raises(RuntimeError, match="only works in tests"):
        run_jobs()
