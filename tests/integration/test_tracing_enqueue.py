"""Every way of enqueueing stores the caller's trace context in the row (read back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace

from django_jobs.engine import get_engine
from django_jobs.models import Job, Schedule
from tests.admin.factories import make_dead_letter
from tests.testapp import dtasks, tasks
from tests.testapp.otel import in_memory_spans

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def parent():
    in_memory_spans()  # the test process's provider
    with trace.get_tracer("test").start_as_current_span("request") as span:
        context = span.get_span_context()
        yield f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def stored_traceparent(pk: int) -> str:
    return str(Job.objects.get(pk=pk).meta["trace"]["traceparent"])


def test_enqueue_stores_the_traceparent(parent):
    job = tasks.add.enqueue(1, 2)
    assert job.meta["trace"]["traceparent"] == parent  # the returned instance
    assert stored_traceparent(job.pk) == parent  # and the row


def test_enqueue_with_an_idempotency_key_stores_it(parent):
    job = tasks.add.using(idempotency_key="traced").enqueue(1, 2)
    assert stored_traceparent(job.pk) == parent


def test_enqueue_many_stores_it_in_every_row(parent):
    jobs = tasks.add.enqueue_many([(n, n) for n in range(5)])
    assert {stored_traceparent(job.pk) for job in jobs} == {parent}


def test_the_django_tasks_backend_stores_it(parent):
    result = dtasks.add.enqueue(1, 2)
    assert stored_traceparent(int(result.id)) == parent


def test_outside_a_span_the_meta_stays_empty():
    in_memory_spans()
    job = tasks.add.enqueue(1, 2)
    many = tasks.add.enqueue_many([(1, 1), (2, 2)])
    keyed = tasks.add.using(idempotency_key="untraced").enqueue(1, 2)
    assert [Job.objects.get(pk=j.pk).meta for j in (job, *many, keyed)] == [{}] * 4


def test_a_schedule_run_now_keeps_both_its_meta_and_the_trace(parent):
    schedule = Schedule.objects.create(
        name="traced", task_name=tasks.add.name, interval=timedelta(hours=1), next_run_at=NOW
    )
    row = tasks.add.new_job((1, 2), {})
    job_id = get_engine().enqueue_schedule_now(schedule.pk, row, {"schedule": "traced"})
    meta = Job.objects.get(pk=job_id).meta
    assert meta["schedule"] == "traced"
    assert meta["trace"]["traceparent"] == parent


def test_a_retried_dead_letter_joins_the_operators_trace(parent):
    letter = make_dead_letter()
    (retried,) = get_engine().retry_dead_letters([letter.pk])
    meta = Job.objects.get(pk=retried.job_id).meta
    assert meta["retried_from_dead_letter"] == letter.pk
    assert meta["trace"]["traceparent"] == parent


def test_a_dead_letter_retried_outside_a_span_keeps_its_plain_meta():
    in_memory_spans()
    letter = make_dead_letter()
    (retried,) = get_engine().retry_dead_letters([letter.pk])
    meta = Job.objects.get(pk=retried.job_id).meta
    assert meta == {"retried_from_dead_letter": letter.pk, "original_job": letter.job_id}
