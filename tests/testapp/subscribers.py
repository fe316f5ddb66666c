"""Outbox subscribers used by the tests; each records what it received."""

from __future__ import annotations

from django_jobs import current_job, subscriber
from django_jobs.outbox import Event
from tests.testapp.models import Event as Log


def _log(name: str, event: Event) -> int:
    Log.objects.create(
        job_id=current_job().id,
        name=name,
        value={"event": event.id, "topic": event.topic, "key": event.key, "payload": event.payload},
    )
    return event.id


@subscriber("order.created")
def on_order_created(event: Event) -> int:
    return _log("on_order_created", event)


@subscriber("order.*")
def on_any_order(event: Event) -> int:
    return _log("on_any_order", event)


@subscriber("bulk.item")
def bulk_first(event: Event) -> None:
    """Never run by the race test (no worker): only its jobs are counted."""


@subscriber("bulk.#")
def bulk_second(event: Event) -> None:
    """Same, a second subscriber of the same topic through a pattern."""


@subscriber("seq.step")
def record_sequence(event: Event) -> int:
    return _log("record_sequence", event)


@subscriber("bench.tick")
def bench_tick(event: Event) -> None:
    """No-op subscriber for bench/outbox.py."""
