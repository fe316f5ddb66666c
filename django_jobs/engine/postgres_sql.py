"""Every statement of the PostgreSQL job engine (``postgres``), each a named
constant with a comment saying why it is safe under concurrency. Parameters
(the NOTIFY channel too) are always bound, never formatted in; the only
formatted-in text is made of constants (claimed columns, queue filter).
"""

from __future__ import annotations

from django_jobs.engine.claimed import NULL_PADDING, RETURNING_CLAIMED

# The pieces the three inserts share: a column added to jobs is added here once.
_INSERT_INTO_JOB = """INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, requested_run_after,
    attempts, max_attempts, timeout, idempotency_key, errors, meta, enqueued_at, flow_lane
)"""
# The rows of one enqueue call, as the unnested arrays ``t`` (in input order: ord).
_SELECT_UNNESTED = """SELECT t.task_name, t.queue_name, t.priority, t.args, t.kwargs, 'READY',
       COALESCE(t.run_after, now()), t.run_after, 0, t.max_attempts, t.timeout,
       t.idempotency_key, '[]'::jsonb, COALESCE(t.meta, '{}'::jsonb), now(), t.flow_lane"""
_UNNEST_ARRAYS = """%(task_name)s::text[], %(queue_name)s::text[], %(priority)s::smallint[],
    %(args)s::jsonb[], %(kwargs)s::jsonb[], %(run_after)s::timestamptz[],
    %(max_attempts)s::int[], %(timeout)s::float8[], %(idempotency_key)s::text[],
    %(meta)s::jsonb[], %(flow_lane)s::text[]"""
_UNNEST_NAMES = """task_name, queue_name, priority, args, kwargs, run_after, max_attempts, timeout,
    idempotency_key, meta, flow_lane"""
_ON_ACTIVE_KEY_CONFLICT_RETURNING = """ON CONFLICT (idempotency_key)
    WHERE status IN ('READY', 'RUNNING')
    AND idempotency_key IS NOT NULL DO NOTHING
RETURNING id, run_after, enqueued_at, idempotency_key,
    CASE WHEN %(notify)s AND run_after <= now()
         THEN pg_notify(%(channel)s, queue_name) END"""

# Insert a batch of jobs in input order (ORDER BY ord; ids come from one
# sequence, so they increase in that order). A row whose idempotency key is
# held by a READY/RUNNING job is skipped by ON CONFLICT on the partial unique
# index: if the other transaction has not committed yet, PostgreSQL waits for
# it, so two concurrent enqueues can never both insert. RETURNING lists only
# the rows inserted (a skipped row returns nothing): that is how the caller
# tells created from existing jobs; it looks the skipped keys up afterwards.
# When %(notify)s, each due job's queue is sent to the NOTIFY channel
# %(channel)s (pg.JOBS_CHANNEL, bound like every parameter);
# PostgreSQL delivers it on commit (never for a rollback) and folds identical
# notifications of one transaction into one. meta NULL (no trace context) is {}.
INSERT_JOBS = f"""
{_INSERT_INTO_JOB}
{_SELECT_UNNESTED}
FROM unnest(
    {_UNNEST_ARRAYS}
) WITH ORDINALITY AS t(
    {_UNNEST_NAMES}, ord
)
ORDER BY t.ord
{_ON_ACTIVE_KEY_CONFLICT_RETURNING}
"""

# INSERT_JOBS for rows with unique_for (seconds): a row is skipped when a job
# with its key was enqueued within that period, whatever its status (index
# jobs_job_idempotency_key). Runs after LOCK_IDEMPOTENCY_KEYS in the same
# transaction: no other unique_for enqueue of these keys can commit between
# this check and our commit, and this statement's snapshot sees every one that
# committed before. The active-key ON CONFLICT still applies as in INSERT_JOBS.
INSERT_JOBS_UNIQUE_FOR = f"""
{_INSERT_INTO_JOB}
{_SELECT_UNNESTED}
FROM unnest(
    {_UNNEST_ARRAYS}, %(unique_for)s::float8[]
) WITH ORDINALITY AS t(
    {_UNNEST_NAMES}, unique_for, ord
)
WHERE t.unique_for IS NULL OR NOT EXISTS (
    SELECT 1 FROM django_jobs_job AS held
    WHERE held.idempotency_key = t.idempotency_key
      AND held.enqueued_at >= now() - t.unique_for * interval '1 second'
)
ORDER BY t.ord
{_ON_ACTIVE_KEY_CONFLICT_RETURNING}
"""

