"""The gated claim's SQL on PostgreSQL (``engine.flow_postgres`` runs it):
one statement that scans the lanes with READY jobs, counts, locks and claims
their heads, and in the worker's steady state also acknowledges finished
jobs, hands a finished job's slot to its lane's next job and claims
lane-free jobs."""

from __future__ import annotations

from django_jobs.engine.claimed import NULL_PADDING, RETURNING_CLAIMED
from django_jobs.engine.postgres_sql import (
    CLAIMED_BY_ID,
    DUE,
    LANE_JOBS_DUE,
    NOT_PAUSED,
    TASK_FILTER,
    complete_update,
    queue_heads,
)

# Heads of a lane looked at beyond those it takes, for jobs of other queues
# (or paused ones, or locked right now) at the head of a lane that spans
# queues: past that many, the lane gives this claim nothing.
HEAD_SPARE = 10


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
# The worker gives its free slots plus half its prefetch (worker.pacing).
# Lanes without a share are read, never locked.
# Rows returned: kind 'claim' (the lane, then claimed.CLAIMED_COLUMNS). Only
# when fewer than the lanes' share were claimed (then every scanned lane was
# visited): 'scan' (the last lane scanned, then how many), 'skipped' (one
# row per lane skipped: its key), 'circuit' (NULL, then how many lanes
# with a circuit were seen) and 'others' (NULL, then how many lanes got a
# share other than those of the jobs ``done`` finished that could hand off:
# none means no other lane waits for a slot, see below).
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
#
# Hand-off (``handoff``, with ``complete``): a finished job's slot goes to
# the next due job of its lane, in the same statement, without the scan and
# without locking or writing the lane's row. This is safe without the lock
# because it never adds to the lane's RUNNING count: the finished job leaves
# RUNNING and the next one enters it in one transaction, so every snapshot,
# before or after our commit, counts the same, and a concurrent gated
# claimer's reasoning above (a count trusted while the row's version is
# unchanged) still holds. The job handed its slot is locked FOR UPDATE SKIP
# LOCKED like any head: a claimer that wants it too skips it, or re-reads
# it RUNNING once we commit. Only lanes with a concurrency limit and neither
# a rate limit (each start must be counted in the row) nor a circuit (its
# state machine lives in engine.flow) hand off, and a lane hands off no more
# than its limit leaves free when its other RUNNING jobs are counted (a
# limit lowered since the jobs started is honoured). Lane-free jobs keep
# their share: the hand-off gets what ``fast`` left of %(limit)s, the scan
# what both left. It runs only when %(handoff)s, which the engine sets while
# no other lane waits for a slot (the last scan's 'others' was 0): a lane
# kept busy by hand-offs would otherwise take turns from lanes waiting in
# the scan's rotation.
_BUCKET = "floor(clock.t * %(buckets)s / {lane}.rate_period)::bigint"
_DONE = (
    "done AS ("
    + complete_update(
        "%(done_ids)s", "%(done_tokens)s", "%(done_results)s", "job.id, job.flow_lane"
    )
    + "), "
)
_FAST_ALL_QUEUES = f"""fast AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND {DUE} AND flow_lane IS NULL
        AND {NOT_PAUSED} AND {TASK_FILTER}
    ORDER BY priority DESC, run_after, id
    LIMIT %(fast_limit)s
    FOR UPDATE SKIP LOCKED
), """
# The same for named queues (postgres_sql.queue_heads: one ordered read per queue).
_FAST_IN_QUEUES = "fast AS MATERIALIZED (" + queue_heads("%(fast_limit)s") + "\n), "


def _lane_heads(lane: str, take: str, exclude: str = "", spare: str = "%(spare)s") -> str:
    """The first ``take`` due jobs of ``lane`` (SQL expressions), locked;
    ``spare`` more looked at, for jobs of other queues or locked right now.

    The lane's first due jobs in index order (jobs_job_ready_lane), a few
    more than it takes, then each re-read by its primary key, locked and
    checked against the queues, in that order (a nested loop keeps its outer
    side's order), until it has what it takes. Not one query with the queue
    conditions: the planner, whose estimates lag a burst of enqueues, then
    drives it from the queue index, every job of the queue per lane
    (measured: 57 ms a lane with 5,000 jobs queued)."""
    return f"""        SELECT job.id
        FROM unnest(ARRAY(
            SELECT id FROM django_jobs_job
            WHERE status = 'READY' AND flow_lane = {lane} AND run_after <= now()
            ORDER BY priority DESC, run_after, id
            LIMIT {take} + {spare}
        )) AS first(id)
        CROSS JOIN LATERAL (
            SELECT id FROM django_jobs_job
            WHERE id = first.id AND status = 'READY' {exclude}
                AND (%(queues)s::text[] IS NULL OR queue_name = ANY(%(queues)s::text[]))
                AND {NOT_PAUSED}
            FOR UPDATE SKIP LOCKED
        ) AS job
        LIMIT {take}
"""


