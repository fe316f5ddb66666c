"""OpenTelemetry context propagation and the attempt's span, with the real SDK
(in memory); and that without the extra nothing of it is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry import trace

from django_jobs.observability import tracing
from django_jobs.rows import ClaimedJob, Completion, Failure
from tests.conftest import ROOT
from tests.testapp import tasks
from tests.testapp.otel import in_memory_spans

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def spans():
    exporter = in_memory_spans()
    exporter.clear()
    yield exporter
    exporter.clear()


def claimed(meta: dict[str, Any], attempts: int = 1) -> ClaimedJob:
    return ClaimedJob(
        id=42,
        task_name="tests.testapp.tasks.add",
        queue_name="reports",
        priority=3,
        args=[1, 2],
        kwargs={},
        attempts=attempts,
        max_attempts=3,
        timeout=30.0,
        claim_token=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        run_after=NOW,
        enqueued_at=NOW,
        started_at=NOW,
        meta=meta,
        last_attempted_at=NOW,
    )


def test_the_trace_context_round_trips_through_the_job_meta(spans):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        stored = tracing.trace_meta()
    assert stored is not None
    meta = json.loads(stored)  # what Job.meta holds
    context = parent.get_span_context()
    flags = int(context.trace_flags)
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert meta["trace"]["traceparent"] == expected
    restored = trace.get_current_span(tracing.stored_context(meta)).get_span_context()
    assert (restored.trace_id, restored.span_id) == (context.trace_id, context.span_id)
    assert restored.is_remote


def test_tracestate_rides_along(spans):
    state = trace.TraceState([("vendor", "abc")])
    remote = trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_state=state)
    with trace.use_span(trace.NonRecordingSpan(remote)):
        meta = json.loads(tracing.trace_meta() or "{}")
    assert meta["trace"]["tracestate"] == "vendor=abc"
    restored = trace.get_current_span(tracing.stored_context(meta)).get_span_context()
    assert restored.trace_state.get("vendor") == "abc"


def test_outside_any_span_nothing_is_stored(spans):
    assert tracing.trace_meta() is None
    assert tasks.add.new_job((1, 2), {}).meta_json is None
    assert tracing.stored_context({}) is None
    assert tracing.stored_context({"trace": "garbage"}) is None


def test_every_row_of_an_enqueue_carries_the_context(spans):
    with trace.get_tracer("test").start_as_current_span("parent"):
        options = tasks.add.row_options()
        rows = [tasks.add.new_job((n, n), {}, index=n, options=options) for n in range(3)]
    assert options.meta_json is not None
    assert {row.meta_json for row in rows} == {options.meta_json}
    assert rows[0].model_fields()["meta"] == json.loads(options.meta_json)


def test_the_attempt_span_continues_the_trace_with_semconv_attributes(spans):
    with trace.get_tracer("test").start_as_current_span("parent") as parent:
        meta = json.loads(tracing.trace_meta() or "{}")
    job = claimed(meta, attempts=2)
    seen_inside = []

    def run(j: ClaimedJob) -> Completion:
        seen_inside.append(trace.get_current_span().get_span_context())
        return Completion(j, "3")

    assert isinstance(tracing.traced_run(job, run), Completion)
    (span,) = [s for s in spans.get_finished_spans() if s.name != "parent"]
    context = parent.get_span_context()
    assert span.name == "process tests.testapp.tasks.add"
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.context.trace_id == context.trace_id
    assert span.parent is not None and span.parent.span_id == context.span_id
    assert seen_inside == [span.context]  # current while the task runs
    assert span.status.status_code is trace.StatusCode.UNSET
    assert dict(span.attributes) == {
        "messaging.system": "django_jobs",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "reports",
        "messaging.message.id": "42",
        "messaging.django_jobs.task": "tests.testapp.tasks.add",
        "messaging.django_jobs.attempt": 2,
        "messaging.django_jobs.max_attempts": 3,
        "messaging.django_jobs.priority": 3,
        "messaging.django_jobs.worker_id": str(job.worker_id),
        "messaging.django_jobs.outcome": "successful",
    }


def test_a_failed_attempt_is_an_error_with_the_exception(spans):
    job = claimed({})
    error = {
        "attempt": 1,
        "exception_class": "builtins.ValueError",
        "message": "bad value",
        "traceback": "Traceback ...\nValueError: bad value",
    }
    retry_at = NOW + timedelta(seconds=5)
    tracing.traced_run(job, lambda j: Failure(j, error, retry_at))
    (span,) = spans.get_finished_spans()
    assert span.parent is None  # no stored context: a new trace
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "bad value"
    assert span.attributes["error.type"] == "builtins.ValueError"
    assert span.attributes["messaging.django_jobs.outcome"] == "retried"
    assert span.attributes["messaging.django_jobs.retry_at"] == retry_at.isoformat()
    (event,) = span.events
    assert event.name == "exception"
    assert dict(event.attributes) == {
        "exception.type": "builtins.ValueError",
        "exception.message": "bad value",
        "exception.stacktrace": "Traceback ...\nValueError: bad value",
    }


def test_a_killed_attempt_gets_its_span_from_the_parent(spans):
    job = claimed({})
    failure = Failure(
        job, {"exception_class": "x.WorkerCrashed", "message": "killed"}, None, "gone"
    )
    tracing.record_unfinished(job, failure)
    (span,) = spans.get_finished_spans()
    assert span.start_time == int(NOW.timestamp() * 1e9)  # the attempt's start
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes["messaging.django_jobs.outcome"] == "failed"
    assert span.attributes["messaging.django_jobs.failure_reason"] == "gone"


def test_without_the_extra_nothing_is_imported_and_nothing_stored():
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
import django
django.setup()
from django_jobs.observability import tracing
from django_jobs.worker import runner, process_child, worker
from tests.testapp import tasks
assert tracing.AVAILABLE is False
assert tasks.add.new_job((1, 2), {}).meta_json is None
assert not [m for m in sys.modules if m.startswith("opentelemetry.")], "imported"
print("ok")
"""
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_an_abandoned_attempt_has_one_span_the_workers(spans):
    job = claimed({})
    timeout = Failure(job, {"exception_class": "x.JobTimeout", "message": "too long"}, NOW)

    def run(j: ClaimedJob) -> Completion:
        # The worker gives up on the attempt while its thread still runs it.
        tracing.record_unfinished(j, timeout, still_running=True)
        return Completion(j, "3")

    tracing.traced_run(job, run)
    (span,) = spans.get_finished_spans()
    assert span.attributes["error.type"] == "x.JobTimeout"
    assert tracing.abandoned == set()
    tracing.traced_run(job, lambda j: Completion(j, "3"))  # a later run of the same ids
    assert len(spans.get_finished_spans()) == 2
