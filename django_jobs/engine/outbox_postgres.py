"""PostgreSQL outbox: publish and claim in raw SQL, the rest from the ORM engine.

Every statement is a named constant with a comment saying why it is safe
under concurrency. Parameters (the NOTIFY channel too) are always bound,
never formatted in; the connection plumbing is in ``pg``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django_jobs.codec import from_jsonb
from django_jobs.engine.outbox import OutboxEngine
from django_jobs.engine.pg import OUTBOX_CHANNEL, hot_cursor, notify_enabled
from django_jobs.models import OutboxEvent
from django_jobs.rows import Event, NewEvent
from django_jobs.status import OutboxStatus

# Insert one event in the caller's transaction. The id comes from the table's
# sequence at insert time, which is the order the relay dispatches in. When
# %s (notify) is true, pg_notify queues a wake-up for the relays on the
# channel %s (pg.OUTBOX_CHANNEL, bound like every parameter); PostgreSQL
# delivers it only if this transaction commits, and folds identical
# notifications of one transaction into one.
INSERT_EVENT = """
INSERT INTO django_jobs_outboxevent (
    topic, key, payload, headers, created_at, status, attempts, last_error, failed_publishers
) VALUES (%s, %s, %s::jsonb, %s::jsonb, now(), 'PENDING', 0, '', '[]'::jsonb)
RETURNING id, created_at,
    CASE WHEN %s THEN pg_notify(%s, '') END
"""

# Insert a batch of events in input order in one statement: ORDER BY ord makes
# the sequence hand out ids in that order, so per-key order is the list order.
# Notification as in INSERT_EVENT (folded into one per transaction).
INSERT_EVENTS = """
INSERT INTO django_jobs_outboxevent (
    topic, key, payload, headers, created_at, status, attempts, last_error, failed_publishers
)
SELECT t.topic, t.key, t.payload, t.headers, now(), 'PENDING', 0, '', '[]'::jsonb
FROM unnest(%(topic)s::text[], %(key)s::text[], %(payload)s::jsonb[], %(headers)s::jsonb[])
    WITH ORDINALITY AS t(topic, key, payload, headers, ord)
ORDER BY t.ord
RETURNING id, created_at,
    CASE WHEN %(notify)s THEN pg_notify(%(channel)s, '') END
