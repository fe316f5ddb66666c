"""Procrastinate app of bench/async_tasks.py (peers' venv; database from BENCH_DSN)."""

from __future__ import annotations

import asyncio
import os
import sys

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_DSN"]))


@app.task(name="async_sleep")
async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def main() -> None:
    """``setup`` applies the schema; ``prefill N SECONDS`` defers N jobs in batches."""
    command = sys.argv[1]
    app.open()
    try:
        if command == "setup":
            app.schema_manager.apply_schema()
        elif command == "prefill":
            n, seconds = int(sys.argv[2]), float(sys.argv[3])
            for start in range(0, n, 1000):
                async_sleep.batch_defer(*([{"seconds": seconds}] * min(1000, n - start)))
    finally:
        app.close()
    print("{}")


if __name__ == "__main__":
    main()
