"""``manage.py check``: schedule definitions that cannot run are errors."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_jobs.scheduling.definitions import load_definitions

# The scheduler loop (runworker's scheduler, manage.py runscheduler) is not
# built yet (issue 13): say so rather than accept schedules that never fire.
NOT_RUN_YET = (
    "schedules are defined ({names}) but this version of django_jobs does not run them yet: "
    "definitions are validated, no job is enqueued for their ticks"
)


@register(Tags.compatibility)
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    definitions, problems = load_definitions()
    messages: list[CheckMessage] = [Error(p, id="django_jobs.E201") for p in problems]
    if definitions:
        names = ", ".join(sorted(d.name for d in definitions)[:5])
        messages.append(Warning(NOT_RUN_YET.format(names=names), id="django_jobs.W202"))
    return messages
