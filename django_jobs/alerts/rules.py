"""``DJANGO_JOBS["ALERTS"]``: rule definitions, checked.

Each problem is one sentence naming the rule, with a check id (E3xx);
``manage.py check`` and runworker's start-up checks report them, and the
evaluator only ever sees valid rules. Schema (docs/howto/alerts.md)::

    "ALERTS": {
        "payments-failing": {"kind": "failure_rate", "task": "shop.tasks.charge",
                             "threshold": 0.2, "window": 300, "min_jobs": 10},
        "payments-backlog": {"kind": "oldest_ready_age", "queue": "payments",
                             "threshold": 120, "for": 60},
        "dead-letters": {"kind": "dead_letters", "window": 3600},
        "workers-down": {"kind": "stale_workers"},
        "outbox-stuck": {"kind": "outbox_pending_age", "threshold": 300,
                         "severity": "critical"},
    }

A rule fires when its value is at or above ``threshold`` (for ``for``
seconds, if given) and resolves when it is below again, or has no data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from django_jobs.conf import jobs_settings

MAX_NAME_LENGTH = 200  # AlertState.rule
MAX_TASK_LENGTH = 255  # Job.task_name
MAX_QUEUE_LENGTH = 100  # Job.queue_name
MAX_SEVERITY_LENGTH = 40

# Keys every rule may have.
COMMON_KEYS = frozenset({"kind", "threshold", "for", "severity"})


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """What a rule kind measures and which keys it takes."""

    name: str
    measures: str  # the value, for messages ("failure rate")
    unit: str  # "ratio", "seconds" or "count"
    keys: frozenset[str]  # besides COMMON_KEYS
    default_threshold: float | None  # None: "threshold" is required
    default_window: float | None = None  # for kinds with a "window"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        # FAILED / (SUCCESSFUL + FAILED) among the jobs that finished in the window.
        Kind(
            "failure_rate",
            "failure rate",
            "ratio",
            frozenset({"task", "queue", "window", "min_jobs"}),
            None,
            300.0,
        ),
        # Seconds the job due longest (READY, run_after passed) has waited.
        Kind("oldest_ready_age", "oldest ready age", "seconds", frozenset({"queue"}), None),
        # Dead letters created in the window.
        Kind(
            "dead_letters",
            "new dead letters",
            "count",
            frozenset({"task", "queue", "window"}),
            1.0,
            300.0,
        ),
        # Workers whose heartbeat is older than LEASE_SECONDS (presumed dead).
        Kind("stale_workers", "stale workers", "count", frozenset(), 1.0),
        # Seconds the oldest PENDING outbox event has waited for the relay.
        Kind("outbox_pending_age", "oldest pending outbox event age", "seconds", frozenset(), None),
    )
}
DEFAULT_MIN_JOBS = 10
DEFAULT_SEVERITY = "warning"


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One valid alert rule."""

    name: str
    kind: str
    threshold: float  # fires at value >= threshold
    window: float | None = None  # seconds (failure_rate, dead_letters)
    task: str | None = None
    queue: str | None = None
    min_jobs: int = DEFAULT_MIN_JOBS  # failure_rate: no verdict below this many jobs
    for_seconds: float = 0.0  # the condition must hold this long before firing
    severity: str = DEFAULT_SEVERITY

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    def describe(self) -> str:
        """``failure rate of task x in queue y over 300s``."""
        parts = [self.spec.measures]
        if self.task:
            parts.append(f"of task {self.task}")
        if self.queue:
            parts.append(f"in queue {self.queue}")
        if self.window is not None:
            parts.append(f"over {self.window:g}s")
        return " ".join(parts)

    def format_value(self, value: float | None) -> str:
        if value is None:
            return "no data"
        if self.spec.unit == "ratio":
            return f"{value:.0%}"
        if self.spec.unit == "seconds":
            return f"{value:.0f}s"
        return f"{value:g}"


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One configuration error: the check id and a sentence naming the rule."""

    id: str
    message: str


class _Invalid(Exception):
    def __init__(self, check_id: str, message: str) -> None:
        super().__init__(message)
        self.check_id = check_id


def _number(name: str, value: Any, check_id: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        kind = "an integer" if integer else "a number"
        raise _Invalid(check_id, f"{name!r} must be {kind}, got {value!r}")
    if integer and not isinstance(value, int):
        raise _Invalid(check_id, f"{name!r} must be an integer, got {value!r}")
    return float(value)


def _text(name: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise _Invalid(
            "django_jobs.E306",
            f"{name!r} must be a non-empty string of at most {max_length} characters, "
            f"got {value!r}",
        )
    return value


def parse_rule(name: Any, spec: Any) -> Rule:
    """One rule from its settings entry; raises ``_Invalid`` naming the problem."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise _Invalid(
            "django_jobs.E301", f"the name must be a string of 1 to {MAX_NAME_LENGTH} characters"
        )
    if not isinstance(spec, Mapping):
        raise _Invalid("django_jobs.E301", f"must be a dict, got {type(spec).__name__}")
    kind = KINDS.get(spec.get("kind"))  # type: ignore[arg-type]
    if kind is None:
        raise _Invalid(
            "django_jobs.E302",
            f"unknown kind {spec.get('kind')!r}; valid: {', '.join(KINDS)}",
        )
    allowed = COMMON_KEYS | kind.keys
    unknown = sorted(str(k) for k in set(spec) - allowed)
    if unknown:
        raise _Invalid(
            "django_jobs.E303",
            f"unknown key(s) {', '.join(map(repr, unknown))} for kind {kind.name!r}; "
            f"valid: {', '.join(sorted(allowed))}",
        )
    if "threshold" not in spec and kind.default_threshold is None:
        raise _Invalid("django_jobs.E304", f"'threshold' is required for kind {kind.name!r}")
    threshold = _number(
        "threshold", spec.get("threshold", kind.default_threshold), "django_jobs.E304"
    )
    if threshold <= 0:
        raise _Invalid("django_jobs.E304", f"'threshold' must be more than 0, got {threshold:g}")
    if kind.unit == "ratio" and threshold > 1:
        raise _Invalid(
            "django_jobs.E304",
            f"'threshold' is a fraction of jobs for kind {kind.name!r} (0.2 = 20%), "
            f"at most 1, got {threshold:g}",
        )
    window = None
    if "window" in kind.keys:
        window = _number("window", spec.get("window", kind.default_window), "django_jobs.E305")
        if window <= 0:
            raise _Invalid(
                "django_jobs.E305", f"'window' must be more than 0 seconds, got {window:g}"
            )
    for_seconds = _number("for", spec.get("for", 0), "django_jobs.E305")
    if for_seconds < 0:
        raise _Invalid("django_jobs.E305", f"'for' must be 0 seconds or more, got {for_seconds:g}")
    min_jobs = int(
        _number(
            "min_jobs", spec.get("min_jobs", DEFAULT_MIN_JOBS), "django_jobs.E305", integer=True
        )
    )
    if min_jobs < 1:
        raise _Invalid("django_jobs.E305", f"'min_jobs' must be 1 or more, got {min_jobs}")
    task = spec.get("task")
    queue = spec.get("queue")
    return Rule(
        name=name,
        kind=kind.name,
        threshold=threshold,
        window=window,
        task=None if task is None else _text("task", task, MAX_TASK_LENGTH),
        queue=None if queue is None else _text("queue", queue, MAX_QUEUE_LENGTH),
        min_jobs=min_jobs,
        for_seconds=for_seconds,
        severity=_text("severity", spec.get("severity", DEFAULT_SEVERITY), MAX_SEVERITY_LENGTH),
    )