# The lanes that can hand off: a concurrency limit, and neither a rate limit
# (each start is counted in the row) nor a circuit (engine.flow's state machine).
_HANDS_OFF = (
    "{lane}.concurrency_limit IS NOT NULL AND {lane}.rate_limit IS NULL AND {lane}.circuit IS NULL"
)

# ``freed`` is materialized: its ``take`` is read three times per lane by
# the lateral below. Its RUNNING counts are ``running``'s (see there), and
# each finished lane's row is looked up on its own, stopping at the match
# (as a join, the planner scanned the whole lane table once per finished
# lane while it believed both tables tiny).
_HANDOFF = """freed AS MATERIALIZED (
    SELECT lane.key,
        LEAST(finished.n, lane.concurrency_limit - COALESCE((running.n ->> lane.key)::int, 0))
            AS take
    FROM (
        SELECT flow_lane, count(*) AS n FROM done
        WHERE %(handoff)s AND flow_lane IS NOT NULL GROUP BY flow_lane
    ) AS finished
    CROSS JOIN LATERAL (
        SELECT lane.key, lane.concurrency_limit, lane.rate_limit, lane.circuit
        FROM django_jobs_flowlane AS lane
        WHERE lane.key = finished.flow_lane
        LIMIT 1  -- the key is unique: stop at the match
    ) AS lane
    CROSS JOIN running
    WHERE {hands_off}
), handoff AS MATERIALIZED (
    SELECT head.id, freed.key FROM freed CROSS JOIN LATERAL (
{heads}    ) AS head
    WHERE freed.take > 0
    LIMIT LEAST(%(limit)s - (SELECT count(*) FROM fast), %(lane_limit)s)
), """.format(
    heads=_lane_heads("freed.key", "freed.take", spare="1"),
    hands_off=_HANDS_OFF.format(lane="lane"),
)


