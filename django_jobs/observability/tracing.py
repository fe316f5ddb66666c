"""OpenTelemetry traces (the optional ``[otel]`` extra, ``opentelemetry-api``).

Two halves, both off unless opentelemetry is importable and a tracer provider
is configured (``trace.set_tracer_provider``, or ``opentelemetry-instrument``):

- **Enqueue** (:func:`trace_meta`): the current trace context, as the
  configured propagator writes it (W3C ``traceparent`` / ``tracestate``, plus
  ``baggage`` with the default propagators), is stored with the job in
  ``Job.meta["trace"]``. ``Task.row_options`` asks once per enqueue call, so
  ``enqueue``, ``enqueue_many`` and the ``django.tasks`` backend carry it (the
  scheduler and the outbox relay ask too, but run outside any span); an
  enqueue outside any span stores nothing.
- **Run** (:func:`traced_run`): each attempt runs in a CONSUMER span whose
  parent is that stored context, so every attempt of a job (retries included)
  lands in the trace of the code that enqueued it. The span follows the OTel
  messaging semantic conventions (``messaging.*`` attributes below); a failed
  attempt gets status ERROR and the exception as an ``exception`` event. It is
  the current span while the task runs: jobs the task enqueues continue the trace.
  The process pool runs :func:`traced_run` in its children (each flushes its
  spans when it exits, :func:`flush`). An attempt whose child was killed
  (crash, timeout), or whose thread was abandoned at its timeout, gets its
  span from the worker (:func:`record_unfinished`).

Without the extra, :data:`AVAILABLE` is False, decided once at import, and the
hot paths test only that constant. With the extra but no provider, each call
costs one look-up of the global provider until one is set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from django_jobs.rows import ClaimedJob, Completion, Failure

try:
    # Module level, once: without the extra, AVAILABLE is False and nothing else runs.
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    AVAILABLE = True
except ImportError:  # the [otel] extra is not installed: tracing stays off, at no cost
    AVAILABLE = False

__all__ = [
    "AVAILABLE",
    "flush",
    "record_unfinished",
    "trace_meta",
    "traced_run",
    "with_trace",
]

logger = logging.getLogger("django_jobs.observability.tracing")

T = TypeVar("T")

# The key of Job.meta holding the propagator's carrier.
META_KEY = "trace"
SYSTEM = "django_jobs"
INSTRUMENTATION_NAME = "django_jobs"

# (job id, attempt) of the thread pool's attempts abandoned at their timeout,
# whose span the worker recorded: their runner thread must not end a second one.
abandoned: set[tuple[int, int]] = set()

# The tracer of the configured provider, found once one is set (a provider,
# once set, cannot be replaced: OpenTelemetry allows one per process).
_tracer: Any = None


def tracer() -> Any:
    """The django_jobs tracer, or None while no tracer provider is configured."""
    global _tracer
    if _tracer is None:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            return None  # nothing configured (yet): ask again next time
        _tracer = provider.get_tracer(INSTRUMENTATION_NAME)
    return _tracer


# -- enqueue --------------------------------------------------------------------


def trace_carrier() -> dict[str, str] | None:
    """The current trace context as the propagator writes it, or None (no
    provider, or no valid span is current)."""
    if tracer() is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def trace_meta() -> str | None:
    """``Job.meta`` as JSON text holding the current trace context, or None."""
    carrier = trace_carrier()
    if carrier is None:
        return None
    return json.dumps({META_KEY: carrier}, separators=(",", ":"))


def with_trace(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` plus the current trace context, if any, for jobs made without a
    ``NewJob``: a dead letter retried by an operator joins the operator's trace
    (a traced admin request); the letter kept none of the original job's."""
    carrier = trace_carrier() if AVAILABLE else None
    return meta if carrier is None else {**meta, META_KEY: carrier}


def stored_context(meta: Mapping[str, Any] | None) -> Any:
    """The OpenTelemetry Context stored in a job's ``meta``, or None."""
    carrier = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    if not isinstance(carrier, Mapping):
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


# -- run ------------------------------------------------------------------------


def span_name(job: ClaimedJob) -> str:
    """``process <task>``: the operation, then the task (its queue is an attribute)."""
    return f"process {job.task_name}"


