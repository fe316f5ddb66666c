"""Job options: what ``@task``, ``Task.using()`` and the ``django.tasks`` backend accept.

:class:`JobOptions` is a frozen dataclass with one field per option and one
validation, in ``__post_init__``, so every way of making options checks them
the same way and ``dataclasses.replace`` (``using()``) checks them again for
free, as Django's ``django/tasks/base.py`` does. :class:`~django_jobs.tasks.Task`
is a JobOptions plus the function, so a task's options are its attributes
(``send_welcome.priority``). Which call accepts an option (``@task``,
``using()``, or both) is field metadata; the accepted names are derived from
the fields (:data:`TASK_OPTIONS`, :data:`ENQUEUE_OPTIONS`).

Adding an option:

1. A field here, ``name: type = option(default, validate_name, decorator=...,
   using=...)``, and its validator: it takes the value and returns it
   (normalised if need be) or raises ``InvalidJobOptions`` naming the option.
   Defaults are not validated: keep them valid, or None for "unset".
2. Its keyword in the typed signatures: ``task()``'s overload and/or
   ``Task.using()`` (``tests/unit/test_options.py`` checks they match the
   fields); for ``django.tasks`` tasks, a field on ``backend.JobsTask`` and a
   line in ``JobsBackend._jobs_task``.
3. If it is stored on the job: a field on ``rows.NewJob``, filled in
   ``Task.encoded_job`` (the one place rows are built), and its column in the
   engine's insert.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from django_jobs.backoff import BACKOFF_NAMES, BackoffSpec
from django_jobs.codec import unstorable_text
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions, InvalidTaskError
from django_jobs.flow.rates import rate_problem
from django_jobs.scheduling.ticks import validate_schedule, validate_timezone

__all__ = ["ENQUEUE_OPTIONS", "TASK_OPTIONS", "JobOptions"]

T = TypeVar("T")

MIN_PRIORITY = -100
MAX_PRIORITY = 100
MAX_QUEUE_LENGTH = 100
MAX_KEY_LENGTH = 255


# -- validators: each returns the value (normalised) or raises InvalidJobOptions --


def validate_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidJobOptions(f"priority must be an integer, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidJobOptions(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )
    return priority


def _validate_text(option: str, value: Any, max_length: int, *, blank: bool) -> str:
    """``value`` if it is a storable string of at most ``max_length`` characters.

    ``blank``: whether a whitespace-only value counts as given (an empty one never does).
    """
    if not isinstance(value, str) or not (value if blank else value.strip()):
        raise InvalidJobOptions(f"{option} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise InvalidJobOptions(f"{option} is longer than {max_length} characters")
    reason = unstorable_text(value)
    if reason is not None:
        raise InvalidJobOptions(f"{option} {value!r} {reason}")
    return value


def validate_queue_name(queue_name: Any) -> str:
    return _validate_text("queue_name", queue_name, MAX_QUEUE_LENGTH, blank=False)


def validate_idempotency_key(key: Any) -> str:
    return _validate_text("idempotency_key", key, MAX_KEY_LENGTH, blank=True)


def validate_unique_for(period: Any) -> timedelta:
    if isinstance(period, timedelta) and period > timedelta(0):
        return period
    raise InvalidJobOptions(f"unique_for must be a positive timedelta, got {period!r}")


def validate_run_after(run_after: Any) -> datetime | timedelta | None:
    if run_after is None:
        return None
    if isinstance(run_after, timedelta):
        try:
            timezone.now() + run_after
        except OverflowError:
            raise InvalidJobOptions(
                f"run_after {run_after!r} is out of range: from now it lands outside "
                "the years 1 to 9999"
            ) from None
        return run_after
    if isinstance(run_after, datetime):
        if timezone.is_naive(run_after):
            raise InvalidJobOptions(
                f"run_after must be an aware datetime (got naive {run_after.isoformat()}); "
                "use django.utils.timezone.now() or a timedelta"
            )
        try:
            run_after.astimezone(UTC)  # how the database stores it
        except OverflowError:
            raise InvalidJobOptions(
                f"run_after {run_after.isoformat()} is out of range: in UTC it lands outside "
                "the years 1 to 9999"
            ) from None
        return run_after
    raise InvalidJobOptions(f"run_after must be a datetime or timedelta, got {run_after!r}")


def positive_number_problem(value: Any, *, integer: bool) -> str | None:
    """What is wrong with ``value`` as a positive integer (``integer``) or a
    positive finite number of seconds ("must be ..."), or None (also for None).
    The backend's OPTIONS['MAX_ATTEMPTS'] / ['TIMEOUT'] report it as is."""
    kinds = (int,) if integer else (int, float)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or value <= 0
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        kind = "a positive integer" if integer else "a positive number of seconds"
        return f"must be {kind}, got {value!r}"
    return None


