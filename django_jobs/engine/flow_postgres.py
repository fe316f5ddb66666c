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

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError, transaction

from django_jobs.engine.claimed import NULL_PADDING, RETURNING_CLAIMED, claimed_mapper
from django_jobs.engine.flow import LANES_PER_CLAIM, FlowOperations
from django_jobs.engine.pg import hot_cursor, task_params
from django_jobs.engine.postgres_sql import CLAIM_LANE_HEADS, FLOW_CLOCK, TASK_FILTER
from django_jobs.flow.rates import RATE_BUCKETS
from django_jobs.rows import ClaimedJob, Completion, TaskFilter

logger = logging.getLogger("django_jobs.engine")

# Heads of a lane looked at beyond those it takes, for jobs of other queues
# (or paused ones, or locked right now) at the head of a lane that spans
# queues: past that many, the lane gives this claim nothing.
HEAD_SPARE = 10

_claimed_after_kind_and_lane = claimed_mapper(2)
_claimed_after_lane = claimed_mapper(1)  # CLAIM_LANE_HEADS: the lane, then the columns

_NOT_PAUSED = "queue_name <> ALL(ARRAY(SELECT name FROM django_jobs_queue WHERE paused))"

# Why one statement is safe although its snapshot is taken before its locks:
#
# * Every claim of a lane's jobs writes that lane's row (``bumped``: the rate
#   window, or the row rewritten as it is), in the claim's own transaction,
#   the ORM version included.
# * ``gate`` decides each lane's free slots from our snapshot: the lane's row
#   (``seen``, with its version, xmin), its RUNNING jobs, its rate window.
#   ``locked`` then locks the lanes that get a share, FOR UPDATE SKIP LOCKED,
#   which under READ COMMITTED locks the newest committed version. A lane is
#   used only if that version is the one our snapshot saw: then no claim of
#   the lane committed after our snapshot began (it would have made a new
#   version), and none can commit before our statement ends (we hold the
#   lock), so the snapshot's count and window are exact, or conservative (a
#   completion committed since only frees a slot we leave). A lane locked by
#   another claimer, or changed since our snapshot, is skipped ('skipped').
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
# the engine's rotation), counted and locked one by one, in key order, only
# until %(limit)s heads are found; the lanes after them are not touched.
# Lanes with a concurrency limit get %(lane_limit)s jobs at most, all
# together (``shares``, a running sum in scan order): a caller that claims
# ahead of its free slots can keep those for free slots (a job waiting in a
# backlog holds its lane's slot); rate-only lanes' starts count either way.
# The worker gives no lane_limit (%(limit)s): see worker.worker. Lanes
# without a share are read, never locked.
# Rows returned: kind 'claim' (the lane, then claimed.CLAIMED_COLUMNS). Only
# when fewer than the lanes' share were claimed (then every scanned lane was
# visited): 'scan' (the last lane scanned, then how many), 'skipped' (one
# row per lane skipped: its key) and 'circuit' (NULL, then how many lanes
# with a circuit were seen).
#
# With ``complete`` (COMPLETE_AND_CLAIM_GATED_*, the worker's steady state
# while lanes wait): the finished jobs are acknowledged in the same
# statement, fenced exactly like postgres_sql.COMPLETE_JOBS (``done``), and
# up to %(fast_limit)s lane-free jobs are claimed exactly like
# postgres_sql.CLAIM_JOBS_* (``fast``); the lanes get what is left of
# %(limit)s. The RUNNING counts leave out the jobs ``done`` finished (its
# RETURNING: only those whose completion matched their claim token), which
# are RUNNING in our snapshot but not once we commit. All three touch
# disjoint rows: RUNNING ones we own, READY lane-free ones, READY lane ones.
_BUCKET = "floor(clock.t * %(buckets)s / {lane}.rate_period)::bigint"
_DONE = """done AS (
    UPDATE django_jobs_job AS job
    SET status = 'SUCCESSFUL', result = d.result, finished_at = now(), lease_expires_at = NULL
    FROM unnest(%(done_ids)s::bigint[], %(done_tokens)s::uuid[], %(done_results)s::jsonb[])
        AS d(id, claim_token, result)
    WHERE job.id = d.id AND job.claim_token = d.claim_token AND job.status = 'RUNNING'
    RETURNING job.id
), """
_FAST = (
    """fast AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND run_after <= now() AND flow_lane IS NULL
        AND {not_paused} {queue_filter}
        AND """
    + TASK_FILTER
    + """
    ORDER BY priority DESC, run_after, id
    LIMIT %(fast_limit)s
    FOR UPDATE SKIP LOCKED
), """
)