"""

# Claim up to %(limit)s PENDING events, oldest first, for the current
# transaction. FOR UPDATE SKIP LOCKED in a MATERIALIZED CTE: relays lock
# disjoint sets and never wait for each other; an event dispatched by another
# relay since our snapshot is re-checked after locking (status = 'PENDING'
# fails), so it is never dispatched twice. The partial index
# jobs_outbox_pending serves ORDER BY id LIMIT.
#
# Per-key order: a claimed event is "blocked" when an earlier event with the
# same key is PENDING and not in this batch (another relay holds it, or we
# skipped it). Blocked events are not dispatched now; their locks go with our
# transaction. So the later event of a key is dispatched only once the
# earlier one's dispatch has committed, or in the same batch after it: two
# relays never dispatch one key out of id order. Such an earlier event has an
# id below our highest claimed id, so "others" reads only that window of the
# pending index (about one batch per running relay), whatever the backlog or
# the key's history.
#
# Jobs are claimed by (priority, run_after, id) and our jobs' run_after is
# now(), the start of this transaction. If another relay dispatched an
# earlier event of the key in a transaction that started after ours (it fits
# between our BEGIN and this statement on a busy machine), its jobs' run_after
# would be later than ours: "recent" finds such events (dispatched_at =
# that transaction's now() > ours; the partial index jobs_outbox_dispatched
# reads only them) and blocks our later events of the key until a batch that
# starts after it. Job ids and run_after then both follow event order.
CLAIM_EVENTS = """
WITH claimed AS MATERIALIZED (
    SELECT id, topic, key, payload, headers, created_at
    FROM django_jobs_outboxevent
    WHERE status = 'PENDING'
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
others AS (
    SELECT key, min(id) AS first_id
    FROM django_jobs_outboxevent
    WHERE status = 'PENDING' AND key IS NOT NULL
      AND id < (SELECT max(id) FROM claimed)
      AND id NOT IN (SELECT id FROM claimed)
    GROUP BY key
),
recent AS (
    SELECT key, min(id) AS first_id
    FROM django_jobs_outboxevent
    WHERE status = 'DISPATCHED' AND dispatched_at > now() AND key IS NOT NULL
    GROUP BY key
)
SELECT c.id, c.topic, c.key, c.payload, c.headers, c.created_at,
    COALESCE(o.first_id < c.id, false) OR COALESCE(r.first_id < c.id, false) AS blocked
FROM claimed AS c
LEFT JOIN others AS o ON o.key = c.key
LEFT JOIN recent AS r ON r.key = c.key
ORDER BY c.id
"""

# Mark claimed events dispatched. We hold their row locks (CLAIM_EVENTS), so
# no other relay can touch them before we commit; status = 'PENDING' is a
# guard, not a race.
MARK_DISPATCHED = """
UPDATE django_jobs_outboxevent
SET status = 'DISPATCHED', dispatched_at = now()
WHERE id = ANY(%s::bigint[]) AND status = 'PENDING'
"""


class PostgresOutboxEngine(OutboxEngine):
    supports_notify = True

    def _cursor(self) -> Any:
        # Prepared statements (PREPARED_STATEMENTS): publish and claim run the
        # same statements over and over on one connection.
        return hot_cursor(self.connection)

    @property
    def notify_enabled(self) -> bool:
        return notify_enabled()

    def insert_events(self, rows: Sequence[NewEvent]) -> list[OutboxEvent]:
        with self._cursor() as cursor:
            if len(rows) == 1:
                row = rows[0]
                cursor.execute(
                    INSERT_EVENT,
                    [
                        row.topic,
                        row.key,
                        row.payload_json,
                        row.headers_json,
                        self.notify_enabled,
                        OUTBOX_CHANNEL,
                    ],
                )
                returned = [cursor.fetchone()]
            else:
                cursor.execute(
                    INSERT_EVENTS,
                    {
                        "topic": [r.topic for r in rows],
                        "key": [r.key for r in rows],
                        "payload": [r.payload_json for r in rows],
                        "headers": [r.headers_json for r in rows],
                        "notify": self.notify_enabled,
                        "channel": OUTBOX_CHANNEL,
                    },
                )
                returned = sorted(cursor.fetchall())  # by id == input order
        return [
            self._model(row, event_id, created_at)
            for row, (event_id, created_at, _) in zip(rows, returned, strict=True)
        ]

    def _model(self, row: NewEvent, event_id: int, created_at: Any) -> OutboxEvent:
        event = OutboxEvent(
            id=event_id,
            topic=row.topic,
            key=row.key,
            payload=json.loads(row.payload_json),
            headers=json.loads(row.headers_json),
            created_at=created_at,
            status=OutboxStatus.PENDING,
        )
        event._state.adding = False
        event._state.db = self.alias
        return event

    def claim_events(self, limit: int) -> tuple[list[Event], int]:
        with self._cursor() as cursor:
            cursor.execute(CLAIM_EVENTS, {"limit": limit})
            rows = cursor.fetchall()
        events = [
            Event(
                id=r[0],
                topic=r[1],
                key=r[2],
                payload=from_jsonb(r[3]),
                headers=from_jsonb(r[4]) or {},
                created_at=r[5],
            )
            for r in rows
            if not r[6]
        ]
        return events, len(rows) - len(events)

    def mark_dispatched(self, ids: Sequence[int]) -> int:
        with self._cursor() as cursor:
            cursor.execute(MARK_DISPATCHED, [list(ids)])
            return int(cursor.rowcount)
