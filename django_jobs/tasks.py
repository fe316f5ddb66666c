"""``@task``: turn a module-level function into an enqueueable task.

A :class:`Task` is a frozen dataclass. ``using()`` returns a copy with other
options (``dataclasses.replace``), so a task object can be shared freely.
Everything is validated when the task is defined or when options are given,
so a bad task fails at import time, not at 3 a.m. in the worker.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from django_jobs.backoff import BACKOFF_NAMES, BackoffSpec
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions, InvalidTaskError, UnknownTaskError

if TYPE_CHECKING:
    from django_jobs.models import Job

P = ParamSpec("P")
R = TypeVar("R")

MIN_PRIORITY = -100
MAX_PRIORITY = 100
MAX_NAME_LENGTH = 255
MAX_QUEUE_LENGTH = 100
MAX_KEY_LENGTH = 255

# Dotted path -> Task. Filled by @task (and so @subscriber and the outbox's
# delivery task) when the task's module is imported. The worker runs the names
# in this registry and in django_task_registry, and nothing else: a job row
# naming any other callable is dead-lettered, its module never imported.
registry: dict[str, Task[Any, Any]] = {}
# Dotted path -> ``django.tasks`` Task of a django_jobs backend, filled by
# JobsBackend.validate_task when the task is defined.
django_task_registry: dict[str, Any] = {}

NOT_REGISTERED_HINT = (
    "only functions decorated with @django_jobs.task or @subscriber, and django.tasks "
    "tasks of a django_jobs backend, run on the worker; define the task in an installed "
    "app's tasks.py or list its module in DJANGO_JOBS['TASK_MODULES']"
)


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """One row to insert, already validated and JSON-encoded."""

    task_name: str
    queue_name: str
    priority: int
    args_json: str
    kwargs_json: str
    max_attempts: int
    timeout: float
    run_after: datetime | None  # None: the database's now()
    idempotency_key: str | None

    def as_model(self, database: str | None = None, **fields: Any) -> Job:
        """A Job instance with this row's values plus ``fields`` (id, timestamps).

        With ``database``, marked as stored there (``_state.adding`` False).
        """
        from django_jobs.engine.instances import builder
        from django_jobs.models import Job

        return builder(Job, database=database)(self.model_fields(**fields))

    def model_fields(self, **fields: Any) -> dict[str, Any]:
        """This row's Job field values (decoded) plus ``fields``."""
        return {
            "task_name": self.task_name,
            "queue_name": self.queue_name,
            "priority": self.priority,
            "args": [] if self.args_json == "[]" else json.loads(self.args_json),
            "kwargs": {} if self.kwargs_json == "{}" else json.loads(self.kwargs_json),
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "idempotency_key": self.idempotency_key,
            "requested_run_after": self.run_after,
            **fields,
        }


# One encoder for every enqueue: json.dumps() with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _json_dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from exc


# An escaped NUL (\u0000) not preceded by an escaping backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def reject_nul(encoded: str, what: str) -> str:
    """``encoded`` unchanged, or TypeError if it holds a NUL character.

    JSON allows ``\u0000``; PostgreSQL's jsonb rejects it, so the row (or a
    whole batch of completions) would fail to write.
    """
    if "\\u0000" in encoded and _ESCAPED_NUL.search(encoded):
        raise TypeError(f"{what} contains a NUL character (\\x00), which PostgreSQL cannot store")
    return encoded


def _encode_arguments(
    task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[str, str]:
    # Encode each argument on its own first only when the whole fails, so the
    # error names the culprit without slowing the common path.
    try:
        args_json = _encode(list(args)) if args else "[]"
        kwargs_json = _encode(dict(kwargs)) if kwargs else "{}"
    except (TypeError, ValueError):
        for index, value in enumerate(args):
            _json_dumps(value, f"{task_name}: positional argument {index} ({type(value).__name__})")
        for key, value in kwargs.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{task_name}: keyword argument names must be strings, got {key!r}"
                ) from None
            _json_dumps(value, f"{task_name}: keyword argument {key!r} ({type(value).__name__})")
        raise
    what = f"{task_name}: an argument"
    return reject_nul(args_json, what), reject_nul(kwargs_json, what)