def _gated(complete: bool, queue_filter: str = "") -> str:
    """CLAIM_GATED, or with ``complete`` COMPLETE_AND_CLAIM_GATED_*."""
    lane_limit = "(%(limit)s - (SELECT count(*) FROM fast))" if complete else "%(limit)s"
    not_done = "AND running.id NOT IN (SELECT id FROM done)" if complete else ""
    shortfall = f"(SELECT count(*) FROM claimed WHERE flow_lane IS NOT NULL) < {lane_limit}"
    short = f"WHERE {shortfall}"
    fast = _FAST.format(not_paused=_NOT_PAUSED, queue_filter=queue_filter) if complete else ""
    picked = (
        "SELECT id FROM fast UNION ALL SELECT id FROM candidates"
        if complete
        else ("SELECT id FROM candidates")
    )
    completed = (
        f"UNION ALL\nSELECT 'done', NULL, done.id{NULL_PADDING} FROM done\n"
        "UNION ALL\nSELECT 'waiting', NULL, NULL"
        + NULL_PADDING
        + """
WHERE EXISTS (
    SELECT 1 FROM django_jobs_job
    WHERE status = 'READY' AND flow_lane IS NOT NULL AND run_after <= now()
)
"""
        if complete
        else ""
    )
    return f"""
WITH RECURSIVE waiting(name) AS (
    SELECT MIN(flow_lane) FROM django_jobs_job WHERE status = 'READY' AND flow_lane >= %(after)s
    UNION ALL
    SELECT (SELECT MIN(flow_lane) FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane > waiting.name)
    FROM waiting WHERE waiting.name IS NOT NULL
), wrapped(name) AS (
    SELECT MIN(flow_lane) FROM django_jobs_job WHERE status = 'READY' AND flow_lane >= ''
    UNION ALL
    SELECT (SELECT MIN(flow_lane) FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane > wrapped.name)
    FROM wrapped WHERE wrapped.name < %(after)s
), {_DONE if complete else ""}{fast}clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS t
), gate AS MATERIALIZED (
    SELECT seen.key, seen.version, seen.circuit IS NOT NULL AS has_circuit,
        seen.concurrency_limit IS NOT NULL AS counted,
        LEAST(
            {lane_limit},
            seen.concurrency_limit - (
                SELECT count(*) FROM django_jobs_job AS running
                WHERE running.status = 'RUNNING' AND running.flow_lane = seen.key {not_done}
            ),
            seen.rate_limit - (
                SELECT COALESCE(sum((pair->>1)::int), 0)
                FROM jsonb_array_elements(seen.rate_buckets) AS pair
                WHERE (pair->>0)::bigint BETWEEN {_BUCKET.format(lane="seen")} - %(buckets)s
                    AND {_BUCKET.format(lane="seen")}
            )
        ) AS free
    FROM (
        -- From the cursor to the last lane, then from the first up to the
        -- cursor (an Append runs its parts in order, as far as pulled).
        SELECT name FROM waiting WHERE name IS NOT NULL
        UNION ALL
        SELECT name FROM wrapped WHERE name < %(after)s
        LIMIT %(lanes)s
    ) AS scanned
    CROSS JOIN LATERAL (
        SELECT lane.key, lane.xmin::text AS version, lane.circuit, lane.concurrency_limit,
            lane.rate_limit, lane.rate_period, lane.rate_buckets
        FROM django_jobs_flowlane AS lane
        WHERE lane.key = scanned.name
        LIMIT 1  -- the key is unique; kept from being flattened into a hash join
    ) AS seen
    CROSS JOIN clock
), shares AS (
    SELECT open.key, open.version, CASE WHEN open.counted
        THEN LEAST(open.free, %(lane_limit)s - (open.counted_so_far - open.free))
        ELSE open.free END AS take
    FROM (
        SELECT gate.key, gate.version, gate.free, gate.counted,
            sum(CASE WHEN gate.counted THEN gate.free ELSE 0 END)
                OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS counted_so_far
        FROM gate WHERE gate.free > 0 AND NOT gate.has_circuit
    ) AS open
), locked AS MATERIALIZED (
    SELECT shares.key, shares.take, held.version IS NOT DISTINCT FROM shares.version AS usable
    FROM shares LEFT JOIN LATERAL (
        SELECT lane.xmin::text AS version FROM django_jobs_flowlane AS lane
        WHERE lane.key = shares.key AND lane.circuit IS NULL
        FOR UPDATE SKIP LOCKED
    ) AS held ON true
    WHERE shares.take > 0
), candidates AS MATERIALIZED (
    SELECT head.id FROM locked CROSS JOIN LATERAL (
        -- The lane's first due jobs in index order (jobs_job_ready_lane), a
        -- few more than it takes, then each re-read by its primary key,
        -- locked and checked against the queues, in that order (a nested
        -- loop keeps its outer side's order), until it has what it takes.
        -- Not one query with the queue conditions: the planner, whose
        -- estimates lag a burst of enqueues, then drives it from the queue
        -- index, every job of the queue per lane (measured: 57 ms a lane
        -- with 5,000 jobs queued).
        SELECT job.id
        FROM unnest(ARRAY(
            SELECT id FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane = locked.key AND run_after <= now()
            ORDER BY priority DESC, run_after, id
            LIMIT locked.take + %(spare)s
        )) AS first(id)
        CROSS JOIN LATERAL (
            SELECT id FROM django_jobs_job
            WHERE id = first.id AND status = 'READY'
                AND (%(queues)s::text[] IS NULL OR queue_name = ANY(%(queues)s::text[]))
                AND {_NOT_PAUSED}
            FOR UPDATE SKIP LOCKED
        ) AS job
        LIMIT locked.take
    ) AS head
    WHERE locked.usable
    LIMIT {lane_limit}
), claimed AS (
    UPDATE django_jobs_job AS job
    SET status = 'RUNNING',
        attempts = job.attempts + 1,
        started_at = COALESCE(job.started_at, to_timestamp(clock.t)),
        last_attempted_at = to_timestamp(clock.t),
        worker_id = %(worker_id)s,
        claim_token = gen_random_uuid(),
        lease_expires_at = now() + %(lease)s * interval '1 second'
    FROM ({picked}) AS picked CROSS JOIN clock
    WHERE job.id = picked.id
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
    FROM (
        SELECT flow_lane, count(*) AS n FROM claimed
        WHERE flow_lane IS NOT NULL GROUP BY flow_lane
    ) AS started CROSS JOIN clock
    WHERE lane.key = started.flow_lane
    RETURNING lane.key
)
SELECT 'claim', claimed.* FROM claimed
{completed}UNION ALL
SELECT 'scan', (SELECT COALESCE(max(key) FILTER (WHERE key < %(after)s), max(key)) FROM gate),
    (SELECT count(*) FROM gate){NULL_PADDING}
{short}
UNION ALL
SELECT 'skipped', locked.key, NULL{NULL_PADDING} FROM locked WHERE NOT locked.usable
AND {shortfall}
UNION ALL
SELECT 'circuit', NULL, (SELECT count(*) FROM gate WHERE has_circuit){NULL_PADDING}
{short}
"""


