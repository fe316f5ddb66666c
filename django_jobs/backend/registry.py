"""The ``django.tasks`` tasks of django_jobs backends that the worker may run.

:meth:`JobsBackend.validate_task <django_jobs.backend.JobsBackend.validate_task>`
registers each task when it is defined; :func:`runnable_django_task` is the
resolver the backend hands to :func:`django_jobs.tasks.register_resolver`, so
``resolve_task`` answers for these tasks too, with the bridge that runs them.
"""

from __future__ import annotations

from typing import Any

from django.tasks import Task as DjangoTask

from django_jobs.tasks import Task, note_definition

# Dotted path -> ``django.tasks`` Task of a django_jobs backend.
django_task_registry: dict[str, DjangoTask[..., Any]] = {}


def register_django_task(django_task: DjangoTask[..., Any]) -> None:
    """Let the worker run ``django_task`` by its dotted path.

    Called when a task is defined, so it must stay cheap: no import, no query.
    Copies made by ``using()`` share the function and keep the first entry; a
    redefinition (module reloaded) has a new function and replaces it.
    """
    name = django_task.module_path
    found = django_task_registry.get(name)
    if found is None or found.func is not django_task.func:
        django_task_registry[name] = django_task
        note_definition(name)


def runnable_django_task(name: str) -> Task[..., Any] | None:
    """The django_jobs Task that runs the registered ``django.tasks`` Task
    ``name`` (its bridge), or None; a lookup only."""
    found = django_task_registry.get(name)
    if found is None:
        return None
    # Imported on first use, not with the backend: the bridge connects
    # job_started / job_finished receivers, and once any receiver is connected
    # every job of the worker pays for sending those signals.
    from django_jobs.backend.bridge import bridged_task

    return bridged_task(found)
