"""The PostgreSQL statements of workflow advances (``engine.postgres``), each
with why it is safe under concurrency. Parameters are always bound.
"""

from __future__ import annotations

# Lock workflow rows for the rest of the transaction, in id order, and read
# them. Every advance of a workflow (a batch of steps' completions or a
# give-up, settle_orphans, cancel, retry) starts with this statement, so the
# advances of one workflow run one at a time: the second waits here until the
# first commits, then reads the row as committed (FOR UPDATE returns the newest
# version) and, in READ COMMITTED, its later statements see the steps that the
# first one wrote. That makes the group fan-in counter and "start the next step
# once" race-free. The rows are locked in the ORDER BY's order (the lock is
# taken above the sort), so two batches sharing workflows never wait on each
# other in a cycle; the job rows they hold are their own RUNNING jobs, which
# cancel (the only other writer of a workflow's jobs under its lock) never
# matches.
LOCK_WORKFLOWS = """
SELECT id, kind, status, compensating, cancel_requested, created_at, finished_at,
       failed_position, failure
FROM django_jobs_workflow
WHERE id = ANY(%s)
ORDER BY id
FOR UPDATE
"""

# Save the steps an advance changed, all in one statement (one row per id).
# Only under the LOCK_WORKFLOWS lock of their workflows, which every writer of
# steps takes first: no two advances write one step concurrently.
UPDATE_STEPS = """
UPDATE django_jobs_workflowstep AS s
SET status = u.status, args = u.args::jsonb, remaining = u.remaining,
    result = u.result::jsonb, started_at = u.started_at, finished_at = u.finished_at,
    job_id = u.job_id
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[],
            %s::timestamptz[], %s::timestamptz[], %s::bigint[])
     AS u(id, status, args, remaining, result, started_at, finished_at, job_id)
WHERE s.id = u.id
"""

# Wake idle workers for the queues of jobs an advance just created. NOTIFY is
# delivered on commit (never for a rollback), after the jobs are visible;
# identical notifications of one transaction fold into one. The channel is
# bound (pg.JOBS_CHANNEL) like every parameter.
NOTIFY_QUEUES = """
SELECT pg_notify(%s, queue) FROM unnest(%s::text[]) AS queue
"""