def validate_max_attempts(value: Any) -> int | None:
    problem = positive_number_problem(value, integer=True)
    if problem is not None:
        raise InvalidJobOptions(f"max_attempts {problem}")
    return value  # type: ignore[no-any-return]


def validate_timeout(value: Any) -> float | None:
    problem = positive_number_problem(value, integer=False)
    if problem is not None:
        raise InvalidJobOptions(f"timeout {problem}")
    return value  # type: ignore[no-any-return]


def validate_backoff(backoff: Any) -> BackoffSpec | None:
    if backoff is None or callable(backoff) or backoff in BACKOFF_NAMES:
        return backoff  # type: ignore[no-any-return]
    raise InvalidJobOptions(
        f"backoff must be one of {', '.join(BACKOFF_NAMES)} or a callable, got {backoff!r}"
    )


def _exception_classes(name: str, value: Any) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    classes: tuple[type[BaseException], ...] = tuple(value or ())
    for item in classes:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise InvalidJobOptions(f"{name} must contain exception classes, got {item!r}")
    return classes


def validate_retry_on(value: Any) -> tuple[type[BaseException], ...]:
    return _exception_classes("retry_on", value)


def validate_discard_on(value: Any) -> tuple[type[BaseException], ...]:
    return _exception_classes("discard_on", value)


def validate_concurrency_limit(value: Any) -> int | None:
    problem = positive_number_problem(value, integer=True)
    if problem is not None:
        raise InvalidJobOptions(f"concurrency_limit {problem}")
    return value  # type: ignore[no-any-return]


def _validate_key(option: str, value: Any) -> str | Callable[..., str] | None:
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    return _validate_text(option, value, MAX_KEY_LENGTH, blank=True)


def validate_concurrency_key(value: Any) -> str | Callable[..., str] | None:
    return _validate_key("concurrency_key", value)


def validate_rate_limit_key(value: Any) -> str | Callable[..., str] | None:
    return _validate_key("rate_limit_key", value)


def validate_circuit(value: Any) -> str:
    return _validate_text("circuit", value, MAX_QUEUE_LENGTH, blank=False)


def validate_rate_limit(value: Any) -> str | None:
    problem = None if value is None else rate_problem(value)
    if problem is not None:
        raise InvalidJobOptions(f"rate_limit {problem}")
    return value  # type: ignore[no-any-return]


# -- the options -------------------------------------------------------------------


def queue_limits_problem(options: Any, queue_name: str) -> str | None:
    """Why a task's own limits cannot run in ``queue_name``, or None: a job
    waits in one lane, its task's or its queue's (DJANGO_JOBS["QUEUES"])."""
    own = [
        name
        for name in ("concurrency_limit", "rate_limit", "circuit")
        if getattr(options, name, None) is not None
    ]
    if not own or not settings.configured:
        return None
    queues = jobs_settings.QUEUES
    if not isinstance(queues, dict) or not queues.get(queue_name):
        return None
    return (
        f"{' and '.join(own)} cannot be used in queue {queue_name!r}, which has limits in "
        "DJANGO_JOBS['QUEUES']: a job waits in one lane, its task's or its queue's; "
        "put the task in another queue or drop one of the limits"
    )