CLAIM_GATED = _gated(complete=False)

# Wait for the locks of lanes a gated claim skipped, in key order (two
# waiters never deadlock; claimers never wait, SKIP LOCKED), in a
# transaction whose next statement, CLAIM_GATED, takes its snapshot after
# these locks are ours: the versions it reads are the newest, its SKIP LOCKED
# finds our own locks, so these lanes are usable. lock_timeout bounds the
# wait should a holder be slow (the claim then gives up this round).
LOCK_LANES = """
SELECT key FROM django_jobs_flowlane WHERE key = ANY(%s) ORDER BY key FOR UPDATE
"""
LANE_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '200ms'"
COMPLETE_AND_CLAIM_GATED_ALL_QUEUES = _gated(complete=True)
COMPLETE_AND_CLAIM_GATED_IN_QUEUES = _gated(
    complete=True, queue_filter="AND queue_name = ANY(%(queues)s)"
)


@dataclasses.dataclass
class _Gated:
    """What one gated statement did."""

    rows: list[Any]
    claimed: list[ClaimedJob]
    lane_free: int  # claims without a lane (the combined statement's fast share)
    skipped: list[str]  # lanes another claimer held
    circuits: bool  # lanes with a circuit were seen (the ORM version claims them)


class PostgresFlowOperations(FlowOperations):
    """``claim_gated`` by CLAIM_GATED, and the worker's complete-and-claim
    while lanes wait; the ORM version for lanes with a circuit."""

    def _flow_clock(self) -> float:
        with self.connection.cursor() as cursor:
            cursor.execute(FLOW_CLOCK)
            return float(cursor.fetchone()[0])

    def _take_lane_heads(
        self,
        want: dict[str, int],
        queues: Sequence[str] | None,
        worker_id: uuid.UUID,
        lease_seconds: float,
        clock: float,
    ) -> tuple[list[ClaimedJob], dict[str, list[int]]]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                CLAIM_LANE_HEADS,
                {
                    "lanes": list(want),
                    "counts": list(want.values()),
                    "queues": list(queues) if queues else None,
                    "worker_id": worker_id,
                    "lease": lease_seconds,
                    "clock": clock,
                },
            )
            rows = cursor.fetchall()
        per_lane: dict[str, list[int]] = {}
        for row in rows:
            per_lane.setdefault(row[0], []).append(row[1])
        return _claimed_after_lane(rows, worker_id, self.alias), per_lane

    def claim_gated(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        lane_limit: int | None = None,
    ) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        params = self._gated_params(worker_id, queues, limit, lease_seconds)
        if lane_limit is not None:
            params["lane_limit"] = lane_limit
        first = self._run_gated(CLAIM_GATED, params)
        return first.claimed + self._follow_up(first, params, limit - len(first.claimed))

    def complete_and_claim_gated(
        self,
        completions: Sequence[Completion],
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        lane_limit: int,
        tasks: TaskFilter | None = None,
    ) -> tuple[set[int], list[ClaimedJob], bool]:
        """Acknowledge ``completions`` and claim up to ``limit`` jobs, half
        at most lane-free and ``lane_limit`` at most of lanes with a
        concurrency limit, in one statement; also whether due jobs with a
        lane are still waiting."""
        params = self._gated_params(worker_id, queues, limit, lease_seconds)
        params["fast_limit"] = limit - limit // 2
        params["lane_limit"] = lane_limit
        params["done_ids"] = [c.job.id for c in completions]
        params["done_tokens"] = [c.job.claim_token for c in completions]
        params["done_results"] = [c.result_json for c in completions]
        params.update(task_params(tasks))
        statement = (
            COMPLETE_AND_CLAIM_GATED_IN_QUEUES if queues else COMPLETE_AND_CLAIM_GATED_ALL_QUEUES
        )
        first = self._run_gated(statement, params)
        done = {row[2] for row in first.rows if row[0] == "done"}
        waiting = any(row[0] == "waiting" for row in first.rows)
        claimed = first.claimed
        fast = first.lane_free
        lanes = len(claimed) - fast
        more = dict(params, limit=limit - len(claimed), lane_limit=max(lane_limit - lanes, 0))
        claimed = claimed + self._follow_up(first, more, limit - len(claimed))
        if fast == params["fast_limit"] and len(claimed) < limit:
            # The lanes left slots unused and lane-free jobs may be waiting.
            claimed += self._claim_free(
                worker_id, queues, limit - len(claimed), lease_seconds, tasks
            )
        return done, claimed, waiting

    def _claim_free(
        self,
        worker_id: uuid.UUID,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        tasks: TaskFilter | None = None,
    ) -> list[ClaimedJob]:
        raise NotImplementedError  # PostgresEngine's

    def _gated_params(
        self, worker_id: uuid.UUID, queues: Sequence[str] | None, limit: int, lease_seconds: float
    ) -> dict[str, Any]:
        return {
            "lanes": LANES_PER_CLAIM,
            "limit": limit,
            "lane_limit": limit,
            "buckets": RATE_BUCKETS,
            "spare": HEAD_SPARE,
            "queues": list(queues) if queues else None,
            "worker_id": worker_id,
            "lease": lease_seconds,
        }

    def _follow_up(self, first: _Gated, params: dict[str, Any], room: int) -> list[ClaimedJob]:
        """After a gated statement that left ``room`` slots: wait for the
        lanes it skipped and try once more; then the ORM version for lanes
        with a circuit."""
        claimed: list[ClaimedJob] = []
        if room > 0 and first.skipped:
            claimed = self._claim_after_waiting(first.skipped, dict(params, limit=room))
        room -= len(claimed)
        if first.circuits and room > 0:
            # The ORM version claims every lane, circuits included (its own
            # transaction, lanes locked then counted: see engine.flow).
            claimed += FlowOperations.claim_gated(
                self, params["worker_id"], params["queues"], room, params["lease"]
            )
        return claimed

    def _claim_after_waiting(self, lanes: list[str], params: dict[str, Any]) -> list[ClaimedJob]:
        try:
            with transaction.atomic(using=self.alias):
                with self.connection.cursor() as cursor:
                    cursor.execute(LANE_LOCK_TIMEOUT)
                    cursor.execute(LOCK_LANES, [sorted(lanes)])
                return self._run_gated(CLAIM_GATED, params).claimed
        except OperationalError:  # lock_timeout: the lanes stay busy; the next claim tries
            logger.debug("gated claim: lanes %s still locked after waiting", lanes[:5])
            return []

    def _run_gated(self, statement: str, params: dict[str, Any]) -> _Gated:
        """One gated statement; moves the lane cursor. Only the worker's
        steady-state statement is prepared (pg.hot_cursor): CLAIM_GATED runs
        on the first claim, after a skip and for claim_jobs, and is planned
        each time like any other statement."""
        after = self._lane_cursor
        steady = statement is not CLAIM_GATED
        with hot_cursor(self.connection) if steady else self.connection.cursor() as cursor:
            cursor.execute(statement, dict(params, after=after))
            rows = cursor.fetchall()
        claims = [row for row in rows if row[0] == "claim"]
        claimed = _claimed_after_kind_and_lane(claims, params["worker_id"], self.alias)
        lane_free = sum(1 for row in claims if row[1] is None)
        result = _Gated(rows, claimed, lane_free, [], False)
        counts: dict[str, Any] = {row[0]: (row[1], row[2]) for row in rows}
        if "scan" not in counts:
            # The share was filled before every lane was visited: continue
            # from the last lane that gave a job, in scan order (it may have
            # more); the scan wrapped past the last lane if it took one
            # before the cursor.
            lanes = [row[1] for row in claims if row[1] is not None]
            if lanes:
                before = [lane for lane in lanes if lane < after]
                self._lane_cursor = max(before or lanes)
            return result
        last, scanned = counts["scan"]
        # Every scanned lane was visited: continue from the last one when
        # the scan stopped at its length, else from the first.
        self._lane_cursor = last if scanned >= LANES_PER_CLAIM and last else ""
        result.skipped = [row[1] for row in rows if row[0] == "skipped"]
        result.circuits = bool(counts["circuit"][1])
        return result
