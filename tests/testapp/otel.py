"""An OpenTelemetry SDK set-up for the tests: spans as JSON lines in a file.

``tests/settings.py`` calls :func:`export_to_file` when
``DJANGO_JOBS_TEST_OTEL_SPANS`` names a file, so a ``runworker`` subprocess (and
its process-pool children: forked ones inherit the provider, spawned ones run
the settings again) appends every span it ends to that file. The batch
processor only exports when flushed or shut down (a long delay), so the tests
also show that a worker and its children flush before they exit.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What the tests read of a span: ids in hex, as OTLP/JSON writes them."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "start_time": span.start_time,
        "end_time": span.end_time,
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    """Appends one JSON line per span; several processes may share the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with self.path.open("a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)  # whole lines, whichever process writes
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def export_to_file(path: str) -> None:
    """Set this process's tracer provider: batched spans appended to ``path``."""
    provider = TracerProvider(resource=Resource.create({"service.name": "django_jobs-worker"}))
    # A minute's delay: spans reach the file only when the worker (or a child) flushes.
    provider.add_span_processor(
        BatchSpanProcessor(JsonLinesExporter(path), schedule_delay_millis=60_000)
    )
    trace.set_tracer_provider(provider)


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


_memory: InMemorySpanExporter | None = None


def in_memory_spans() -> InMemorySpanExporter:
    """The exporter of the test process's own provider, set up on first use
    (one provider per process: OpenTelemetry refuses to replace it)."""
    global _memory
    if _memory is None:
        _memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "django_jobs-tests"}))
        provider.add_span_processor(SimpleSpanProcessor(_memory))
        trace.set_tracer_provider(provider)
    return _memory
