"""Traces across processes: enqueue inside a span here, run by a real worker
whose OpenTelemetry SDK exports to a JSON-lines file (tests/testapp/otel.py)."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import dtasks, tasks
from tests.testapp.otel import in_memory_spans, read_spans

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

SEMCONV = {
    "messaging.system": "django_jobs",
    "messaging.operation.type": "process",
    "messaging.operation.name": "process",
}


@pytest.fixture
def spans_file(tmp_path):
    in_memory_spans()  # the test process's provider, for the parent span
    return tmp_path / "spans.jsonl"


def drain(run_burst, spans_file, pool, done):
    """Run burst workers (each exports its spans when it exits) until ``done()``."""
    env = {"DJANGO_JOBS_TEST_OTEL_SPANS": str(spans_file)}
    workers: set[int] = set()

    def once():
        workers.add(run_burst("--pool", pool, "--concurrency", "2", env=env).pid)
        return done()

    wait_until(once, timeout=90, interval=0.2, message="the jobs to finish")
    return read_spans(spans_file), workers


def of_job(spans, job):
    found = [s for s in spans if s["attributes"].get("messaging.message.id") == str(job.pk)]
    return sorted(found, key=lambda s: s["attributes"]["messaging.django_jobs.attempt"])


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_the_worker_span_continues_the_enqueuers_trace(run_burst, spans_file, pool):
    with trace.get_tracer("test").start_as_current_span("request") as parent:
        ok = tasks.add.using(queue_name="reports").enqueue(2, 3)
        bad = tasks.always_fails.enqueue()  # max_attempts=2: a retry, then dead-lettered
        chained = tasks.enqueues_add.enqueue(4, 5)
        django_task = dtasks.add.enqueue(6, 7)  # the django.tasks backend
    context = parent.get_span_context()
    trace_id, parent_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def done():
        statuses = set(Job.objects.values_list("status", flat=True))
        return statuses <= {JobStatus.SUCCESSFUL, JobStatus.FAILED} and Job.objects.count() == 5

    spans, workers = drain(run_burst, spans_file, pool, done)

    (span,) = of_job(spans, ok)
    assert span["name"] == "process tests.testapp.tasks.add"
    assert span["kind"] == "CONSUMER"
    assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id)
    assert span["status"] == "UNSET"
    assert span["attributes"] == {
        **SEMCONV,
        "messaging.destination.name": "reports",
        "messaging.message.id": str(ok.pk),
        "messaging.django_jobs.task": "tests.testapp.tasks.add",
        "messaging.django_jobs.attempt": 1,
        "messaging.django_jobs.max_attempts": 3,
        "messaging.django_jobs.priority": 0,
        "messaging.django_jobs.worker_id": str(Job.objects.get(pk=ok.pk).worker_id),
        "messaging.django_jobs.outcome": "successful",
    }

    # Both attempts of the failing job: the same trace and parent, ERROR, the exception.
    first, last = of_job(spans, bad)
    for attempt, span in enumerate((first, last), start=1):
        assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id)
        assert span["kind"] == "CONSUMER"
        assert span["status"] == "ERROR"
        assert span["status_description"] == "this task always fails"
        assert span["attributes"]["messaging.django_jobs.attempt"] == attempt
        assert span["attributes"]["error.type"] == "builtins.ValueError"
        (event,) = span["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "builtins.ValueError"
        assert "this task always fails" in event["attributes"]["exception.stacktrace"]
    assert first["attributes"]["messaging.django_jobs.outcome"] == "retried"
    assert last["attributes"]["messaging.django_jobs.outcome"] == "failed"
    assert "attempts exhausted" in last["attributes"]["messaging.django_jobs.failure_reason"]

    (span,) = of_job(spans, Job.objects.get(pk=int(django_task.id)))
    assert span["name"] == "process tests.testapp.dtasks.add"
    assert (span["trace_id"], span["parent_span_id"]) == (trace_id, parent_id)
    assert span["attributes"]["messaging.django_jobs.outcome"] == "successful"

    # A job enqueued by a running task is a child of that task's span.
    (outer,) = of_job(spans, chained)
    inner_id = Job.objects.get(pk=chained.pk).result  # the job enqueues_add enqueued
    assert isinstance(inner_id, int)
    (inner,) = of_job(spans, Job.objects.get(pk=inner_id))
    assert (outer["trace_id"], outer["parent_span_id"]) == (trace_id, parent_id)
    assert (inner["trace_id"], inner["parent_span_id"]) == (trace_id, outer["span_id"])

    # Thread pool: the worker process ran (and exported) every attempt; process
    # pool: its children did, and flushed their spans before they exited.
    runners = {s["pid"] for s in spans}
    assert runners <= workers if pool == "thread" else runners.isdisjoint(workers)


def test_killed_children_get_their_spans_from_the_worker(run_burst, spans_file):
    with trace.get_tracer("test").start_as_current_span("request") as parent:
        crashed = tasks.crash_sigkill.enqueue()  # max_attempts=2: killed twice
        slow = tasks.sleeps_past_timeout.enqueue(30)  # timeout=1, max_attempts=2
    trace_id = f"{parent.get_span_context().trace_id:032x}"

    def done():
        return Job.objects.filter(status=JobStatus.FAILED).count() == 2

    spans, workers = drain(run_burst, spans_file, "process", done)
    for job, error in ((crashed, "WorkerCrashed"), (slow, "JobTimeout")):
        first, last = of_job(spans, job)
        for span in (first, last):
            assert span["trace_id"] == trace_id and span["kind"] == "CONSUMER"
            assert span["status"] == "ERROR"
            assert span["attributes"]["error.type"].endswith(error)
            assert span["end_time"] > span["start_time"]
            assert span["pid"] in workers  # recorded by the worker: the child was killed
        assert [s["attributes"]["messaging.django_jobs.outcome"] for s in (first, last)] == [
            "retried",
            "failed",
        ]


def test_a_timed_out_thread_gets_its_span_from_the_worker(start_worker, spans_file):
    with trace.get_tracer("test").start_as_current_span("request") as parent:
        # Its sleep outlasts the timeout by half a second: each abandoned
        # thread wakes, and ends its attempt, while the worker still runs.
        slow = tasks.sleeps_past_timeout.enqueue(1.5)  # timeout=1, max_attempts=2
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    worker = start_worker(env={"DJANGO_JOBS_TEST_OTEL_SPANS": str(spans_file)})
    wait_until(
        lambda: Job.objects.get(pk=slow.pk).status == JobStatus.FAILED, 30, message="timeouts"
    )
    time.sleep(1.0)  # the second attempt's thread wakes too
    assert worker.terminate() == 0  # exports its spans as it exits
    # One span per attempt, the worker's: each abandoned thread dropped its own.
    first, last = of_job(read_spans(spans_file), slow)
    for attempt, span in enumerate((first, last), start=1):
        assert span["trace_id"] == trace_id and span["status"] == "ERROR"
        assert span["attributes"]["messaging.django_jobs.attempt"] == attempt
        assert span["attributes"]["error.type"] == "django_jobs.exceptions.JobTimeout"
        assert span["pid"] == worker.pid
