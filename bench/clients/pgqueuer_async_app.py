"""PgQueuer side of bench/async_tasks.py (peers' venv; database from PGDSN).

``python -m bench.clients.pgqueuer_async_app worker CONCURRENCY`` runs the
worker (``pgqueuer.run``, what ``pgq run`` calls) with at most CONCURRENCY
jobs picked at once; ``prefill N SECONDS`` enqueues N jobs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pgqueuer
import psycopg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver, SyncPsycopgDriver
from pgqueuer.models import Job
from pgqueuer.queries import SyncQueries


@asynccontextmanager
async def factory() -> AsyncIterator[PgQueuer]:
    connection = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("async_sleep")
    async def async_sleep(job: Job) -> None:
        await asyncio.sleep(json.loads(job.payload or b"0.05"))

    try:
        yield pgq
    finally:
        await connection.close()


def main() -> None:
    command = sys.argv[1]
    if command == "worker":
        logging.basicConfig(level=logging.WARNING)
        concurrency = int(sys.argv[2])
        asyncio.run(pgqueuer.run(factory, batch_size=10, max_concurrent_tasks=concurrency))
        return
    conn = psycopg.connect(os.environ["PGDSN"], autocommit=True)
    queries = SyncQueries(SyncPsycopgDriver(conn))
    if command == "prefill":
        n, seconds = int(sys.argv[2]), float(sys.argv[3])
        payload = json.dumps(seconds).encode()
        for start in range(0, n, 1000):
            size = min(1000, n - start)
            queries.enqueue(["async_sleep"] * size, [payload] * size, [0] * size)
    print("{}")


if __name__ == "__main__":
    main()