def option(
    default: T,
    validate: Callable[[Any], Any] | None,
    *,
    decorator: bool = False,
    using: bool = False,
) -> T:
    """A :class:`JobOptions` field: ``validate`` checks any value but the
    default (valid, or None: unset); ``decorator`` / ``using``: ``@task(...)`` /
    ``using()`` accept it."""
    metadata = {"validate": validate, "decorator": decorator, "using": using}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """The options of a task and of one enqueue, validated when made.

    ``None`` means the ``DJANGO_JOBS`` setting's default, read at enqueue
    (``effective_*``). Building one with a bad value raises
    ``InvalidJobOptions`` naming the option; ``dataclasses.replace`` (so
    ``Task.using()``) validates the copy again.
    """

    queue_name: str | None = option(None, validate_queue_name, decorator=True, using=True)
    priority: int = option(0, validate_priority, decorator=True, using=True)
    max_attempts: int | None = option(None, validate_max_attempts, decorator=True)
    # option() returns a dataclasses.field (ruff only knows field() itself).
    backoff: BackoffSpec | None = option(None, validate_backoff, decorator=True)  # noqa: RUF009
    timeout: float | None = option(None, validate_timeout, decorator=True)  # seconds
    atomic: bool = option(False, bool, decorator=True)
    retry_on: tuple[type[BaseException], ...] = option((), validate_retry_on, decorator=True)
    discard_on: tuple[type[BaseException], ...] = option((), validate_discard_on, decorator=True)
    # A cron string or a timedelta: the task runs on its own (django_jobs.scheduling).
    schedule: str | timedelta | None = option(None, validate_schedule, decorator=True)  # noqa: RUF009
    # The IANA zone a cron schedule is read in; None: settings.TIME_ZONE.
    schedule_timezone: str | None = option(None, validate_timezone, decorator=True)
    # Flow control (docs/howto/flow-control.md): at most concurrency_limit
    # RUNNING jobs per key, at most rate_limit starts per period per key. A key
    # is a string or a callable given the job's arguments, computed at enqueue;
    # without one the task is the key.
    concurrency_limit: int | None = option(None, validate_concurrency_limit, decorator=True)
    concurrency_key: str | Callable[..., str] | None = option(  # noqa: RUF009
        None, validate_concurrency_key, decorator=True, using=True
    )
    rate_limit: str | None = option(None, validate_rate_limit, decorator=True)  # "N/s|m|h"
    rate_limit_key: str | Callable[..., str] | None = option(  # noqa: RUF009
        None, validate_rate_limit_key, decorator=True
    )
    # A circuit breaker of DJANGO_JOBS["CIRCUITS"] (checked at enqueue and by
    # the system check django_jobs.E402).
    circuit: str | None = option(None, validate_circuit, decorator=True)
    # Per enqueue only (using()): a key fixed at definition time would make
    # every enqueue after the first a no-op; a fixed datetime soon lies in the past.
    run_after: datetime | timedelta | None = option(None, validate_run_after, using=True)  # noqa: RUF009
    idempotency_key: str | None = option(None, validate_idempotency_key, using=True)
    # With idempotency_key: an enqueue returns any job with that key enqueued
    # within this period, whatever its status (not only a READY/RUNNING one).
    unique_for: timedelta | None = option(None, validate_unique_for, using=True)  # noqa: RUF009
    database: str = option(DEFAULT_DB_ALIAS, None, using=True)

    def __post_init__(self) -> None:
        for name, validate, default in _CHECKS:
            value = getattr(self, name)
            if value is not default:
                checked = validate(value)
                if checked is not value:
                    object.__setattr__(self, name, checked)
        if self.unique_for is not None and self.idempotency_key is None:
            raise InvalidJobOptions(
                "unique_for needs an idempotency_key: it is the key's uniqueness that lasts "
                "the period; give both, using(idempotency_key=..., unique_for=...)"
            )
        if (self.concurrency_key is not None or self.rate_limit_key is not None) and not (
            self.concurrency_limit or self.rate_limit
        ):
            raise InvalidJobOptions(
                "concurrency_key / rate_limit_key need a concurrency_limit or a rate_limit"
            )
        # A job waits in one lane (docs/howto/flow-control.md, "Limits that
        # compose"): both limits of a task share its key.
        if (
            self.concurrency_limit is not None
            and self.rate_limit is not None
            and self.concurrency_key != self.rate_limit_key
        ):
            raise InvalidJobOptions(
                "concurrency_limit and rate_limit apply to one lane per job, so they need the "
                "same key: give neither concurrency_key nor rate_limit_key (both limits per "
                "task), or the same one to both"
            )
        problem = queue_limits_problem(self, self.effective_queue)
        if problem is not None:
            raise InvalidJobOptions(problem)

    @property
    def effective_queue(self) -> str:
        return self.queue_name or jobs_settings.DEFAULT_QUEUE

    @property
    def effective_max_attempts(self) -> int:
        return self.max_attempts or int(jobs_settings.DEFAULT_MAX_ATTEMPTS)

    @property
    def effective_timeout(self) -> float:
        return float(self.timeout or jobs_settings.DEFAULT_TIMEOUT)

    @property
    def effective_backoff(self) -> BackoffSpec:
        spec: BackoffSpec = self.backoff or jobs_settings.DEFAULT_BACKOFF
        return spec


_FIELDS = dataclasses.fields(JobOptions)
# (name, validator, default) of each validated field, in declaration order.
_CHECKS = tuple(
    (f.name, f.metadata["validate"], f.default) for f in _FIELDS if f.metadata["validate"]
)
# Options accepted by @task(...) and by using(); anything else is a TypeError.
TASK_OPTIONS = frozenset(f.name for f in _FIELDS if f.metadata["decorator"])
ENQUEUE_OPTIONS = frozenset(f.name for f in _FIELDS if f.metadata["using"])


def reject_unknown_options(options: Mapping[str, Any]) -> None:
    """TypeError naming the keywords of ``@task(...)`` that are not options."""
    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(
            f"@task got unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid options: {', '.join(sorted(TASK_OPTIONS))}"
        )


def reject_atomic_coroutine(name: str, func: Callable[..., Any], given: Mapping[str, Any]) -> None:
    """InvalidTaskError for ``@task(atomic=True)`` on an ``async def`` (docs/howto/async.md)."""
    if given.get("atomic") and inspect.iscoroutinefunction(func):
        raise InvalidTaskError(
            f"@task(atomic=True) cannot wrap the async function {name!r}: a transaction "
            "belongs to one thread, and an async task's ORM calls run in sync_to_async "
            "threads; make it a plain def task, or keep async def without atomic and wrap "
            "its writes in one sync_to_async function under transaction.atomic"
        )
