"""The PgQueuer factory of the benchmark (what ``pgq run`` is given)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench.clients.base import record_latency


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    connection = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        pass

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        record_latency(float((job.payload or b"0").decode()))

    try:
        yield pgq
    finally:
        await connection.close()
