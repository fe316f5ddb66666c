"""The Procrastinate app of the benchmark (peers' venv; database from BENCH_DSN)."""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

from bench.clients.base import record_latency

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_DSN"]))


@app.task(name="noop")
def noop() -> None:
    pass


@app.task(name="latency")
def latency(t0: float) -> None:
    record_latency(t0)