def parse_rules(value: Any) -> tuple[list[Rule], list[Problem]]:
    """The valid rules of an ``ALERTS`` setting, and a problem per invalid one."""
    if value is None:
        return [], []
    if not isinstance(value, Mapping):
        return [], [
            Problem(
                "django_jobs.E301",
                "DJANGO_JOBS['ALERTS'] must be a dict of rule name -> rule, "
                f"got {type(value).__name__}",
            )
        ]
    rules: list[Rule] = []
    problems: list[Problem] = []
    for name, spec in value.items():
        try:
            rules.append(parse_rule(name, spec))
        except _Invalid as exc:
            problems.append(Problem(exc.check_id, f"DJANGO_JOBS['ALERTS'][{name!r}]: {exc}"))
    return rules, problems


def load_rules() -> tuple[list[Rule], list[Problem]]:
    """``parse_rules(DJANGO_JOBS["ALERTS"])``."""
    return parse_rules(jobs_settings.ALERTS)


def interval_problems() -> list[Problem]:
    """ALERT_INTERVAL and ALERT_MAIL_ADMINS checked."""
    problems = []
    interval = jobs_settings.ALERT_INTERVAL
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval <= 0
    ):
        problems.append(
            Problem(
                "django_jobs.E307",
                f"DJANGO_JOBS['ALERT_INTERVAL'] must be a number of seconds more than 0, "
                f"or None, got {interval!r}",
            )
        )
    if not isinstance(jobs_settings.ALERT_MAIL_ADMINS, bool):
        problems.append(
            Problem(
                "django_jobs.E307",
                f"DJANGO_JOBS['ALERT_MAIL_ADMINS'] must be True or False, "
                f"got {jobs_settings.ALERT_MAIL_ADMINS!r}",
            )
        )
    return problems
