"""django_jobs client of the benchmark (runs in the project's venv)."""

from __future__ import annotations

import os
import time
from importlib import metadata

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.clients.base import System, main  # noqa: E402
from bench.clients.jobs_tasks import latency, noop  # noqa: E402

if os.environ.get("BENCH_BULK_PATH") == "array":
    # bench/bulk_copy.py: the array-bound insert for every batch size (the path before COPY).
    from django_jobs.engine import postgres as _postgres

    _postgres.COPY_THRESHOLD = 2**62  # type: ignore[misc]
if os.environ.get("BENCH_NOTIFY_IN_STATEMENT") == "1":
    # bench/notify_scale.py: NOTIFY inside the enqueue transaction (the behaviour before).
    from django_jobs.engine import postgres_notify as _notify

    _notify.NOTIFY_IN_STATEMENT = True

# Finished history: SUCCESSFUL rows finished a month ago (older than the
# default retention, so pruning has work to do).
INSERT_FINISHED = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, attempts,
    max_attempts, timeout, errors, meta, result, enqueued_at, started_at, finished_at
)
SELECT 'bench.clients.jobs_tasks.noop', 'default', 0, '[]', '{}', 'SUCCESSFUL',
       now() - interval '30 days', 1, 3, 300, '[]', '{}', 'null',
       now() - interval '30 days', now() - interval '30 days', now() - interval '30 days'
FROM generate_series(1, %s)
"""


class DjangoJobs(System):
    def setup(self) -> None:
        call_command("migrate", verbosity=0)

    def versions(self) -> dict[str, str]:
        return {"django_jobs": metadata.version("django-dbjobs"), "Django": django.get_version()}

    def enqueue_one(self) -> None:
        noop.enqueue()

    def enqueue_bulk(self, n: int) -> bool:
        noop.enqueue_many([()] * n)
        return True

    def enqueue_latency(self, t0: float) -> None:
        latency.enqueue(t0)

    def prefill(self, n: int) -> None:
        noop.enqueue_many([()] * n)

    def prefill_finished(self, n: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(INSERT_FINISHED, [n])
            cursor.execute("VACUUM (ANALYZE) django_jobs_job")
        return True

    def prune(self, seconds: float) -> int | None:
        # The worker's own pruning pass (batches of PRUNE_BATCH_SIZE with its
        # breather in between), repeated for ``seconds``.
        from django_jobs.worker.pruner import Pruner

        pruner = Pruner("default", interval=seconds)
        deleted = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = pruner.prune_once()
            if not batch:
                break
            deleted += batch
        return deleted


if __name__ == "__main__":
    main(DjangoJobs())
