"""Schedule definitions from code (``@task(schedule=...)``) and from
``DJANGO_JOBS["SCHEDULES"]``, checked: each problem is one sentence naming
the schedule, reported by ``manage.py check`` and refused at worker start."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings

from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.options import validate_priority, validate_queue_name
from django_jobs.scheduling.plans import CATCH_UP, ScheduleDefinition
from django_jobs.scheduling.ticks import Cadence, validate_cron, validate_interval, zone
from django_jobs.tasks import check_binding, find_task, registry

MAX_NAME_LENGTH = 200
SETTING_KEYS = frozenset(
    {"task", "cron", "every", "timezone", "args", "kwargs", "queue_name", "priority"}
    | {"catch_up", "overlap"}
)


def default_timezone() -> str:
    return str(getattr(settings, "TIME_ZONE", None) or "UTC")


def _cadence(cron: Any, every: Any, tz: Any) -> Cadence:
    if (cron is None) == (every is None):
        raise InvalidJobOptions("needs exactly one of 'cron' and 'every'")
    zone(tz)
    if cron is not None:
        return Cadence(cron=validate_cron(cron), timezone=tz)
    return Cadence(interval=validate_interval(every), timezone=tz)


def _from_setting(name: Any, spec: Any) -> ScheduleDefinition:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidJobOptions(f"name must be a string of 1 to {MAX_NAME_LENGTH} characters")
    if not isinstance(spec, Mapping):
        raise InvalidJobOptions(f"must be a dict, got {type(spec).__name__}")
    unknown = set(spec) - SETTING_KEYS
    if unknown:
        raise InvalidJobOptions(
            f"unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(SETTING_KEYS))}"
        )
    task_name = spec.get("task")
    task = find_task(task_name) if isinstance(task_name, str) else None
    if task is None:
        raise InvalidJobOptions(f"'task' {task_name!r} is not a registered task")
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping):
        raise InvalidJobOptions("'args' must be a list and 'kwargs' a dict")
    queue = spec.get("queue_name")
    priority = spec.get("priority")
    catch_up = spec.get("catch_up", "latest")
    overlap = spec.get("overlap", True)
    if catch_up not in CATCH_UP:
        raise InvalidJobOptions(
            f"'catch_up' must be one of {', '.join(CATCH_UP)}, got {catch_up!r}"
        )
    if not isinstance(overlap, bool):
        raise InvalidJobOptions(f"'overlap' must be True or False, got {overlap!r}")
    definition = ScheduleDefinition(
        name=name,
        task_name=task.name,
        cadence=_cadence(
            spec.get("cron"), spec.get("every"), spec.get("timezone", default_timezone())
        ),
        args=list(args),
        kwargs=dict(kwargs),
        queue_name=None if queue is None else validate_queue_name(queue),
        priority=None if priority is None else validate_priority(priority),
        catch_up=catch_up,
        overlap=overlap,
        source="settings",
    )
    task.new_job(definition.args, definition.kwargs)  # binds and encodes, or TypeError
    return definition


def _from_code() -> list[ScheduleDefinition]:
    found = []
    for name, task in sorted(registry.items()):
        if task.schedule is None:
            continue
        tz = task.schedule_timezone or default_timezone()
        cron = task.schedule if isinstance(task.schedule, str) else None
        every = task.schedule if isinstance(task.schedule, timedelta) else None
        found.append(
            ScheduleDefinition(
                name=name,
                task_name=name,
                cadence=_cadence(cron, every, tz),
                args=[],
                kwargs={},
                queue_name=None,
                priority=None,
                catch_up="latest",
                overlap=True,
                source="code",
            )
        )
    return found


def load_definitions() -> tuple[list[ScheduleDefinition], list[str]]:
    """Every valid definition, and one sentence per problem found."""
    problems: list[str] = []
    definitions: dict[str, ScheduleDefinition] = {}
    for definition in _from_code():
        task = registry[definition.task_name]
        try:
            check_binding(definition.name, task.func, [], {}, takes_context=task.takes_context)
            zone(definition.cadence.timezone)
        except (TypeError, InvalidJobOptions) as exc:
            problems.append(
                f"@task(schedule=...) on {definition.name}: {exc} (a scheduled "
                "task is called without arguments; use DJANGO_JOBS['SCHEDULES'])"
            )
            continue
        definitions[definition.name] = definition
    configured = jobs_settings.SCHEDULES
    if not isinstance(configured, Mapping):
        return list(definitions.values()), [
            *problems,
            f"DJANGO_JOBS['SCHEDULES'] must be a dict of name -> schedule, got {configured!r}",
        ]
    for name, spec in configured.items():
        if name in definitions:
            problems.append(
                f"DJANGO_JOBS['SCHEDULES'][{name!r}]: two schedules are named {name!r} "
                "(the task's own @task(schedule=...) has that name)"
            )
            continue
        try:
            definitions[name] = _from_setting(name, spec)
        except (TypeError, ValueError, InvalidJobOptions) as exc:
            problems.append(f"DJANGO_JOBS['SCHEDULES'][{name!r}]: {exc}")
    return list(definitions.values()), problems
