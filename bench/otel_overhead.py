#!/usr/bin/env python
"""What OpenTelemetry tracing costs on the enqueue and run hot paths, in process.

    PYTHONPATH=. python bench/otel_overhead.py [N]

Runs itself once per mode, each in a fresh interpreter (a tracer provider
cannot be unset, and "absent" hides the package before anything imports it):

- ``absent``: ``opentelemetry`` not importable (the ``[otel]`` extra not installed);
- ``no-provider``: the API installed, no tracer provider configured;
- ``provider``: an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an
  exporter that drops everything (the cost of making spans, not of shipping them).

For each, best of 5 rounds of N (default 20,000): building the row of an
enqueue (``Task.new_job``: where the trace context is injected; the insert
itself is not timed) outside and inside a current span, and ``run_job`` of a
no-op task (no database access: the outcome is written by the worker loop
afterwards), with the trace context a traced enqueue stores. Prints
microseconds per operation. No database is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

MODES = ("absent", "no-provider", "provider")
ROUNDS = 5


def best_of(n: int, operation: Callable[[], object]) -> float:
    """Microseconds per call of ``operation``, the best of ROUNDS rounds of ``n``."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            operation()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def measure(mode: str, n: int) -> dict[str, float]:
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")
    import django  # after the mode is set up: "absent" must precede every import

    django.setup()
    from bench.clients import jobs_tasks  # needs the app registry
    from django_jobs.observability import tracing
    from django_jobs.rows import ClaimedJob
    from django_jobs.worker.runner import run_job

    span_context: Callable[[], object] | None = None
    if mode == "provider":
        from opentelemetry import trace  # the SDK exists in this mode only
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Drop(SpanExporter):
            def export(self, spans: object) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer("bench")

        def span_context() -> object:
            return tracer.start_as_current_span("request")

    assert tracing.AVAILABLE is (mode != "absent")
    noop = jobs_tasks.noop
    results = {"enqueue row": best_of(n, lambda: noop.new_job((), {}))}
    meta: dict[str, object] = {}
    if span_context is not None:
        with span_context():  # type: ignore[attr-defined]
            results["enqueue row, in a span"] = best_of(n, lambda: noop.new_job((), {}))
            meta = json.loads(tracing.trace_meta() or "{}")
    now = datetime.now(UTC)
    job = ClaimedJob(
        id=1,
        task_name=noop.name,
        queue_name="default",
        priority=0,
        args=[],
        kwargs={},
        attempts=1,
        max_attempts=3,
        timeout=300.0,
        claim_token=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        run_after=now,
        enqueued_at=now,
        started_at=now,
        meta=meta,
    )
    results["run_job"] = best_of(n, lambda: run_job(job))
    return results


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--mode":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"N={n}, best of {ROUNDS}, microseconds per operation")
    for mode in MODES:
        done = subprocess.run(
            [sys.executable, __file__, "--mode", mode, str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        for name, micros in json.loads(done.stdout.splitlines()[-1]).items():
            print(f"{mode:12} {name:24} {micros:8.2f}")


if __name__ == "__main__":
    main()
