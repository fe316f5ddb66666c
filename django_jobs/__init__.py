"""django_jobs: background jobs, retries, dead letters and a transactional outbox
that live in your Django database.

Public API (a contract: these names do not change)::

    from django_jobs import task, current_job, Retry, Discard, JobCancelled, outbox, subscriber
    from django_jobs import chain, group, chord, saga

Nothing here touches models at import time: ``tasks.py`` modules import this
package while Django's app registry is still loading, so every name is
resolved lazily on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_jobs import outbox as outbox
    from django_jobs.context import current_job as current_job
    from django_jobs.exceptions import Discard as Discard
    from django_jobs.exceptions import JobCancelled as JobCancelled
    from django_jobs.exceptions import Retry as Retry
    from django_jobs.outbox import subscriber as subscriber
    from django_jobs.tasks import task as task
    from django_jobs.workflows.canvas import chain as chain
    from django_jobs.workflows.canvas import chord as chord
    from django_jobs.workflows.canvas import group as group
    from django_jobs.workflows.canvas import saga as saga

__all__ = [
    "Discard",
    "JobCancelled",
    "Retry",
    "chain",
    "chord",
    "current_job",
    "group",
    "outbox",
    "saga",
    "subscriber",
    "task",
]

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "task": ("django_jobs.tasks", "task"),
    "current_job": ("django_jobs.context", "current_job"),
    "Retry": ("django_jobs.exceptions", "Retry"),
    "Discard": ("django_jobs.exceptions", "Discard"),
    "JobCancelled": ("django_jobs.exceptions", "JobCancelled"),
    "outbox": ("django_jobs.outbox", None),
    "subscriber": ("django_jobs.outbox", "subscriber"),
    "chain": ("django_jobs.workflows.canvas", "chain"),
    "group": ("django_jobs.workflows.canvas", "group"),
    "chord": ("django_jobs.workflows.canvas", "chord"),
    "saga": ("django_jobs.workflows.canvas", "saga"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'django_jobs' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
