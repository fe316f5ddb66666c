"""``manage.py check``: schedule definitions that cannot run are errors."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from django_jobs.scheduling.definitions import load_definitions


@register(Tags.compatibility)
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E201: one error per schedule definition that cannot run (the worker refuses them too)."""
    _, problems = load_definitions()
    return [Error(p, id="django_jobs.E201") for p in problems]
