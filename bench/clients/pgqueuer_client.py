"""PgQueuer client (peers' venv; database from PGDSN)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

import psycopg
from pgqueuer.db import SyncPsycopgDriver
from pgqueuer.queries import SyncQueries

from bench.clients.base import System, main


class PgQueuerSystem(System):
    def __init__(self) -> None:
        self._queries: SyncQueries | None = None

    @property
    def queries(self) -> SyncQueries:
        if self._queries is None:
            conn = psycopg.connect(os.environ["PGDSN"], autocommit=True)
            self._queries = SyncQueries(SyncPsycopgDriver(conn))
        return self._queries

    def setup(self) -> None:
        install = [sys.executable, "-m", "pgqueuer", "install"]
        subprocess.run(install, check=True, capture_output=True)

    def versions(self) -> dict[str, str]:
        return {"pgqueuer": metadata.version("pgqueuer")}

    def enqueue_one(self) -> None:
        self.queries.enqueue("noop", None)

    def enqueue_bulk(self, n: int) -> bool:
        self.queries.enqueue(["noop"] * n, [None] * n, [0] * n)
        return True

    def enqueue_latency(self, t0: float) -> None:
        self.queries.enqueue("latency", repr(t0).encode())

    def prefill(self, n: int) -> None:
        self.queries.enqueue(["noop"] * n, [None] * n, [0] * n)


if __name__ == "__main__":
    main(PgQueuerSystem())
