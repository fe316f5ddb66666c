"""``manage.py check``: alert rules that cannot be evaluated are errors (E3xx)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_jobs.alerts.rules import interval_problems, load_rules
from django_jobs.tasks import find_task


@register(Tags.compatibility)
def check_alerts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    rules, problems = load_rules()
    messages: list[CheckMessage] = [
        Error(p.message, id=p.id) for p in [*problems, *interval_problems()]
    ]
    for rule in rules:
        # A typo in a task name would make a rule that never fires: say so, but
        # as a warning (the jobs may come from another codebase on the same table).
        if rule.task is not None and find_task(rule.task) is None:
            messages.append(
                Warning(
                    f"DJANGO_JOBS['ALERTS'][{rule.name!r}]: 'task' {rule.task!r} is not a "
                    "registered task; the rule only sees jobs of that exact name",
                    id="django_jobs.W301",
                )
            )
    return messages
