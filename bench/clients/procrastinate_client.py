"""Procrastinate client (peers' venv)."""

from __future__ import annotations

from importlib import metadata

from bench.clients.base import System, main
from bench.clients.procrastinate_app import app, latency, noop


class Procrastinate(System):
    def __init__(self) -> None:
        app.open()

    def setup(self) -> None:
        app.schema_manager.apply_schema()

    def versions(self) -> dict[str, str]:
        return {"procrastinate": metadata.version("procrastinate")}

    def enqueue_one(self) -> None:
        noop.defer()

    def enqueue_bulk(self, n: int) -> bool:
        noop.batch_defer(*([{}] * n))
        return True

    def enqueue_latency(self, t0: float) -> None:
        latency.defer(t0=t0)

    def prefill(self, n: int) -> None:
        noop.batch_defer(*([{}] * n))


if __name__ == "__main__":
    main(Procrastinate())
