"""Enqueueing: transactions, validation, idempotency, bulk."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Job
from django_jobs.signals import job_enqueued
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_returns_a_saved_ready_job():
    job = tasks.add.enqueue(1, b=2)
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.READY
    assert stored.task_name == "tests.testapp.tasks.add"
    assert stored.args == [1] and stored.kwargs == {"b": 2}
    assert stored.queue_name == "default" and stored.priority == 0
    assert stored.max_attempts == 3 and stored.attempts == 0
    assert stored.run_after <= timezone.now()
    assert job.enqueued_at == stored.enqueued_at


def test_rolled_back_enqueue_leaves_no_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        raise RuntimeError("boom")
    assert not Job.objects.exists()


def test_committed_enqueue_inside_atomic_is_visible_to_another_connection_only_after_commit():
    with transaction.atomic():
        job = tasks.add.enqueue(1, 2)
        seen_inside = _count_from_other_connection(job.pk)
    assert seen_inside == 0
    assert _count_from_other_connection(job.pk) == 1


def _count_from_other_connection(job_id: int) -> int:
    result: list[int] = []

    def look() -> None:
        try:
            result.append(Job.objects.filter(pk=job_id).count())
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.parametrize(
    "bad_call",
    [
        lambda: tasks.add.enqueue(object(), 1),
        lambda: tasks.add.enqueue(1, b={1, 2}),
        lambda: tasks.add.enqueue(float("nan"), 1),
        lambda: tasks.add.enqueue_many([(1, 2), (object(), 3)]),
    ],
)
def test_non_json_arguments_raise_type_error_and_write_nothing(bad_call):
    with pytest.raises(TypeError, match="JSON"):
        bad_call()
    assert not Job.objects.exists()


def test_type_error_names_the_argument():
    with pytest.raises(TypeError, match=r"keyword argument 'b' \(set\)"):
        tasks.add.enqueue(1, b={1})


def test_bad_options_write_nothing():
    with pytest.raises(InvalidJobOptions):
        tasks.add.using(priority=1000).enqueue(1, 2)
    assert not Job.objects.exists()


def test_options_are_stored():
    when = timezone.now() + timedelta(hours=1)
    job = tasks.add.using(queue_name="bulk", priority=-10, run_after=when).enqueue(1, 2)
    stored = Job.objects.get(pk=job.pk)
    assert (stored.queue_name, stored.priority) == ("bulk", -10)
    assert abs((stored.run_after - when).total_seconds()) < 0.001
    assert stored.is_scheduled


def test_relative_run_after():
    job = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(1, 2)
    delta = Job.objects.get(pk=job.pk).run_after - timezone.now()
    assert timedelta(minutes=4) < delta <= timedelta(minutes=5)


def test_enqueue_many_accepts_tuples_and_dicts_in_order():
    jobs = tasks.add.enqueue_many([(1, 2), {"a": 3, "b": 4}, [5, 6]])
    assert [j.pk for j in jobs] == sorted(j.pk for j in jobs)
    stored = {j.pk: j for j in Job.objects.all()}
    assert [(stored[j.pk].args, stored[j.pk].kwargs) for j in jobs] == [
        ([1, 2], {}),
        ([], {"a": 3, "b": 4}),
        ([5, 6], {}),
    ]


def test_enqueue_many_rejects_other_item_types():
    with pytest.raises(TypeError, match="item 1"):
        tasks.add.enqueue_many([(1, 2), 3])  # type: ignore[list-item]
    assert not Job.objects.exists()


def test_idempotency_key_returns_the_existing_active_job():
    first = tasks.add.using(idempotency_key="k-1").enqueue(1, 2)
    second = tasks.add.using(idempotency_key="k-1").enqueue(9, 9)
    assert first.pk == second.pk
    assert Job.objects.count() == 1
    assert Job.objects.get().args == [1, 2]


def test_idempotency_key_is_free_again_once_the_job_finished():
    first = tasks.add.using(idempotency_key="k-2").enqueue(1, 2)
    Job.objects.filter(pk=first.pk).update(status=JobStatus.SUCCESSFUL)
    second = tasks.add.using(idempotency_key="k-2").enqueue(1, 2)
    assert second.pk != first.pk


def test_enqueue_many_with_keys_is_idempotent():
    first = tasks.add.using(idempotency_key="batch").enqueue_many([(1, 2), (3, 4)])
    again = tasks.add.using(idempotency_key="batch").enqueue_many([(1, 2), (3, 4), (5, 6)])
    assert [j.pk for j in again[:2]] == [j.pk for j in first]
    assert Job.objects.count() == 3


def test_concurrent_enqueues_with_one_key_create_one_job():
    barrier = threading.Barrier(8)
    ids: list[int] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                ids.append(tasks.add.using(idempotency_key="race").enqueue(1, 2).pk)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(ids)) == 1
    assert Job.objects.filter(idempotency_key="race").count() == 1


def test_enqueued_signal_fires_on_commit_only():
    received: list[int] = []

    def on_enqueued(sender, job, **kwargs):
        received.append(job.pk)

    job_enqueued.connect(on_enqueued)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            tasks.add.enqueue(1, 2)
            raise RuntimeError
        assert received == []
        with transaction.atomic():
            job = tasks.add.enqueue(1, 2)
            assert received == []
        assert received == [job.pk]
    finally:
        job_enqueued.disconnect(on_enqueued)


def test_single_enqueue_is_one_query(django_assert_max_num_queries):
    # PostgreSQL: the INSERT, then (USE_NOTIFY) the wake-up in its own
    # transaction after the commit (engine.postgres_notify).
    with django_assert_max_num_queries(2 if connection.vendor == "postgresql" else 3):
        tasks.add.enqueue(1, 2)
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 3):
        tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 2)  # not due: no wake-up
