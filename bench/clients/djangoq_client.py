"""django-q2 client (ORM broker; peers' venv)."""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_peers")
os.environ.setdefault("BENCH_PEER", "djangoq")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.clients.base import System, main  # noqa: E402

NOOP = "bench.clients.base.noop"
LATENCY = "bench.clients.base.record_latency"


class _Collector:
    """Stands in for the broker: keeps the signed packages async_task builds."""

    list_key = "bench"

    def __init__(self) -> None:
        self.packages: list[Any] = []

    def enqueue(self, package: Any) -> int:
        self.packages.append(package)
        return 0


class DjangoQ(System):
    def setup(self) -> None:
        call_command("migrate", verbosity=0)

    def versions(self) -> dict[str, str]:
        return {"django-q2": metadata.version("django-q2")}

    def enqueue_one(self) -> None:
        from django_q.tasks import async_task

        async_task(NOOP)

    def enqueue_latency(self, t0: float) -> None:
        from django_q.tasks import async_task

        async_task(LATENCY, t0)

    def prefill(self, n: int) -> None:
        # No bulk API: build the packages async_task would push, insert in bulk.
        from django_q.conf import Conf
        from django_q.models import OrmQ
        from django_q.tasks import async_task

        collector = _Collector()
        for _ in range(n):
            async_task(NOOP, broker=collector)
        now = timezone.now()
        with transaction.atomic():  # one commit: the workers see every job at once
            OrmQ.objects.bulk_create(
                [OrmQ(key=Conf.CLUSTER_NAME, payload=p, lock=now) for p in collector.packages],
                batch_size=5000,
            )


if __name__ == "__main__":
    main(DjangoQ())
