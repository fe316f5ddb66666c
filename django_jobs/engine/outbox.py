"""Outbox storage: insert events, claim and dispatch them, record deliveries.

:class:`OutboxEngine` is the portable Django ORM implementation (SQLite,
MySQL/MariaDB, PostgreSQL); ``outbox_postgres`` replaces the hot path (insert,
claim) with raw SQL. The outbox package talks only to this interface.

Dispatch rules every implementation keeps:

- One transaction claims a batch of PENDING events, enqueues their jobs and
  marks them DISPATCHED: it commits all of it or nothing, so an event is
  dispatched exactly once even if the relay is killed halfway.
- An event with a key is dispatched only if no earlier event with the same
  key is still PENDING outside the batch (an earlier one claimed by another
  relay, or skipped because it is locked): same-key events are dispatched in
  id order, also with several relays running. Such an event stays PENDING
  ("blocked") and is taken by a later batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import JSONField, Min, Value
from django.db.models.functions import Now

from django_jobs.engine import get_engine
from django_jobs.models import OutboxEvent, OutboxEventQuerySet
from django_jobs.rows import DispatchReport, Event, NewEvent, NewJob
from django_jobs.status import OutboxStatus

logger = logging.getLogger("django_jobs.engine")

# Events of one batch -> the jobs to enqueue for them (subscribers, publishers).
Planner = Callable[[Sequence[Event]], list["NewJob"]]
# A FAILED event and its failed publishers -> the delivery jobs to enqueue again.
RedispatchPlanner = Callable[[Event, Sequence[str]], list["NewJob"]]

MAX_ERROR_LENGTH = 4000
_EVENT_FIELDS = ("id", "topic", "key", "payload", "headers", "created_at")


def event_from_row(row: dict[str, Any]) -> Event:
    return Event(
        id=row["id"],
        topic=row["topic"],
        key=row["key"],
        payload=row["payload"],
        headers=row["headers"] or {},
        created_at=row["created_at"],
    )


class OutboxEngine:
    """Outbox operations for one database alias, through the Django ORM."""

    supports_notify = False

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    def _events(self) -> OutboxEventQuerySet:
        return OutboxEvent.objects.using(self.alias)

    # -- publish ---------------------------------------------------------

    def insert_events(self, rows: Sequence[NewEvent]) -> list[OutboxEvent]:
        """Insert events in the caller's transaction; return them in input order."""

        payloads = [json.loads(row.payload_json) for row in rows]
        models = [
            OutboxEvent(
                topic=row.topic,
                key=row.key,
                # A JSONField stores Python None as SQL NULL; a None payload is JSON null.
                payload=Value(None, JSONField()) if payload is None else payload,
                headers=json.loads(row.headers_json),
            )
            for row, payload in zip(rows, payloads, strict=True)
        ]
        created = self._events().bulk_create(models)
        for model, payload in zip(created, payloads, strict=True):
            model.payload = payload
        if any(not isinstance(model.created_at, datetime) for model in created):
            # Databases that cannot return columns from INSERT: read the defaults back.
            stamps = dict(
                self._events()
                .filter(pk__in=[m.pk for m in created])
                .values_list("pk", "created_at")
            )
            for model in created:
                model.created_at = stamps[model.pk]
        return created

    # -- relay -----------------------------------------------------------

    def claim_events(self, limit: int) -> tuple[list[Event], int]:
        """Lock up to ``limit`` PENDING events (oldest first) in the current
        transaction; return the dispatchable ones and how many were blocked."""
        candidates = self._events().pending().dispatch_order()
        if self.connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        # SQLite: the IMMEDIATE transaction already serializes relays.
        rows = list(candidates.values(*_EVENT_FIELDS)[:limit])
        first_outside: dict[str, int] = {}
        if any(row["key"] is not None for row in rows):
            # Pending events below our highest id that we did not get (locked by
            # another relay): the earliest per key blocks our later ones.
            first_outside = {
                key: first
                for key, first in self._events()
                .pending()
                .filter(key__isnull=False, pk__lt=rows[-1]["id"])
                .exclude(pk__in=[row["id"] for row in rows])
                .values("key")
                .annotate(first=Min("id"))
                .values_list("key", "first")
                if key is not None
            }
        events = [
            event_from_row(row)
            for row in rows
            if row["key"] is None
            or row["key"] not in first_outside
            or row["id"] < first_outside[row["key"]]
        ]
        return events, len(rows) - len(events)

    def mark_dispatched(self, ids: Sequence[int]) -> int:
        return (
            self._events()
            .filter(pk__in=ids, status=OutboxStatus.PENDING)
            .update(status=OutboxStatus.DISPATCHED, dispatched_at=Now())
        )

    def dispatch_batch(self, limit: int, plan: Planner) -> DispatchReport:
        """Claim, enqueue the planned jobs and mark DISPATCHED, in one transaction."""
        with transaction.atomic(using=self.alias):
            events, blocked = self.claim_events(limit)
            if not events:
                return DispatchReport(blocked=blocked)
            rows = plan(events)
            if rows:
                get_engine(self.alias).insert_jobs(rows)
            self.mark_dispatched([event.id for event in events])
        return DispatchReport(dispatched=len(events), jobs=len(rows), blocked=blocked)

    # -- external deliveries ---------------------------------------------

    def record_delivery(
        self, event_id: int, publisher: str, error: str | None = None, *, gave_up: bool = False
    ) -> bool:
        """Count one delivery attempt of ``publisher``; a publisher that gave up
        makes the event FAILED, its later success (after re-dispatch) clears that.
        Returns False if the event no longer exists (pruned)."""
        with transaction.atomic(using=self.alias):
            event = (
                self._events()
                .select_for_update()
                .filter(pk=event_id)
                .only("status", "attempts", "last_error", "failed_publishers")
                .first()
            )
            if event is None:
                return False
            failed = [name for name in event.failed_publishers if name != publisher]
            # While a publisher has given up, its error stays the one shown: a
            # passing retry of another publisher must not hide why the event FAILED.
            if error is not None and (gave_up or not failed):
                event.last_error = f"{publisher}: {error}"[:MAX_ERROR_LENGTH]
            if error is not None and gave_up:
                failed.append(publisher)
            event.attempts += 1
            event.failed_publishers = failed
            if failed:
                event.status = OutboxStatus.FAILED
            elif event.status == OutboxStatus.FAILED:
                event.status = OutboxStatus.DISPATCHED
            event.save(update_fields=["status", "attempts", "last_error", "failed_publishers"])
        return True

    def redispatch_failed(self, ids: Sequence[int], plan: RedispatchPlanner) -> int:
        """FAILED events -> DISPATCHED, with new delivery jobs for the publishers
        that gave up. Subscribers are not run again. Returns the events re-dispatched."""
        with transaction.atomic(using=self.alias):
            events = list(
                self._events().select_for_update().failed().filter(pk__in=ids).dispatch_order()
            )
            rows: list[NewJob] = []
            for event in events:
                rows.extend(plan(event_from_row(vars(event)), list(event.failed_publishers or [])))
            if rows:
                get_engine(self.alias).insert_jobs(rows)
            self._events().filter(pk__in=[e.pk for e in events]).update(
                status=OutboxStatus.DISPATCHED, failed_publishers=[], dispatched_at=Now()
            )
        return len(events)

    # -- retention -------------------------------------------------------

    def prune_dispatched(self, before: datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` events dispatched before ``before``."""
        ids = list(
            self._events()
            .dispatched()
            .filter(dispatched_at__lt=before)
            .order_by("dispatched_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        deleted, _ = self._events().filter(pk__in=ids).delete()
        return deleted


@cache
def _outbox_engine_for(alias: str, vendor: str) -> OutboxEngine:
    if vendor == "postgresql":
        # psycopg is an optional dependency: imported by PostgreSQL projects only.
        from django_jobs.engine.outbox_postgres import PostgresOutboxEngine

        return PostgresOutboxEngine(alias)
    return OutboxEngine(alias)


def get_outbox_engine(alias: str = DEFAULT_DB_ALIAS) -> OutboxEngine:
    """The outbox engine for database ``alias``."""
    return _outbox_engine_for(alias, connections[alias].vendor)
