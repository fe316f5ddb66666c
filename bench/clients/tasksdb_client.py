"""django-tasks-db client (Django 6 ``django.tasks`` database backend; peers' venv)."""

from __future__ import annotations

import os
from importlib import metadata

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_peers")
os.environ.setdefault("BENCH_PEER", "tasksdb")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.clients.base import System, main  # noqa: E402
from bench.clients.tasksdb_tasks import latency, noop  # noqa: E402


class TasksDB(System):
    def setup(self) -> None:
        call_command("migrate", verbosity=0)

    def versions(self) -> dict[str, str]:
        return {"django-tasks-db": metadata.version("django-tasks-db")}

    def enqueue_one(self) -> None:
        noop.enqueue()

    def enqueue_latency(self, t0: float) -> None:
        latency.enqueue(t0)

    def prefill(self, n: int) -> None:
        # No bulk API: build the rows the backend would write, insert in bulk.
        from django_tasks_db.models import DBTaskResult, get_date_max

        rows = [
            DBTaskResult(
                args_kwargs={"args": [], "kwargs": {}},
                priority=noop.priority,
                task_path=noop.module_path,
                queue_name=noop.queue_name,
                run_after=get_date_max(),
                backend_name="default",
            )
            for _ in range(n)
        ]
        with transaction.atomic():  # one commit: the workers see every job at once
            DBTaskResult.objects.bulk_create(rows, batch_size=5000)


if __name__ == "__main__":
    main(TasksDB())
