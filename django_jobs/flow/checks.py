"""System checks of the flow control settings (``DJANGO_JOBS["QUEUES"]`` and
``["CIRCUITS"]``) and of the circuits tasks name."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from django_jobs.conf import jobs_settings
from django_jobs.flow.rates import rate_problem
from django_jobs.options import positive_number_problem, queue_limits_problem, validate_queue_name

QUEUE_KEYS = frozenset({"CONCURRENCY", "RATE_LIMIT"})
CIRCUIT_KEYS = frozenset({"FAILURES", "WINDOW", "COOLDOWN"})


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


def circuit_problems(circuits: Any) -> list[str]:
    """What is wrong with a CIRCUITS setting, one sentence each."""
    if not isinstance(circuits, dict):
        return [f"DJANGO_JOBS CIRCUITS must be a dict of name -> settings, got {circuits!r}"]
    problems: list[str] = []
    for name, config in circuits.items():
        where = f"DJANGO_JOBS CIRCUITS[{name!r}]"
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            problems.append(f"{where}: names are non-empty, 100 characters at most")
            continue
        if not isinstance(config, dict):
            problems.append(f"{where} must be a dict like {{'FAILURES': 5}}, got {config!r}")
            continue
        unknown = set(config) - CIRCUIT_KEYS
        if unknown:
            problems.append(
                f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"known: {', '.join(sorted(CIRCUIT_KEYS))}"
            )
        problem = positive_number_problem(config.get("FAILURES"), integer=True)
        if problem is not None:
            problems.append(f"{where}['FAILURES'] {problem}")
        for key in ("WINDOW", "COOLDOWN"):
            problem = positive_number_problem(config.get(key), integer=False)
            if problem is not None:
                problems.append(f"{where}[{key!r}] {problem}")
    return problems


def unknown_circuit_problems() -> list[str]:
    """Tasks naming a circuit the settings do not define."""
    # The registry is filled by AppConfig.ready before checks run.
    from django_jobs.tasks import registry

    circuits = jobs_settings.CIRCUITS if isinstance(jobs_settings.CIRCUITS, dict) else {}
    return [
        f"task {name} names circuit {t.circuit!r}, which is not in DJANGO_JOBS['CIRCUITS']"
        for name, t in sorted(registry.items())
        if t.circuit is not None and t.circuit not in circuits
    ]


def queue_limit_conflicts() -> list[str]:
    """Tasks with limits of their own in a queue with QUEUES limits."""
    # The registry is filled by AppConfig.ready before checks run.
    from django_jobs.tasks import registry

    problems = []
    for name, t in sorted(registry.items()):
        problem = queue_limits_problem(t, t.effective_queue)
        if problem is not None:
            problems.append(f"task {name}: {problem}")
    return problems


@register(Tags.compatibility)
def check_flow_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = [
        Error(p + ".", id="django_jobs.E401") for p in queue_problems(jobs_settings.QUEUES)
    ]
    messages += [
        Error(p + ".", id="django_jobs.E402") for p in circuit_problems(jobs_settings.CIRCUITS)
    ]
    messages += [Error(p + ".", id="django_jobs.E403") for p in unknown_circuit_problems()]
    messages += [Error(p + ".", id="django_jobs.E404") for p in queue_limit_conflicts()]
    return messages
