"""LISTEN/NOTIFY wake-ups on PostgreSQL.

A dedicated autocommit psycopg connection listens on ``engine.pg.JOBS_CHANNEL``;
each notification carries a queue name. When one of ours arrives the worker
loop wakes at once; polling stays as the backstop. The outbox relay uses the
same listener on ``engine.pg.OUTBOX_CHANNEL`` (any notification wakes it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from django.db import connections

from django_jobs.engine.pg import JOBS_CHANNEL

logger = logging.getLogger("django_jobs.worker")


class NotifyListener(threading.Thread):
    def __init__(
        self,
        database: str,
        queues: Sequence[str] | None,
        wake: Callable[[], None],
        *,
        channel: str = JOBS_CHANNEL,
    ) -> None:
        super().__init__(name=f"{channel}-listener", daemon=True)
        self.database = database
        self.channel = channel
        self.queues = frozenset(queues or ())
        self.wake = wake
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        params = connections[self.database].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("server_side_binding", None)
        params.pop("prepare_threshold", None)
        conn = psycopg.connect(**params, autocommit=True)
        # A channel constant of engine.pg, not input (LISTEN takes no parameters).
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            try:
                with self._connect() as conn:
                    failures = 0
                    self.wake()  # we may have missed notifications while away
                    while not self._stop_event.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=64):
                            if not self.queues or note.payload in self.queues:
                                self.wake()
            except Exception:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                logger.warning(
                    "LISTEN connection lost; reconnecting in %.1fs", delay, exc_info=True
                )
                self._stop_event.wait(delay)
