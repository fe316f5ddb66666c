"""PgQueuer's worker with its defaults, started through ``pgqueuer.run`` (what
``pgq run`` calls), because the 1.6.0 CLI fails on its own default log level."""

from __future__ import annotations

import asyncio
import logging

import pgqueuer

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(pgqueuer.run("bench.clients.pgqueuer_app:main"))