# Same for one job without an idempotency key: the common case, without the
# unnest machinery.
INSERT_ONE_JOB = f"""
{_INSERT_INTO_JOB} VALUES (
    %(task_name)s, %(queue_name)s, %(priority)s, %(args)s::jsonb, %(kwargs)s::jsonb, 'READY',
    COALESCE(%(run_after)s, now()), %(run_after)s, 0, %(max_attempts)s, %(timeout)s, NULL,
    '[]'::jsonb, COALESCE(%(meta)s::jsonb, '{{}}'::jsonb), now(), %(flow_lane)s
)
RETURNING id, run_after, enqueued_at,
    CASE WHEN %(notify)s AND run_after <= now() THEN pg_notify(%(channel)s, queue_name) END
"""

# started_at is the run's start (its first attempt's), last_attempted_at this
# attempt's. RETURNING lists claimed.CLAIMED_COLUMNS (constants, not input).
# The locked rows are found by primary key, ``id = ANY(ARRAY(SELECT ...))``,
# one probe each whatever the statistics say: as a join with the CTE, the
# planner, whose statistics still described the table before a burst of
# enqueues, hashed the CTE and read the whole job table (measured in 43 of
# 185 claims of a 20,000-job drain). The engine sorts the RETURNING rows.
CLAIMED_BY_ID = "job.id = ANY(ARRAY(SELECT id FROM {cte}))"
_CLAIM_SET_AND_RETURN = f"""
UPDATE django_jobs_job AS job
SET status = 'RUNNING',
    attempts = job.attempts + 1,
    started_at = COALESCE(job.started_at, now()),
    last_attempted_at = now(),
    worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(),
    lease_expires_at = now() + %(lease)s * interval '1 second'
WHERE {CLAIMED_BY_ID.format(cte="candidates")}
RETURNING {RETURNING_CLAIMED}
"""

# Flow control on the fast path costs two conditions: jobs with a lane are
# claimed by flow_postgres_sql's statements only (the partial indexes hold lane-free rows
# only, so the planner's plan is today's), and a paused queue's jobs are
# skipped. The paused names are a hashed SubPlan, read once per statement in
# the statement's snapshot: a pause committed before the claim started is
# seen; a claim already running when the pause commits may still take that
# queue's jobs, which then run (running jobs finish, as documented).
# NOT IN, not ``queue_name <> ALL(ARRAY(SELECT ...))``: the planner estimates
# ``column <> (a value unknown at planning)`` from the column's statistics,
# and where one queue holds every job (most projects) that is "no row
# matches"; the claim then read and sorted the whole job table instead of
# its index's first rows, in every plan, generic or custom (measured: a seq
# scan in each of 279 claims of a 20,000-job drain). A hashed SubPlan's
# condition gets a fixed estimate. Both columns are NOT NULL, so NOT IN
# means what <> ALL meant.
NOT_PAUSED = "queue_name NOT IN (SELECT name FROM django_jobs_queue WHERE paused)"
# Due: ``now()`` read through a sub-select, so that the planner estimates a
# third of the rows due instead of asking the statistics. With a backlog of
# jobs scheduled ahead, the statistics say none is due, and the claim's best
# plan looked like a sequential scan and a sort: every idle claim read the
# whole table (measured: 57-84 ms with 200,000 jobs scheduled next week,
# against 7 ms through jobs_job_ready_claim). The index still reads every
# entry before the first due one in its order (run_after is its second
# column): a backlog scheduled ahead costs an idle claim a full index read.
DUE = "run_after <= (SELECT now())"
# A claim of some tasks only (rows.TaskFilter, worker.async_pool): %(tasks)s NULL
# takes every task; else only those named (%(tasks_in)s) or all but them. A
# read-only condition on the candidate rows, re-checked like the others.
TASK_FILTER = "(%(tasks)s::text[] IS NULL OR (task_name = ANY(%(tasks)s::text[])) = %(tasks_in)s)"


