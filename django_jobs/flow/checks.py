"""System checks of the flow control settings (``DJANGO_JOBS["QUEUES"]``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from django_jobs.conf import jobs_settings
from django_jobs.flow.rates import rate_problem
from django_jobs.options import positive_number_problem, validate_queue_name

QUEUE_KEYS = frozenset({"CONCURRENCY", "RATE_LIMIT"})


def queue_problems(queues: Any) -> list[str]:
    """What is wrong with a QUEUES setting, one sentence each."""
    if not isinstance(queues, dict):
        return [f"DJANGO_JOBS QUEUES must be a dict of queue name -> limits, got {queues!r}"]
    problems: list[str] = []
    for name, config in queues.items():
        where = f"DJANGO_JOBS QUEUES[{name!r}]"
        try:
            validate_queue_name(name)
        except Exception as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not isinstance(config, dict):
            problems.append(f"{where} must be a dict like {{'CONCURRENCY': 5}}, got {config!r}")
            continue
        unknown = set(config) - QUEUE_KEYS
        if unknown:
            problems.append(
                f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"known: {', '.join(sorted(QUEUE_KEYS))}"
            )
        concurrency = config.get("CONCURRENCY")
        problem = positive_number_problem(concurrency, integer=True)
        if problem is not None:
            problems.append(f"{where}['CONCURRENCY'] {problem}")
        rate = config.get("RATE_LIMIT")
        if rate is not None and rate_problem(rate) is not None:
            problems.append(f"{where}['RATE_LIMIT'] {rate_problem(rate)}")
    return problems


@register(Tags.compatibility)
def check_flow_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [Error(p + ".", id="django_jobs.E301") for p in queue_problems(jobs_settings.QUEUES)]
