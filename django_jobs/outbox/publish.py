"""``publish()`` and ``publish_many()``: write events in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS

from django_jobs.conf import jobs_settings
from django_jobs.outbox.events import new_event
from django_jobs.rows import NewEvent

if TYPE_CHECKING:
    from django_jobs.models import OutboxEvent

_FIELDS = ("topic", "payload", "key", "headers")

EventSpec = Mapping[str, Any] | Sequence[Any]


def publish(
    topic: str,
    payload: Any,
    key: str | None = None,
    headers: Mapping[str, Any] | None = None,
    *,
    database: str = DEFAULT_DB_ALIAS,
) -> OutboxEvent:
    """Store an event in the caller's current transaction and return it.

    It reaches subscribers and publishers if and only if that transaction
    commits (in autocommit mode it is its own transaction). ``payload`` and
    ``headers`` values must be JSON-serializable; ``key`` (a string) orders
    events: events with the same key are dispatched in publish order.
    Invalid input raises TypeError/ValueError and writes nothing.
    """
    # The engine imports the models, and django_jobs.outbox is imported by tasks
    # modules while the app registry is still loading.
    from django_jobs.engine.outbox import get_outbox_engine

    row = new_event(topic, payload, key, headers)
    event = get_outbox_engine(database).insert_events([row])[0]
    _eager_dispatch(database)
    return event


def _eager_dispatch(database: str) -> None:
    if jobs_settings.EAGER:
        # Eager mode runs the worker's runner, which imports the models: at call time.
        from django_jobs import eager

        eager.dispatch_on_commit(database)


def _spec_to_row(index: int, spec: Any) -> NewEvent:
    try:
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(_FIELDS)
            if unknown:
                raise TypeError(
                    f"unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                    f"valid: {', '.join(_FIELDS)}"
                )
            if "topic" not in spec or "payload" not in spec:
                raise TypeError("needs 'topic' and 'payload'")
            return new_event(**spec)
        if isinstance(spec, list | tuple) and 2 <= len(spec) <= 4:
            return new_event(*spec)
        raise TypeError(
            "must be a (topic, payload[, key[, headers]]) tuple or a dict with those fields, "
            f"got {type(spec).__name__}"
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"publish_many item {index}: {exc}") from exc


def publish_many(
    events: Iterable[EventSpec], *, database: str = DEFAULT_DB_ALIAS
) -> list[OutboxEvent]:
    """Store several events in one round trip, in the caller's transaction.

    Each item is a ``(topic, payload[, key[, headers]])`` tuple or a dict with
    those fields. Every item is validated before anything is written; events
    with the same key are dispatched in list order.
    """
    from django_jobs.engine.outbox import get_outbox_engine  # as in publish()

    rows = [_spec_to_row(index, spec) for index, spec in enumerate(events)]
    if not rows:
        return []
    inserted = get_outbox_engine(database).insert_events(rows)
    _eager_dispatch(database)
    return inserted
