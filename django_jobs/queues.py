"""Pause and resume queues: ``pause(name)`` / ``resume(name)``.

The state is a row of ``django_jobs_queue``, so it survives restarts and
every worker sees it: each claim statement reads the paused queues once (its
own snapshot). A paused queue's READY jobs are not claimed; jobs already
RUNNING finish. A queue nobody paused needs no row.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from django_jobs.options import validate_queue_name

__all__ = ["is_paused", "pause", "paused_queues", "resume"]

logger = logging.getLogger("django_jobs.queues")


def pause(name: str, *, database: str = DEFAULT_DB_ALIAS) -> bool:
    """Stop claims from queue ``name``; True if it was not paused already.

    Raises ``InvalidJobOptions`` for a name no job could have (empty, NUL,
    too long); nothing is written then.
    """
    return _set(name, paused=True, database=database)


def resume(name: str, *, database: str = DEFAULT_DB_ALIAS) -> bool:
    """Let workers claim from queue ``name`` again; True if it was paused."""
    return _set(name, paused=False, database=database)


def _set(name: str, *, paused: bool, database: str) -> bool:
    # The models and the engine (which imports them) are imported by the
    # call: this module is imported by the CLI and the admin while the app
    # registry may still be loading.
    from django_jobs.engine import get_engine
    from django_jobs.models import Queue

    validate_queue_name(name)
    with transaction.atomic(using=database):
        # Locked (or created) so two operators toggling the same queue see
        # each other's change: "changed" is exact.
        row, _ = Queue.objects.using(database).select_for_update().get_or_create(name=name)
        changed = row.paused != paused
        if changed:
            row.paused = paused
            row.paused_at = timezone.now() if paused else None
            row.save(update_fields=["paused", "paused_at", "updated_at"])
            if not paused:
                get_engine(database).wake_queues([name])
    if changed:
        logger.warning("queue %s %s", name, "paused" if paused else "resumed")
    return changed


def paused_queues(*, database: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names of the paused queues, sorted."""
    # The models are imported by the call (see _set).
    from django_jobs.models import Queue

    rows = Queue.objects.using(database).filter(paused=True).order_by("name")
    return list(rows.values_list("name", flat=True))


def is_paused(name: str, *, database: str = DEFAULT_DB_ALIAS) -> bool:
    return name in paused_queues(database=database)
