"""The PgQueuer factory of the benchmark: ``pgq run bench.clients.pgqueuer_app:main``."""

from __future__ import annotations

import os

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench.clients.base import record_latency


async def main() -> PgQueuer:
    connection = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        pass

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        record_latency(float((job.payload or b"0").decode()))

    return pgq