def validate_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidJobOptions(f"priority must be an integer, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidJobOptions(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )
    return priority


def validate_queue_name(queue_name: Any) -> str:
    if not isinstance(queue_name, str) or not queue_name.strip():
        raise InvalidJobOptions(f"queue_name must be a non-empty string, got {queue_name!r}")
    if len(queue_name) > MAX_QUEUE_LENGTH:
        raise InvalidJobOptions(f"queue_name is longer than {MAX_QUEUE_LENGTH} characters")
    return queue_name


def validate_run_after(run_after: Any) -> datetime | timedelta | None:
    if run_after is None or isinstance(run_after, timedelta):
        return run_after
    if isinstance(run_after, datetime):
        if timezone.is_naive(run_after):
            raise InvalidJobOptions(
                f"run_after must be an aware datetime (got naive {run_after.isoformat()}); "
                "use django.utils.timezone.now() or a timedelta"
            )
        return run_after
    raise InvalidJobOptions(f"run_after must be a datetime or timedelta, got {run_after!r}")


def _validate_positive_number(name: str, value: Any, *, integer: bool) -> Any:
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
        raise InvalidJobOptions(f"{name} must be {kind}, got {value!r}")
    return value


def _validate_backoff(backoff: Any) -> BackoffSpec | None:
    if backoff is None or callable(backoff) or backoff in BACKOFF_NAMES:
        return backoff  # type: ignore[no-any-return]
    raise InvalidJobOptions(
        f"backoff must be one of {', '.join(BACKOFF_NAMES)} or a callable, got {backoff!r}"
    )


def _validate_exception_classes(name: str, value: Any) -> tuple[type[BaseException], ...]:
    if isinstance(value, type):
        value = (value,)
    classes: tuple[type[BaseException], ...] = tuple(value or ())
    for item in classes:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise InvalidJobOptions(f"{name} must contain exception classes, got {item!r}")
    return classes


def dotted_path(func: Callable[..., Any]) -> str:
    """The import path of a module-level function, or InvalidTaskError."""
    if not inspect.isfunction(func) and not inspect.iscoroutinefunction(func):
        raise InvalidTaskError(f"@task needs a plain function, got {func!r}")
    module, qualname = func.__module__, func.__qualname__
    if func.__name__ == "<lambda>":
        raise InvalidTaskError("@task cannot wrap a lambda: the worker imports tasks by name")
    if "<locals>" in qualname:
        raise InvalidTaskError(
            f"@task cannot wrap the nested function {qualname!r}: define it at module level "
            "so the worker can import it"
        )
    if "." in qualname:
        raise InvalidTaskError(
            f"@task cannot wrap the method {qualname!r}: define a module-level function "
            "so the worker can import it"
        )
    if module == "__main__":
        raise InvalidTaskError(
            f"@task on {qualname!r} in __main__: the worker cannot import it; move it to a module"
        )
    path = f"{module}.{qualname}"
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidTaskError(f"task path {path!r} is longer than {MAX_NAME_LENGTH} characters")
    return path


# Options accepted by @task and by using(); anything else is a TypeError.
TASK_OPTIONS = frozenset(
    {
        "queue_name",
        "priority",
        "max_attempts",
        "backoff",
        "timeout",
        "atomic",
        "retry_on",
        "discard_on",
    }
)
ENQUEUE_OPTIONS = frozenset({"queue_name", "priority", "run_after", "idempotency_key", "database"})


@dataclasses.dataclass(frozen=True, slots=True)
class Task(Generic[P, R]):
    """A function that can run now (call it) or later on a worker (``enqueue``)."""

    func: Callable[P, R]
    name: str
    queue_name: str | None = None  # None: DJANGO_JOBS["DEFAULT_QUEUE"]
    priority: int = 0
    max_attempts: int | None = None  # None: DJANGO_JOBS["DEFAULT_MAX_ATTEMPTS"]
    backoff: BackoffSpec | None = None  # None: DJANGO_JOBS["DEFAULT_BACKOFF"]
    timeout: float | None = None  # None: DJANGO_JOBS["DEFAULT_TIMEOUT"]
    atomic: bool = False
    retry_on: tuple[type[BaseException], ...] = ()
    discard_on: tuple[type[BaseException], ...] = ()
    run_after: datetime | timedelta | None = None
    idempotency_key: str | None = None
    database: str = DEFAULT_DB_ALIAS

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function right here, like the undecorated function."""
        return self.func(*args, **kwargs)

    # -- options ---------------------------------------------------------

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

    def using(
        self,
        *,
        queue_name: str | None = None,
        priority: int | None = None,
        run_after: datetime | timedelta | None = None,
        idempotency_key: str | None = None,
        database: str | None = None,
    ) -> Task[P, R]:
        """A copy of this task with per-enqueue options changed."""
        changes: dict[str, Any] = {}
        if queue_name is not None:
            changes["queue_name"] = validate_queue_name(queue_name)
        if priority is not None:
            changes["priority"] = validate_priority(priority)
        if run_after is not None:
            changes["run_after"] = validate_run_after(run_after)
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not idempotency_key:
                raise InvalidJobOptions(
                    f"idempotency_key must be a non-empty string, got {idempotency_key!r}"
                )
            if len(idempotency_key) > MAX_KEY_LENGTH:
                raise InvalidJobOptions(
                    f"idempotency_key is longer than {MAX_KEY_LENGTH} characters"
                )
            changes["idempotency_key"] = idempotency_key
        if database is not None:
            changes["database"] = database
        return dataclasses.replace(self, **changes)

    # -- enqueueing ------------------------------------------------------

    def _resolve_run_after(self) -> datetime | None:
        if isinstance(self.run_after, timedelta):
            return timezone.now() + self.run_after
        return self.run_after

    def _row_options(self) -> dict[str, Any]:
        """The NewJob fields every job of one enqueue call shares."""
        return {
            "task_name": self.name,
            "queue_name": self.effective_queue,
            "priority": self.priority,
            "max_attempts": self.effective_max_attempts,
            "timeout": self.effective_timeout,
            "run_after": self._resolve_run_after(),
        }

    def _new_job(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        key: str | None,
        options: dict[str, Any] | None = None,
    ) -> NewJob:
        args_json, kwargs_json = _encode_arguments(self.name, args, kwargs)
        return NewJob(
            args_json=args_json,
            kwargs_json=kwargs_json,
            idempotency_key=key,
            **(options or self._row_options()),
        )

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job for this task in the caller's current transaction.

        Returns the saved :class:`~django_jobs.models.Job`; with an
        ``idempotency_key`` already READY or RUNNING, returns that job instead.
        """
        from django_jobs.engine import get_engine

        row = self._new_job(args, kwargs, self.idempotency_key)
        return get_engine(self.database).insert_jobs([row])[0].job

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[Job]:
        """Enqueue one job per item in one round trip.

        A tuple or list item is positional arguments; a dict is keyword
        arguments. With ``using(idempotency_key=...)`` the key is suffixed with
        the item's index (``key:0``, ``key:1``...), so a repeated call is a no-op.
        """
        from django_jobs.engine import get_engine

        rows: list[NewJob] = []
        options = self._row_options()
        for index, call in enumerate(calls):
            key = f"{self.idempotency_key}:{index}" if self.idempotency_key else None
            if isinstance(call, Mapping):
                rows.append(self._new_job((), call, key, options))
            elif isinstance(call, list | tuple):
                rows.append(self._new_job(call, {}, key, options))
            else:
                raise TypeError(
                    f"{self.name}: enqueue_many item {index} must be a tuple/list of positional "
                    f"arguments or a dict of keyword arguments, got {type(call).__name__}"
                )
        if not rows:
            return []
        return [inserted.job for inserted in get_engine(self.database).insert_jobs(rows)]


def _make_task(func: Callable[P, R], options: dict[str, Any]) -> Task[P, R]:
    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(
            f"@task got unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid options: {', '.join(sorted(TASK_OPTIONS))}"
        )
    name = dotted_path(func)
    queue_name = options.get("queue_name")
    created: Task[P, R] = Task(
        func=func,
        name=name,
        queue_name=validate_queue_name(queue_name) if queue_name is not None else None,
        priority=validate_priority(options.get("priority", 0)),
        max_attempts=_validate_positive_number(
            "max_attempts", options.get("max_attempts"), integer=True
        ),
        backoff=_validate_backoff(options.get("backoff")),
        timeout=_validate_positive_number("timeout", options.get("timeout"), integer=False),
        atomic=bool(options.get("atomic", False)),
        retry_on=_validate_exception_classes("retry_on", options.get("retry_on")),
        discard_on=_validate_exception_classes("discard_on", options.get("discard_on")),
    )
    registry[name] = created
    return created


@overload
def task(func: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    queue_name: str | None = ...,
    priority: int = ...,
    max_attempts: int | None = ...,
    backoff: BackoffSpec | None = ...,
    timeout: float | None = ...,
    atomic: bool = ...,
    retry_on: Iterable[type[BaseException]] | type[BaseException] = ...,
    discard_on: Iterable[type[BaseException]] | type[BaseException] = ...,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(func: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(queue_name=..., priority=..., ...)``."""
    if func is not None:
        if options:
            raise TypeError("use @task(...) with keyword options, or bare @task")
        return _make_task(func, {})

    unknown = set(options) - TASK_OPTIONS
    if unknown:
        raise TypeError(
            f"@task got unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid options: {', '.join(sorted(TASK_OPTIONS))}"
        )

    def decorator(f: Callable[P, R]) -> Task[P, R]:
        return _make_task(f, options)

    return decorator


def register_django_task(django_task: Any) -> None:
    """Let the worker run ``django_task`` (a ``django.tasks`` Task) by its dotted path.

    Called when a task is defined, so it must stay cheap: no import, no query.
    Copies made by ``using()`` share the function and keep the first entry; a
    redefinition (module reloaded) has a new function and replaces it.
    """
    name = django_task.module_path
    found = django_task_registry.get(name)
    if found is None or found.func is not django_task.func:
        django_task_registry[name] = django_task


def resolve_task(name: str) -> Any:
    """The registered task at dotted path ``name``: a :class:`Task` or a
    ``django.tasks`` Task.

    A registry lookup only: nothing is imported or looked up by attribute, so a
    job row cannot make the worker run an arbitrary callable (``os.system``).
    Raises UnknownTaskError for any other name.
    """
    found = registry.get(name) or django_task_registry.get(name)
    if found is None:
        raise UnknownTaskError(f"task {name!r} is not registered: {NOT_REGISTERED_HINT}")
    return found