def _gated(complete: bool, in_queues: bool = False) -> str:
    """CLAIM_GATED, or with ``complete`` COMPLETE_AND_CLAIM_GATED_*."""
    if complete:
        lane_limit = "(%(limit)s - (SELECT count(*) FROM fast) - (SELECT count(*) FROM handoff))"
        lane_share = "(%(lane_limit)s - (SELECT count(*) FROM handoff))"
        not_done = "AND running.id NOT IN (SELECT id FROM done)"
        handed_off = " - (SELECT count(*) FROM handoff WHERE handoff.key = seen.key)"
        heads = _lane_heads("locked.key", "locked.take", "AND id NOT IN (SELECT id FROM handoff)")
        fast = (_FAST_IN_QUEUES if in_queues else _FAST_ALL_QUEUES) + _HANDOFF
        picked = (
            "SELECT id FROM fast UNION ALL SELECT id FROM handoff"
            " UNION ALL SELECT id FROM candidates"
        )
        kind = "CASE WHEN claimed.id IN (SELECT id FROM handoff) THEN 'handoff' ELSE 'claim' END"
        bumped = "AND id NOT IN (SELECT id FROM handoff)"
        # The lanes of finished jobs (those that can hand off are not
        # "others": ``locked.hands_off``; a rate-limited lane with a slot is
        # another lane waiting). One hashed list: a semi-join of the lane
        # table with ``done`` read ``done`` once per lane (measured: 12 ms
        # with 1,000 lanes).
        finished_lanes = "SELECT flow_lane FROM done WHERE flow_lane IS NOT NULL"
    else:
        lane_limit = lane_share = "%(limit)s"
        not_done = handed_off = ""
        heads = _lane_heads("locked.key", "locked.take")
        fast = ""
        picked = "SELECT id FROM candidates"
        kind = "'claim'"
        bumped = ""
        finished_lanes = "SELECT NULL::text WHERE false"
    shortfall = f"(SELECT count(*) FROM candidates) < {lane_limit}"
    short = f"WHERE {shortfall}"
    by_id = CLAIMED_BY_ID.format(cte=f"({picked}) AS picked")
    completed = (
        f"UNION ALL\nSELECT 'done', NULL, done.id{NULL_PADDING} FROM done\n"
        "UNION ALL\nSELECT 'waiting', NULL, NULL" + NULL_PADDING + f"\nWHERE {LANE_JOBS_DUE}\n"
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
), {_DONE if complete else ""}running AS MATERIALIZED (
    -- Every lane's RUNNING jobs (but those ``done`` just finished), counted
    -- in one pass when the hand-off or the scan first needs a count: a probe
    -- per lane was planned from the status index while the statistics lag
    -- (RUNNING looks empty after a burst of enqueues), every RUNNING job of
    -- every worker per lane (measured: 9 of 29 ms for 100 lanes). One
    -- jsonb object, so each lane's count is a lookup whatever the plan.
    SELECT COALESCE(jsonb_object_agg(counts.flow_lane, counts.n), '{{}}'::jsonb) AS n
    FROM (
        SELECT running.flow_lane, count(*) AS n FROM django_jobs_job AS running
        WHERE running.status = 'RUNNING' AND running.flow_lane IS NOT NULL {not_done}
        GROUP BY running.flow_lane
    ) AS counts
), {fast}clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS t
), gate AS MATERIALIZED (
    SELECT seen.key, seen.version, seen.circuit IS NOT NULL AS has_circuit,
        seen.concurrency_limit IS NOT NULL AS counted,
        {_HANDS_OFF.format(lane="seen")} AS hands_off,
        LEAST(
            {lane_limit},
            seen.concurrency_limit - COALESCE((running.n ->> seen.key)::int, 0){handed_off},
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
    CROSS JOIN running
    CROSS JOIN clock
), shares AS (
    SELECT open.key, open.version, open.hands_off, CASE WHEN open.counted
        THEN LEAST(open.free, {lane_share} - (open.counted_so_far - open.free))
        ELSE open.free END AS take
    FROM (
        SELECT gate.key, gate.version, gate.free, gate.counted, gate.hands_off,
            sum(CASE WHEN gate.counted THEN gate.free ELSE 0 END)
                OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS counted_so_far
        FROM gate WHERE gate.free > 0 AND NOT gate.has_circuit
    ) AS open
), locked AS MATERIALIZED (
    SELECT shares.key, shares.take, shares.hands_off,
        held.version IS NOT DISTINCT FROM shares.version AS usable
    FROM shares LEFT JOIN LATERAL (
        SELECT lane.xmin::text AS version FROM django_jobs_flowlane AS lane
        WHERE lane.key = shares.key AND lane.circuit IS NULL
        FOR UPDATE SKIP LOCKED
    ) AS held ON true
    WHERE shares.take > 0
), candidates AS MATERIALIZED (
    SELECT head.id FROM locked CROSS JOIN LATERAL (
{heads}    ) AS head
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
    FROM clock
    WHERE {by_id}
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
        WHERE flow_lane IS NOT NULL {bumped} GROUP BY flow_lane
    ) AS started CROSS JOIN clock
    WHERE lane.key = started.flow_lane
    RETURNING lane.key
)
SELECT {kind}, claimed.* FROM claimed
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
UNION ALL
SELECT 'others', NULL, (
    SELECT count(*) FROM locked
    WHERE locked.usable AND NOT (locked.hands_off AND locked.key IN ({finished_lanes}))
){NULL_PADDING}
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
COMPLETE_AND_CLAIM_GATED_IN_QUEUES = _gated(complete=True, in_queues=True)


# The gated claim's last step (engine.flow): each lane's first %(counts)s due
# jobs in claim order, in unpaused queues (%(queues)s NULL: every queue). The
# caller holds every named lane's FlowLane row lock (FOR UPDATE SKIP LOCKED,
# taken in an earlier statement of this transaction) and counted its RUNNING
# jobs after taking it, so no other claimer takes jobs of these lanes until we
# commit; the fast path never takes a job with a lane. FOR UPDATE SKIP LOCKED
# on the jobs too: a row an operator is cancelling right now is skipped, and
# READ COMMITTED re-checks status on the locked row. Returns the lane first,
# then claimed.CLAIMED_COLUMNS. The attempt's start is %(clock)s, the time
# the rate windows counted it at (FLOW_CLOCK), so what is recorded is what
# was enforced.
CLAIM_LANE_HEADS = f"""
WITH want AS (
    SELECT * FROM unnest(%(lanes)s::text[], %(counts)s::int[]) AS w(lane, n)
), candidates AS MATERIALIZED (
    SELECT heads.id FROM want CROSS JOIN LATERAL (
{_lane_heads("want.lane", "want.n")}    ) AS heads
)
UPDATE django_jobs_job AS job
SET status = 'RUNNING',
    attempts = job.attempts + 1,
    started_at = COALESCE(job.started_at, to_timestamp(%(clock)s)),
    last_attempted_at = to_timestamp(%(clock)s),
    worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(),
    lease_expires_at = now() + %(lease)s * interval '1 second'
WHERE {CLAIMED_BY_ID.format(cte="candidates")}
RETURNING job.flow_lane, {RETURNING_CLAIMED}
"""