# Named queues: each queue's first due jobs read in the order of
# jobs_job_ready_queue (queue_name, then the claim order), at most ``limit``
# per queue, then the best ``limit`` of them. Not ``queue_name =
# ANY(%(queues)s)`` under one ORDER BY: PostgreSQL 15 cannot read an index
# in order across the values of an ANY, so whenever its statistics put few
# jobs in those queues (a queue that was empty when last analyzed, then a
# burst) the claim read every due job of the queues and sorted them
# (measured: 27,792 rows read for 98 claimed, 30 ms, after a 40,000-job
# burst into a queue the statistics had not seen).
# The queue is a range of one value and the order starts with it, so that
# only jobs_job_ready_queue serves it in order: with ``queue_name =
# queue.name`` the order's first column is a constant, and the planner read
# jobs_job_ready_claim in claim order instead, through every other queue's
# due jobs ahead (10,100 rows read for 100 claimed).
# With several queues, a queue's locked rows beyond those claimed stay
# locked until the statement ends: other claimers skip them for that long
# (SKIP LOCKED), then find them READY.
def queue_heads(limit: str) -> str:
    """The ids of the first ``limit`` due lane-free jobs of %(queues)s, locked."""
    return f"""
    SELECT head.id FROM (SELECT DISTINCT unnest(%(queues)s::text[])) AS queue(name)
    CROSS JOIN LATERAL (
        SELECT id, priority, run_after FROM django_jobs_job
        WHERE queue_name >= queue.name AND queue_name <= queue.name
            AND status = 'READY' AND {DUE}
            AND flow_lane IS NULL AND {NOT_PAUSED} AND {TASK_FILTER}
        ORDER BY queue_name, priority DESC, run_after, id
        LIMIT {limit}
        FOR UPDATE SKIP LOCKED
    ) AS head
    ORDER BY head.priority DESC, head.run_after, head.id
    LIMIT {limit}"""


# Claim up to %(limit)s due jobs of every queue in one statement. FOR UPDATE
# SKIP LOCKED inside a MATERIALIZED CTE: each worker locks a disjoint set of
# rows and never waits for another; a row updated since our snapshot is
# re-checked against the WHERE clause after locking (READ COMMITTED
# re-evaluation), so a job is never claimed twice. Every eligibility check is
# inside the CTE; the UPDATE only writes the locked rows. The partial index
# jobs_job_ready_claim serves the ORDER BY ... LIMIT.
CLAIM_JOBS_ALL_QUEUES = (
    """
WITH candidates AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND """
    + DUE
    + " AND flow_lane IS NULL AND "
    + NOT_PAUSED
    + " AND "
    + TASK_FILTER
    + """
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
"""
    + _CLAIM_SET_AND_RETURN
)

# The same for named queues (partial index jobs_job_ready_queue, queue_heads).
CLAIM_JOBS_IN_QUEUES = (
    "WITH candidates AS MATERIALIZED (" + queue_heads("%(limit)s") + "\n)" + _CLAIM_SET_AND_RETURN
)

# The database's clock for the rate windows, read after the lanes are locked:
# a claimer that waited behind no one (SKIP LOCKED) reads a time after every
# start already recorded in the lanes it holds, so windows only move forward.
FLOW_CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"


# Mark a batch of jobs SUCCESSFUL in one round trip. Fenced per row on id AND
# claim token AND RUNNING: a job whose lease expired and was re-claimed has a
# new token, so a late completion from the old owner matches nothing. (The
# planner may find the rows by hashing every RUNNING job read from the status
# index rather than by primary key: cheaper while RUNNING jobs number in the
# hundreds. Forcing the primary key, with a RUNNING test no index serves, was
# measured 6-12% slower on the 2-worker drains: bench/RESULTS.md.)
def complete_update(ids: str, tokens: str, results: str, returning: str) -> str:
    """The fenced completion UPDATE over the bound arrays ``ids``, ``tokens``
    and ``results`` (placeholders), returning ``returning``."""
    return f"""
    UPDATE django_jobs_job AS job
    SET status = 'SUCCESSFUL', result = d.result, finished_at = now(), lease_expires_at = NULL
    FROM unnest({ids}::bigint[], {tokens}::uuid[], {results}::jsonb[])
        AS d(id, claim_token, result)
    WHERE job.id = d.id AND job.claim_token = d.claim_token AND job.status = 'RUNNING'
    RETURNING {returning}
"""


