"""Turning events into jobs, and the built-in delivery task.

For each dispatched event the relay enqueues, in the same transaction:

- one job per matching ``@subscriber`` task, whose argument is the event;
- one job of :func:`deliver` per matching external publisher.

Both carry the idempotency key ``outbox:<event id>:<target>``. Exactly-once
comes from the relay's transaction (enqueue + mark DISPATCHED commit
together); the key is a second guard against a duplicate while the job is
active.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from django_jobs.codec import encode
from django_jobs.context import current_job
from django_jobs.engine.outbox import get_outbox_engine
from django_jobs.exceptions import Discard, Retry, describe_exception, exception_message
from django_jobs.outbox.publishers import Publisher, get_publisher, get_publishers
from django_jobs.outbox.subscribers import dispatch_key, subscribers_for
from django_jobs.rows import Event, NewJob
from django_jobs.tasks import RowOptions, Task, task

logger = logging.getLogger("django_jobs.outbox")

DELIVERY_TASK = "django_jobs.outbox.delivery.deliver"


# Publisher name -> (publisher, the deliver task with its options): built and
# validated once per publisher, not per job (the relay plans thousands a second).
# Settings changes build new Publisher objects, so the identity check rebuilds.
_delivery_tasks: dict[str, tuple[Publisher, Task[..., None]]] = {}


def delivery_task(publisher: Publisher) -> Task[..., None]:
    """:func:`deliver` with ``publisher``'s queue, priority, attempts and timeout."""
    found = _delivery_tasks.get(publisher.name)
    if found is not None and found[0] is publisher:
        return found[1]
    configured = dataclasses.replace(
        deliver,
        queue_name=publisher.queue_name or deliver.queue_name,
        priority=publisher.priority,
        max_attempts=publisher.max_attempts,
        # The attempt's own timeout is the publisher's; the margin covers connecting.
        timeout=publisher.timeout * 2 + 5,
    )
    _delivery_tasks[publisher.name] = (publisher, configured)
    return configured


def delivery_job(
    publisher: Publisher,
    event: Event,
    event_json: str | None = None,
    options: RowOptions | None = None,
) -> NewJob:
    """The job delivering ``event`` to ``publisher``; ``options``: its delivery
    task's ``row_options()``, when the caller resolved them for a batch."""
    return delivery_task(publisher).encoded_job(
        f"[{encode(publisher.name)},{event_json or encode(event.as_dict())}]",
        "{}",
        dispatch_key(event.id, f"publisher:{publisher.name}"),
        options,
    )


def plan_jobs(events: Sequence[Event]) -> list[NewJob]:
    """The jobs for a batch of events, in event order (the relay's Planner)."""
    # Row options (settings' defaults filled in) resolved once per batch, not per row.
    publishers = [(pub, delivery_task(pub).row_options()) for pub in get_publishers().values()]
    resolved: dict[str, RowOptions] = {}
    rows: list[NewJob] = []
    for event in events:
        event_json = encode(event.as_dict())
        for sub in subscribers_for(event.topic):
            options = resolved.get(sub.name)
            if options is None:
                options = resolved[sub.name] = sub.row_options()
            # The event is the subscriber's one argument: it binds, and it is JSON already.
            key = dispatch_key(event.id, sub.name)
            rows.append(sub.encoded_job(f"[{event_json}]", "{}", key, options))
        rows.extend(
            delivery_job(pub, event, event_json, pub_options)
            for pub, pub_options in publishers
            if pub.accepts(event.topic)
        )
    return rows


def plan_redispatch(event: Event, failed: Sequence[str]) -> list[NewJob]:
    """Delivery jobs for the publishers that gave up on ``event``.

    If the record names none (it predates tracking), every configured
    publisher for the topic gets the event again: receivers dedupe on the id.
    """
    publishers = get_publishers()
    names = [name for name in failed if name in publishers] or [
        name for name, pub in publishers.items() if pub.accepts(event.topic)
    ]
    return [delivery_job(publishers[name], event) for name in names]


@task(max_attempts=8)
def deliver(publisher: str, event: dict[str, Any]) -> None:
    """Deliver one event to one external publisher (built-in task, one job per delivery).

    Retries with the publisher's backoff; after the last attempt the job is
    dead-lettered and the event marked FAILED with the error, for an operator
    to re-dispatch.
    """
    job = current_job()
    engine = get_outbox_engine(job._state.db or "default")
    received = Event.from_dict(event)
    try:
        target = get_publisher(publisher)
    except LookupError as exc:
        engine.record_delivery(received.id, publisher, str(exc), gave_up=True)
        raise Discard(str(exc)) from exc
    try:
        target.publish(received)
    except Exception as exc:
        gave_up = job.attempts >= job.max_attempts
        error = f"{describe_exception(exc)} (attempt {job.attempts}/{job.max_attempts})"
        engine.record_delivery(received.id, publisher, error, gave_up=gave_up)
        if gave_up:
            logger.error("event %s: publisher %s gave up: %s", received.id, publisher, error)
            raise
        delay = target.retry_delay(job.attempts)
        raise Retry(f"{publisher}: {exception_message(exc)}", delay=delay) from exc
    engine.record_delivery(received.id, publisher)
