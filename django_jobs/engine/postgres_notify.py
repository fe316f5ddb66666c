"""Wake-ups sent after the enqueuing transaction commits, not inside it.

A NOTIFY takes a database-wide lock in the committing transaction
(PreCommit_Notify) and holds it through the commit's WAL flush, so every
transaction that notifies commits one at a time: with 8 clients enqueueing one
job per transaction, NOTIFY cost 2-3x the throughput (bench/RESULTS.md, "NOTIFY
at scale"). So the enqueue statements run with notify off and, once the
caller's transaction has committed, one short transaction of its own sends the
notifications with synchronous_commit off: it holds the lock only while the
notifications enter the queue, never across an fsync, and the enqueues
themselves commit in groups again.

One notifying statement per committed transaction, whatever the number of
enqueues in it (their queues are gathered). The worker is woken after the
jobs are visible, as before; a notification lost to a crash right after the
commit costs one poll interval (POLL_INTERVAL), as any lost wake-up does.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction

from django_jobs.engine.pg import JOBS_CHANNEL

# After the caller's commit, in autocommit mode: one statement, so one
# implicit transaction. set_config(..., true) is SET LOCAL: synchronous_commit
# is off for this transaction only, which writes nothing but the
# notifications (no row, no lock on anything else), so not waiting for its
# commit record's flush risks only the wake-up. The channel and the queue
# names are bound; identical notifications fold into one.
NOTIFY_AFTER_COMMIT = """
SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, queue)
FROM unnest(%s::text[]) AS queue
"""


# True: the enqueue statements notify themselves, inside the transaction (the
# behaviour before; bench/notify_scale.py compares the two in one run).
NOTIFY_IN_STATEMENT = False


class _Pending:
    """The queues to notify once the current transaction of one connection commits."""

    __slots__ = ("alias", "queues")

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.queues: set[str] = set()

    def send(self) -> None:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(NOTIFY_AFTER_COMMIT, [JOBS_CHANNEL, sorted(self.queues)])


# The pending notification of each connection's current transaction: the
# callback is still registered (Django drops the callbacks of a rolled-back
# savepoint, and runs or drops all of them at the outer commit or rollback).
_pending: weakref.WeakKeyDictionary[Any, _Pending] = weakref.WeakKeyDictionary()


def notify_on_commit(alias: str, queues: Iterable[str]) -> None:
    """Notify ``queues`` on the jobs channel after the current transaction of
    database ``alias`` commits (at once in autocommit mode)."""
    queues = set(queues)
    if not queues or NOTIFY_IN_STATEMENT:
        return
    connection = connections[alias]
    pending = _pending.get(connection)
    if pending is not None and any(entry[1] == pending.send for entry in connection.run_on_commit):
        pending.queues |= queues
        return
    pending = _Pending(alias)
    pending.queues = queues
    if connection.in_atomic_block:
        _pending[connection] = pending
    transaction.on_commit(pending.send, using=alias)