COMPLETE_JOBS = complete_update("%s", "%s", "%s", "job.id")

# The worker's steady state in ONE statement and one commit: acknowledge the
# finished jobs (fenced exactly like COMPLETE_JOBS) and claim up to %(limit)s
# new ones (exactly like CLAIM_JOBS_*). The two data-modifying CTEs touch
# disjoint rows (RUNNING ones we own vs READY ones), so running them in one
# snapshot is safe; both commit or neither does. Claimed rows come first with
# is_claim true, then one row per acknowledged id with is_claim false: its id
# where a claim has ``id`` (CLAIMED_COLUMNS' first), NULL for the other columns.
_COMPLETE_CTE = (
    "\ndone AS ("
    + complete_update("%(done_ids)s", "%(done_tokens)s", "%(done_results)s", "job.id")
    + ")"
)
_CANDIDATES = """
candidates AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'READY' AND {due} AND flow_lane IS NULL
        AND {not_paused} AND {task_filter}
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)"""
# Whether due jobs with a lane are waiting: the first one in the order of
# jobs_job_ready_lane, so one probe of that index whatever the statistics
# say. As a plain EXISTS the planner chose a sequential scan of the job table
# whenever its statistics still counted lane jobs that had since run (it
# expected a match within a few rows): measured 6 ms, a read of every row,
# in each claim of a drain after a keyed one. (EXISTS would drop the ORDER
# BY and LIMIT; a scalar subquery keeps them.)
LANE_JOBS_DUE = """(
    SELECT flow_lane FROM django_jobs_job
    WHERE status = 'READY' AND flow_lane IS NOT NULL AND run_after <= now()
    ORDER BY flow_lane, priority DESC, run_after, id
    LIMIT 1
) IS NOT NULL"""
# A third kind of row, is_claim NULL, says that due jobs with a lane are
# waiting (LANE_JOBS_DUE; read-only): the engine then runs the gated claim.
# Without it every claim would pay that round trip.
_CLAIMED_THEN_DONE = (
    ", claimed AS ("
    + _CLAIM_SET_AND_RETURN
    + """)
SELECT true AS is_claim, claimed.* FROM claimed
UNION ALL
SELECT false, done.id"""
    + NULL_PADDING
    + """
FROM done
UNION ALL
SELECT NULL, NULL"""
    + NULL_PADDING
    + """
WHERE """
    + LANE_JOBS_DUE
    + "\n"
)
COMPLETE_AND_CLAIM_ALL_QUEUES = (
    "WITH"
    + _COMPLETE_CTE
    + ","
    + _CANDIDATES.format(due=DUE, not_paused=NOT_PAUSED, task_filter=TASK_FILTER)
    + _CLAIMED_THEN_DONE
)
COMPLETE_AND_CLAIM_IN_QUEUES = (
    "WITH"
    + _COMPLETE_CTE
    + ","
    + "\ncandidates AS MATERIALIZED ("
    + queue_heads("%(limit)s")
    + "\n)"
    + _CLAIMED_THEN_DONE
)

# Renew the leases of the jobs this worker still holds, named by id AND claim
# token. A claim the worker never heard back about (connection lost between the
# claim's commit and its answer) is not in the list, is not renewed, and expires
# into recovery instead of staying RUNNING forever under a live worker.
# SKIP LOCKED: a row locked right now (a completion in flight from this very
# worker, or an atomic task's own transaction after set_progress) is skipped
# instead of waited for: locking in another order than that statement could
# deadlock, and a heartbeat stalled behind a job would let every other lease of
# this worker run out. The next beat renews whatever is still running.
# RETURNING says, for free in the same round trip, which of the renewed jobs
# an operator cancelled (CANCEL_JOBS set cancel_requested_at, committed before
# this statement's snapshot or seen on the locked row): that is how the worker
# learns of a cancel, within one heartbeat interval.
RENEW_LEASES = """
WITH held AS MATERIALIZED (
    SELECT job.id FROM django_jobs_job AS job
    JOIN unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS mine(id, claim_token)
        ON job.id = mine.id AND job.claim_token = mine.claim_token
    WHERE job.status = 'RUNNING'
    FOR UPDATE OF job SKIP LOCKED
)
UPDATE django_jobs_job AS job SET lease_expires_at = now() + %(lease)s * interval '1 second'
FROM held
WHERE job.id = held.id
RETURNING job.id, job.cancel_requested_at IS NOT NULL
"""

