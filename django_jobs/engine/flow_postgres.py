"""The gated claim on PostgreSQL in ONE statement (``CLAIM_GATED``): mixed into
``PostgresEngine`` in front of the ORM version (``engine.flow``).

The ORM version takes 5 to 7 round trips in a transaction (skip scan, lane
locks, clock, RUNNING counts, circuits, heads, rate windows). Here the skip
scan, the lane locks, the RUNNING counts, the rate windows, the claim and the
lane writes are one autocommit statement, so a lane's lock is held for that
statement only. Lanes with a circuit are left to the ORM version (the
circuit's state machine lives there); the statement says when it saw some.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django_jobs.engine.claimed import NULL_PADDING, RETURNING_CLAIMED, claimed_mapper
from django_jobs.engine.flow import LANES_PER_CLAIM, FlowOperations
from django_jobs.engine.pg import hot_cursor
from django_jobs.flow.rates import RATE_BUCKETS
from django_jobs.rows import ClaimedJob

# Tries of one gated claim while lanes were skipped (locked by another
# claimer's statement, or claimed from since ours began) and slots remain:
# those statements last about a millisecond, so trying again at once is
# cheaper than leaving the slots empty until the next poll.
TRIES = 3

_claimed_after_kind_and_lane = claimed_mapper(2)

_NOT_PAUSED = "queue_name <> ALL(ARRAY(SELECT name FROM django_jobs_queue WHERE paused))"

# Why one statement is safe although its snapshot is taken before its locks:
#
# * Every claim of a lane's jobs writes that lane's row (``bumped``: the rate
#   window, or the row rewritten as it is), in the claim's own transaction,
#   the ORM version included.
# * ``gate`` reads each lane's row version (xmin) in our snapshot (``seen``)
#   and locks the newest version (``held``, FOR UPDATE SKIP LOCKED: READ
#   COMMITTED locks the newest committed version). A lane is used only where
#   the two are equal: then no claim of that lane committed after our
#   snapshot began (it would have made a new version), and none can commit
#   before our statement ends (we hold the lock), so the snapshot's RUNNING
#   count and rate window are exact, or conservative (a completion committed
#   since only frees a slot we do not use). A lane locked by another claimer,
#   or changed since our snapshot, is skipped, and the engine tries again.
# * The head jobs are locked FOR UPDATE SKIP LOCKED and re-checked READY on
#   the newest version (a job cancelled meanwhile is not taken); the fast
#   claim never takes a job with a lane.
# * The rate windows use ``clock``, read once, during the statement: every
#   start already in a window we use was recorded by a claim committed before
#   our snapshot, so at an earlier time: windows only move forward. The
#   attempt's recorded start is that same time.
#
# Cost: PostgreSQL runs a CTE only as far as its reader pulls, so lanes are
# scanned (index jobs_job_ready_lane, one probe per lane, from %(after)s on:
# the engine's rotation), locked and counted one by one, in key order, only
# until %(limit)s heads are found; the lanes after them are not touched.
# Rows returned: kind 'claim' (the lane, then claimed.CLAIMED_COLUMNS). Only
# when fewer than %(limit)s were claimed (then every scanned lane was
# visited): 'scan' (the last lane scanned, then how many), 'skipped' and
# 'circuit' (NULL, then how many lanes: locked or changed; with a circuit).
_BUCKET = "floor(clock.t * %(buckets)s / {lane}.rate_period)::bigint"
_SHORT = "WHERE (SELECT count(*) FROM claimed) < %(limit)s"
CLAIM_GATED = f"""
WITH RECURSIVE waiting(name) AS (
    SELECT MIN(flow_lane) FROM django_jobs_job WHERE status = 'READY' AND flow_lane >= %(after)s
    UNION ALL
    SELECT (SELECT MIN(flow_lane) FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane > waiting.name)
    FROM waiting WHERE waiting.name IS NOT NULL
), clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS t
), gate AS MATERIALIZED (
    SELECT seen.key, seen.circuit IS NOT NULL AS has_circuit,
        held.version IS NOT DISTINCT FROM seen.xmin::text AS usable,
        CASE WHEN held.version IS DISTINCT FROM seen.xmin::text THEN 0 ELSE LEAST(
            %(limit)s,
            held.concurrency_limit - (
                SELECT count(*) FROM django_jobs_job AS running
                WHERE running.status = 'RUNNING' AND running.flow_lane = held.key
            ),
            held.rate_limit - (
                SELECT COALESCE(sum((pair->>1)::int), 0)
                FROM jsonb_array_elements(held.rate_buckets) AS pair
                WHERE (pair->>0)::bigint BETWEEN {_BUCKET.format(lane="held")} - %(buckets)s
                    AND {_BUCKET.format(lane="held")}
            )
        ) END AS free
    FROM (SELECT name FROM waiting WHERE name IS NOT NULL LIMIT %(lanes)s) AS scanned
    JOIN django_jobs_flowlane AS seen ON seen.key = scanned.name
    LEFT JOIN LATERAL (
        SELECT lane.key, lane.xmin::text AS version, lane.concurrency_limit, lane.rate_limit,
            lane.rate_period, lane.rate_buckets
        FROM django_jobs_flowlane AS lane
        WHERE lane.key = scanned.name AND lane.circuit IS NULL
        FOR UPDATE SKIP LOCKED
    ) AS held ON true
    CROSS JOIN clock
), candidates AS MATERIALIZED (
    SELECT head.id FROM gate CROSS JOIN LATERAL (
        SELECT id FROM django_jobs_job
        WHERE status = 'READY' AND flow_lane = gate.key AND run_after <= now()
            AND (%(queues)s::text[] IS NULL OR queue_name = ANY(%(queues)s::text[]))
            AND {_NOT_PAUSED}
        ORDER BY priority DESC, run_after, id
        LIMIT gate.free
        FOR UPDATE SKIP LOCKED
    ) AS head
    WHERE gate.free > 0
    LIMIT %(limit)s
), claimed AS (
    UPDATE django_jobs_job AS job
    SET status = 'RUNNING',
        attempts = job.attempts + 1,
        started_at = COALESCE(job.started_at, to_timestamp(clock.t)),
        last_attempted_at = to_timestamp(clock.t),
        worker_id = %(worker_id)s,
        claim_token = gen_random_uuid(),
        lease_expires_at = now() + %(lease)s * interval '1 second'
    FROM candidates CROSS JOIN clock
    WHERE job.id = candidates.id
    RETURNING job.flow_lane, {RETURNING_CLAIMED}
), bumped AS (
    UPDATE django_jobs_flowlane AS lane
    SET rate_buckets = CASE
        WHEN lane.rate_limit IS NULL OR lane.rate_period IS NULL THEN lane.rate_buckets
        ELSE (
            SELECT COALESCE(jsonb_agg(jsonb_build_array(bucket, n) ORDER BY bucket), '[]'::jsonb)
            FROM (
                SELECT bucket, sum(n)::int AS n FROM (
                    SELECT (pair->>0)::bigint AS bucket, (pair->>1)::int AS n
                    FROM jsonb_array_elements(lane.rate_buckets) AS pair
                    UNION ALL
                    SELECT {_BUCKET.format(lane="lane")}, started.n::int
                ) AS pairs
                WHERE bucket >= {_BUCKET.format(lane="lane")} - %(buckets)s
                GROUP BY bucket
            ) AS kept
        ) END
    FROM (SELECT flow_lane, count(*) AS n FROM claimed GROUP BY flow_lane) AS started
        CROSS JOIN clock
    WHERE lane.key = started.flow_lane
    RETURNING lane.key
)
SELECT 'claim', claimed.* FROM claimed
UNION ALL
SELECT 'scan', (SELECT max(key) FROM gate), (SELECT count(*) FROM gate){NULL_PADDING}
{_SHORT}
UNION ALL
SELECT 'skipped', NULL, (SELECT count(*) FROM gate WHERE NOT usable AND NOT has_circuit)
    {NULL_PADDING}
{_SHORT}
UNION ALL
SELECT 'circuit', NULL, (SELECT count(*) FROM gate WHERE has_circuit){NULL_PADDING}
{_SHORT}
"""


class PostgresFlowOperations(FlowOperations):
    """``claim_gated`` by CLAIM_GATED; the ORM version for lanes with a circuit."""

    # Statements of the last gated claim (bench/flow_control.py reports it).
    last_gated_statements = 0

    def claim_gated(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        claimed: list[ClaimedJob] = []
        circuits = False
        statements = 0
        for _ in range(TRIES):
            jobs, skipped, circuits, wrapped = self._claim_gated_once(
                worker_id, queues, limit - len(claimed), lease_seconds
            )
            statements += 1
            claimed += jobs
            if len(claimed) >= limit or not (skipped or wrapped):
                break
        if circuits and len(claimed) < limit:
            # The ORM version claims every lane, circuits included (its own
            # transaction, lanes locked then counted: see engine.flow).
            claimed += super().claim_gated(worker_id, queues, limit - len(claimed), lease_seconds)
            statements += 1
        self.last_gated_statements = statements
        return claimed

    def _claim_gated_once(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> tuple[list[ClaimedJob], int, bool, bool]:
        """One CLAIM_GATED: (claims, lanes skipped, circuit lanes seen,
        whether lanes before the scan's start were left out)."""
        after = self._lane_cursor
        with hot_cursor(self.connection) as cursor:
            cursor.execute(
                CLAIM_GATED,
                {
                    "after": after,
                    "lanes": LANES_PER_CLAIM,
                    "limit": limit,
                    "buckets": RATE_BUCKETS,
                    "queues": list(queues) if queues else None,
                    "worker_id": worker_id,
                    "lease": lease_seconds,
                },
            )
            rows = cursor.fetchall()
        claims = [row for row in rows if row[0] == "claim"]
        jobs = _claimed_after_kind_and_lane(claims, worker_id, self.alias)
        counts: dict[str, Any] = {row[0]: (row[1], row[2]) for row in rows if row[0] != "claim"}
        if "scan" not in counts:
            # The limit was reached before every lane was visited: continue
            # from the last lane that gave a job (it may have more).
            self._lane_cursor = max(row[1] for row in claims)
            return jobs, 0, False, False
        last, scanned = counts["scan"]
        # Every scanned lane was visited: continue from the last one when
        # the scan stopped at its length, else from the first.
        self._lane_cursor = last if scanned >= LANES_PER_CLAIM and last else ""
        wrapped = bool(after) and scanned < LANES_PER_CLAIM
        return jobs, int(counts["skipped"][1]), bool(counts["circuit"][1]), wrapped
