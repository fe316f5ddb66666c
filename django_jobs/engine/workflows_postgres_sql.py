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
WHERE id = ANY(%s::bigint[])
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

# Insert the jobs of the steps an advance started (in input order: ORDER BY
# ord, ids from one sequence, so they increase in that order), due now, and
# wake idle workers for their queues (when %(notify)s) in the same statement.
# Only under the LOCK_WORKFLOWS lock of their workflows, after checking under
# it that each step was PENDING: a step's job is inserted once. No idempotency
# key, so no conflict to handle. NOTIFY is delivered on commit (never for a
# rollback), after the jobs are visible; identical notifications of one
# transaction fold into one. The channel is bound (pg.JOBS_CHANNEL).
INSERT_STEP_JOBS = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, attempts,
    max_attempts, timeout, errors, meta, enqueued_at, workflow_id, workflow_position
)
SELECT t.task_name, t.queue_name, t.priority, t.args, t.kwargs, 'READY', now(), 0,
       t.max_attempts, t.timeout, '[]'::jsonb, '{}'::jsonb, now(), t.workflow_id,
       t.workflow_position
FROM unnest(
    %(task_name)s::text[], %(queue_name)s::text[], %(priority)s::smallint[],
    %(args)s::jsonb[], %(kwargs)s::jsonb[], %(max_attempts)s::int[], %(timeout)s::float8[],
    %(workflow_id)s::bigint[], %(workflow_position)s::int[]
) WITH ORDINALITY AS t(
    task_name, queue_name, priority, args, kwargs, max_attempts, timeout, workflow_id,
    workflow_position, ord
)
ORDER BY t.ord
RETURNING id, run_after, enqueued_at,
    CASE WHEN %(notify)s THEN pg_notify(%(channel)s, queue_name) END
"""

# What the advance of these finished jobs reads (see
# WorkflowOperations._load_outcomes): their steps, found through the partial
# index jobs_workflowstep_running (only a RUNNING task step takes an outcome:
# any other is ignored anyway), the steps' ancestors (parent_position up to
# the root), and the step at the next position of a chain member (its next
# sibling, if it has one). Read-only, under the LOCK_WORKFLOWS lock of the
# workflows, which every writer of their steps takes first: the rows are the
# committed state of the last advance.
LOAD_OUTCOME_STEPS = """
WITH RECURSIVE finished AS (
    SELECT workflow_id, position, parent_position, role
    FROM django_jobs_workflowstep
    WHERE job_id = ANY(%(job_ids)s::bigint[]) AND status = 'RUNNING' AND kind = 'task'
      AND workflow_id = ANY(%(workflow_ids)s::bigint[])
), up(workflow_id, position, parent_position) AS (
    SELECT workflow_id, position, parent_position FROM finished
    UNION
    SELECT s.workflow_id, s.position, s.parent_position
    FROM up JOIN django_jobs_workflowstep AS s
      ON s.workflow_id = up.workflow_id AND s.position = up.parent_position
), wanted AS (
    SELECT workflow_id, position FROM up
    UNION
    SELECT workflow_id, position + 1 FROM finished WHERE role = 'step'
)
SELECT s.* FROM django_jobs_workflowstep AS s JOIN wanted USING (workflow_id, position)
ORDER BY s.workflow_id, s.position
"""