# Hand unfinished jobs back on graceful shutdown, the attempt not counted.
# Fenced like COMPLETE_JOBS. Each released job's queue is notified (on commit)
# so an idle worker takes it at once. A released first attempt never started
# the run: its start times go back to NULL. A job cancelled while it waited in
# the backlog (cancel_requested_at, read on the locked row) ends CANCELLED.
RELEASE_JOBS = """
UPDATE django_jobs_job AS job
SET status = CASE WHEN job.cancel_requested_at IS NULL THEN 'READY' ELSE 'CANCELLED' END,
    finished_at = CASE WHEN job.cancel_requested_at IS NULL THEN NULL ELSE now() END,
    attempts = job.attempts - 1,
    started_at = CASE WHEN job.attempts <= 1 THEN NULL ELSE job.started_at END,
    last_attempted_at = CASE WHEN job.attempts <= 1 THEN NULL ELSE job.last_attempted_at END,
    lease_expires_at = NULL, worker_id = NULL, claim_token = NULL
FROM unnest(%s::bigint[], %s::uuid[]) AS held(id, claim_token)
WHERE job.id = held.id AND job.claim_token = held.claim_token AND job.status = 'RUNNING'
RETURNING job.id, CASE WHEN %s AND job.status = 'READY' THEN pg_notify(%s, job.queue_name) END
"""

# Recover RUNNING jobs whose lease expired: their worker stopped renewing it
# (killed, crashed, paused, cut off from the database). The attempt counts: a
# WorkerLost entry joins the errors; the job is READY again now, or FAILED with
# its dead letter (same statement, same commit) when no attempt is left.
# FOR UPDATE SKIP LOCKED: two recovering workers take disjoint rows, and a row
# being written right now (a fenced completion, an atomic task committing) is
# skipped. After the lock PostgreSQL re-checks status and lease on the newest
# row version (READ COMMITTED re-evaluation), so a lease renewed or a job
# completed meanwhile is left alone. Only the database clock is used: lease
# and expiry are both now() on one server, so host clock skew cannot expire a
# live lease. Due queues are notified so idle workers re-claim at once. A job
# whose cancel was requested is not run again: it ends CANCELLED, no letter.
RECOVER_EXPIRED = """
WITH expired AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status = 'RUNNING' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), recovered AS (
    UPDATE django_jobs_job AS job
    SET status = CASE WHEN job.cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                      WHEN job.attempts >= job.max_attempts THEN 'FAILED' ELSE 'READY' END,
        run_after = CASE WHEN job.cancel_requested_at IS NULL
                          AND job.attempts < job.max_attempts THEN now() ELSE job.run_after END,
        finished_at = CASE WHEN job.cancel_requested_at IS NOT NULL
                            OR job.attempts >= job.max_attempts THEN now() END,
        lease_expires_at = NULL,
        errors = job.errors || jsonb_build_array(jsonb_build_object(
            'attempt', job.attempts,
            'exception_class', 'django_jobs.exceptions.WorkerLost',
            'message', format(%(message)s, job.worker_id),
            'traceback', '',
            'at', to_jsonb(now()),
            'worker_id', job.worker_id
        ))
    FROM expired
    WHERE job.id = expired.id
    RETURNING job.id, job.task_name, job.queue_name, job.priority, job.args, job.kwargs,
        job.status, job.errors, job.attempts, job.max_attempts, job.worker_id
), letters AS (
    INSERT INTO django_jobs_deadletter (
        job_id, task_name, queue_name, priority, args, kwargs, reason, errors,
        attempts, max_attempts, created_at
    )
    SELECT id, task_name, queue_name, priority, args, kwargs,
           format(%(reason)s, attempts, max_attempts), errors, attempts, max_attempts, now()
    FROM recovered
    WHERE status = 'FAILED'
)
SELECT id, task_name, status, attempts, max_attempts, worker_id,
    CASE WHEN %(notify)s AND status = 'READY' THEN pg_notify(%(channel)s, queue_name) END
FROM recovered
"""