def span_attributes(job: ClaimedJob) -> dict[str, Any]:
    """The messaging semantic-convention attributes of an attempt of ``job``."""
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.queue_name,
        "messaging.message.id": str(job.id),
        "messaging.django_jobs.task": job.task_name,
        "messaging.django_jobs.attempt": job.attempts,
        "messaging.django_jobs.max_attempts": job.max_attempts,
        "messaging.django_jobs.priority": job.priority,
        "messaging.django_jobs.worker_id": str(job.worker_id),
    }


def outcome_name(outcome: object) -> str:
    """successful, retried, failed or lost (the worker metrics' status label)."""
    if isinstance(outcome, Completion):
        return "successful"
    if isinstance(outcome, Failure):
        return "retried" if outcome.retry_at is not None else "failed"
    # Settled.WRITTEN: an atomic task committed its own completion.
    return "successful" if getattr(outcome, "value", None) == "written" else "lost"


def end_attempt(span: Any, outcome: object, end_time: int | None = None) -> None:
    """Record ``outcome`` on ``span`` and end it."""
    span.set_attribute("messaging.django_jobs.outcome", outcome_name(outcome))
    if isinstance(outcome, Failure):
        error = outcome.error
        exception_type = str(error.get("exception_class") or "")
        message = str(error.get("message") or "")
        span.set_attribute("error.type", exception_type or "_OTHER")
        if outcome.retry_at is not None:
            span.set_attribute("messaging.django_jobs.retry_at", outcome.retry_at.isoformat())
        elif outcome.reason:
            span.set_attribute("messaging.django_jobs.failure_reason", outcome.reason)
        # What span.record_exception writes, from the error entry the runner
        # made (the exception is formatted once, for Job.errors).
        span.add_event(
            "exception",
            {
                "exception.type": exception_type,
                "exception.message": message,
                "exception.stacktrace": str(error.get("traceback") or ""),
            },
        )
        span.set_status(Status(StatusCode.ERROR, message or exception_type))
    span.end(end_time=end_time)


def traced_run(job: ClaimedJob, run: Callable[[ClaimedJob], T]) -> T:
    """``run(job)`` inside the CONSUMER span of this attempt (see the module
    docstring); just ``run(job)`` while no tracer provider is configured.
    ``run`` must not raise (``runner.run_job`` never does)."""
    found = tracer()
    if found is None:
        return run(job)
    try:
        span = found.start_span(
            span_name(job),
            context=stored_context(job.meta),
            kind=SpanKind.CONSUMER,
            attributes=span_attributes(job),
        )
        token = otel_context.attach(trace.set_span_in_context(span))
    except Exception:  # a broken tracer must not stop the job
        logger.warning("job %s: could not start its span", job.id, exc_info=True)
        return run(job)
    try:
        outcome = run(job)
    finally:
        otel_context.detach(token)
    if abandoned and (job.id, job.attempts) in abandoned:
        # Timed out while it ran: the worker recorded this attempt's span
        # already (record_unfinished); an unended span is never exported.
        abandoned.discard((job.id, job.attempts))
        return outcome
    try:
        end_attempt(span, outcome)
    except Exception:
        logger.warning("job %s: could not end its span", job.id, exc_info=True)
    return outcome


def record_unfinished(job: ClaimedJob, failure: Failure, *, still_running: bool = False) -> None:
    """The span of an attempt the worker gave up on: its process was killed (the
    process pool's crashes and timeouts) or, ``still_running``, its thread was
    abandoned at its timeout (the thread pool; that thread then drops its own
    span). Recorded by the worker, from the attempt's start."""
    found = tracer()
    if found is None:
        return
    if still_running:
        abandoned.add((job.id, job.attempts))
    try:
        started = job.last_attempted_at or job.started_at
        span = found.start_span(
            span_name(job),
            context=stored_context(job.meta),
            kind=SpanKind.CONSUMER,
            attributes=span_attributes(job),
            start_time=_nanoseconds(started),
        )
        end_attempt(span, failure)
    except Exception:
        logger.warning("job %s: could not record its span", job.id, exc_info=True)


def _nanoseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def flush(timeout_millis: int = 5000) -> None:
    """Export this process's finished spans now (a process-pool child ends
    with ``os._exit``, which skips the SDK's exit hook)."""
    if tracer() is None:
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        try:
            force_flush(timeout_millis)
        except Exception:
            logger.warning("could not flush the spans", exc_info=True)
