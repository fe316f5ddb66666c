"""The PostgreSQL statements of workflow advances (``engine.postgres``), each
with why it is safe under concurrency. Parameters are always bound.
"""

from __future__ import annotations

# Lock one workflow row for the rest of the transaction, and read it. Every
# advance of the workflow (a step's completion or give-up, settle_orphans,
# cancel, retry) starts with this statement, so they run one at a time: the
# second waits here until the first commits, then reads the row as committed
# (FOR UPDATE returns the newest version) and, in READ COMMITTED, its later
# statements see the steps that the first one wrote. That makes the group
# fan-in counter and "start the next step once" race-free. Callers lock
# several workflows in id order only, so two lockers never wait in a cycle;
# the job rows they hold are their own RUNNING jobs, which cancel (the only
# other writer of a workflow's jobs under its lock) never matches.
LOCK_WORKFLOW = """
SELECT id, kind, status, compensating, cancel_requested, created_at, finished_at,
       failed_position, failure
FROM django_jobs_workflow
WHERE id = %s
FOR UPDATE
"""

# Wake idle workers for the queues of jobs an advance just created. NOTIFY is
# delivered on commit (never for a rollback), after the jobs are visible;
# identical notifications of one transaction fold into one. The channel is
# bound (pg.JOBS_CHANNEL) like every parameter.
NOTIFY_QUEUES = """
SELECT pg_notify(%s, queue) FROM unnest(%s::text[]) AS queue
"""