# Cancel jobs by id in one statement: READY ones end CANCELLED now, RUNNING
# ones get cancel_requested_at (the first request's time kept) and their worker
# stops them (RENEW_LEASES tells it). UPDATE locks each row and, under READ
# COMMITTED, re-evaluates WHERE and every CASE on the newest row version: a job
# claimed meanwhile is asked to stop instead of being marked CANCELLED under
# its worker, and one that finished meanwhile is left alone. RETURNING gives
# the new status: CANCELLED (cancelled) or RUNNING (requested).
CANCEL_JOBS = """
UPDATE django_jobs_job AS job
SET status = CASE WHEN job.status = 'READY' THEN 'CANCELLED' ELSE job.status END,
    finished_at = CASE WHEN job.status = 'READY' THEN now() ELSE job.finished_at END,
    cancel_requested_at = CASE WHEN job.status = 'RUNNING'
                               THEN COALESCE(job.cancel_requested_at, now())
                               ELSE job.cancel_requested_at END
WHERE job.id = ANY(%s) AND job.status IN ('READY', 'RUNNING')
RETURNING job.id, job.status
"""

# unique_for: serialize the enqueues of the same idempotency keys until commit
# with transaction-level advisory locks (namespace %(namespace)s, so the
# application's own advisory locks never collide with ours; two keys with the
# same hash only wait for each other). Taken in hash order, so two batches
# never deadlock. It must be its own statement: the insert that follows takes
# its snapshot after the lock is granted, so it sees every job a concurrent
# enqueuer of the key committed before releasing it (in READ COMMITTED, one
# statement's snapshot is fixed when it starts, even if it then waits).
LOCK_IDEMPOTENCY_KEYS = """
SELECT pg_advisory_xact_lock(%(namespace)s, h)
FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(%(keys)s::text[]) AS k ORDER BY h) AS keys
"""

# The job holding each key, for rows the insert skipped: an active one, or
# (period in seconds, unique_for) one enqueued within the period, whatever its
# status. Read after the insert, in the same transaction: the holder
# committed before our statement began (ON CONFLICT waited for it, or the
# advisory lock did).
SELECT_HOLDERS_BY_KEYS = """
SELECT job.id, job.task_name, job.queue_name, job.priority, job.args, job.kwargs, job.status,
       job.run_after, job.requested_run_after, job.attempts, job.max_attempts, job.timeout,
       job.idempotency_key, job.enqueued_at, job.started_at, job.last_attempted_at
FROM django_jobs_job AS job
JOIN unnest(%s::text[], %s::float8[]) AS k(key, period) ON job.idempotency_key = k.key
WHERE job.status IN ('READY', 'RUNNING')
   OR (k.period IS NOT NULL AND job.enqueued_at >= now() - k.period * interval '1 second')
ORDER BY job.id
"""

# Delete up to %(limit)s finished jobs that finished before %(before)s, oldest
# first (partial index jobs_job_finished). SKIP LOCKED: the pruners of several
# workers take disjoint rows instead of queueing on each other. Status and
# finished_at are re-checked on the locked row, so a job an operator retried
# since (READY, finished_at cleared) is never deleted.
PRUNE_FINISHED = """
WITH doomed AS MATERIALIZED (
    SELECT id FROM django_jobs_job
    WHERE status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED') AND finished_at < %(before)s
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM django_jobs_job AS job
USING doomed
WHERE job.id = doomed.id
"""


# After a big prune: make the dead rows' space reusable and refresh the
# planner's statistics now rather than when autovacuum gets to the table (or
# never, on a server with autovacuum off). Plain VACUUM, not FULL: it takes a
# SHARE UPDATE EXCLUSIVE lock, which conflicts with no INSERT, UPDATE, DELETE
# or SELECT ... FOR UPDATE SKIP LOCKED, so workers claim and finish jobs
# throughout. It cannot run inside a transaction block (autocommit only).
VACUUM_JOBS = "VACUUM (ANALYZE) django_jobs_job"


# The planner's estimate of the rows an ORM query returns, without running it:
# EXPLAIN before the ORM's own SELECT, whose parameters stay bound. Read-only
# and takes no row locks (no ANALYZE), so safe beside any writer.
EXPLAIN_ROWS_PREFIX = "EXPLAIN (FORMAT JSON) "
