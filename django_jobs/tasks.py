"""``@task``: turn a module-level function into an enqueueable task.

A :class:`Task` is a frozen dataclass. ``using()`` returns a copy with other
options (``dataclasses.replace``), so a task object can be shared freely.
Everything is validated when the task is defined or when options are given,
so a bad task fails at import time, not at 3 a.m. in the worker.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from django_jobs.backoff import BACKOFF_NAMES, BackoffSpec
from django_jobs.codec import dumps, encode, reject_oversized, reject_unstorable, unstorable_text
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions, InvalidTaskError, UnknownTaskError
from django_jobs.rows import NewJob

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
# in this registry and those its resolvers know, and nothing else: a job row
# naming any other callable is dead-lettered, its module never imported.
registry: dict[str, Task[Any, Any]] = {}

NOT_REGISTERED_HINT = (
    "only functions decorated with @django_jobs.task or @subscriber, and django.tasks "
    "tasks of a django_jobs backend, run on the worker; define the task in an installed "
    "app's tasks.py or list its module in DJANGO_JOBS['TASK_MODULES']"
)


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    """``func``'s signature, computed once (tasks are module-level functions)."""
    return inspect.signature(func)


# func -> call shapes (number of positional arguments, then keyword names) that
# bind. Whether a call binds depends on its shape alone, and a set lookup costs
# a sixth of Signature.bind (0.5 us, not 3). Capped for functions taking **kwargs.
_binding_shapes: dict[Callable[..., Any], set[int | tuple[Any, ...]]] = {}
_MAX_SHAPES = 64


def check_binding(
    where: str,
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    takes_context: bool = False,
) -> None:
    """TypeError unless ``func(*args, **kwargs)`` would bind, so that a call
    that can never run fails at enqueue, not max_attempts times in the worker.

    With ``takes_context`` (django.tasks), the first parameter is the context
    the worker passes.
    """
    shape = (len(args), *kwargs) if kwargs else len(args)
    known = _binding_shapes.get(func)
    if known is not None and shape in known:
        return
    sig = _signature(func)
    try:
        if takes_context:
            sig.bind(None, *args, **kwargs)
        else:
            sig.bind(*args, **kwargs)
    except TypeError as exc:
        params = list(sig.parameters.values())[1 if takes_context else 0 :]
        # Without annotations: under `from __future__ import annotations` they are quoted strings.
        shown = sig.replace(
            parameters=[p.replace(annotation=p.empty) for p in params],
            return_annotation=sig.empty,
        )
        raise TypeError(
            f"{where}: the arguments do not match {func.__name__}{shown}: {exc}"
        ) from None
    if known is None:
        known = _binding_shapes.setdefault(func, set())
    if len(known) < _MAX_SHAPES:
        known.add(shape)


def _encode_arguments(
    where: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[str, str]:
    """args and kwargs as JSON; ``where`` (the task name) starts error messages."""
    # Encode each argument on its own first only when the whole fails, so the
    # error names the culprit without slowing the common path.
    try:
        args_json = encode(list(args)) if args else "[]"
        kwargs_json = encode(dict(kwargs)) if kwargs else "{}"
    except (TypeError, ValueError):
        for index, value in enumerate(args):
            dumps(value, f"{where}: positional argument {index} ({type(value).__name__})")
        for key, value in kwargs.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: keyword argument names must be strings, got {key!r}"
                ) from None
            dumps(value, f"{where}: keyword argument {key!r} ({type(value).__name__})")
        raise
    reject_oversized(
        len(args_json) + len(kwargs_json),
        jobs_settings.MAX_PAYLOAD_BYTES,
        f"{where}: arguments are",
    )
    try:
        reject_unstorable(args_json, f"{where}: an argument")
        reject_unstorable(kwargs_json, f"{where}: an argument")
    except TypeError:
        for index, value in enumerate(args):
            reject_unstorable(encode(value), f"{where}: positional argument {index}")
        for key, value in kwargs.items():
            reject_unstorable(encode({key: value}), f"{where}: keyword argument {key!r}")
        raise
    return args_json, kwargs_json


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
    reason = unstorable_text(queue_name)
    if reason is not None:
        raise InvalidJobOptions(f"queue_name {queue_name!r} {reason}")
    return queue_name


def validate_idempotency_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidJobOptions(f"idempotency_key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidJobOptions(f"idempotency_key is longer than {MAX_KEY_LENGTH} characters")
    reason = unstorable_text(key)
    if reason is not None:
        raise InvalidJobOptions(f"idempotency_key {key!r} {reason}")
    return key


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
            changes["idempotency_key"] = validate_idempotency_key(idempotency_key)
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
        index: int | None = None,
    ) -> NewJob:
        where = self.name if index is None else f"{self.name}: enqueue_many item {index}"
        check_binding(where, self.func, args, kwargs)
        args_json, kwargs_json = _encode_arguments(where, args, kwargs)
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
        # The engine imports the models: not while the app registry loads (tasks.py).
        from django_jobs.engine import get_engine

        row = self._new_job(args, kwargs, self.idempotency_key)
        return get_engine(self.database).insert_jobs([row])[0].job

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[Job]:
        """Enqueue one job per item in one round trip.

        A tuple or list item is positional arguments; a dict is keyword
        arguments. With ``using(idempotency_key=...)`` the key is suffixed with
        the item's index (``key:0``, ``key:1``...), so a repeated call is a no-op.
        """
        # The engine imports the models: not while the app registry loads (tasks.py).
        from django_jobs.engine import get_engine

        rows: list[NewJob] = []
        options = self._row_options()
        for index, call in enumerate(calls):
            key = f"{self.idempotency_key}:{index}" if self.idempotency_key else None
            if key is not None and len(key) > MAX_KEY_LENGTH:
                raise InvalidJobOptions(
                    f"{self.name}: enqueue_many item {index}: idempotency_key {key!r} "
                    f"(with its :{index} suffix) is longer than {MAX_KEY_LENGTH} characters"
                )
            if isinstance(call, Mapping):
                rows.append(self._new_job((), call, key, options, index))
            elif isinstance(call, list | tuple):
                rows.append(self._new_job(call, {}, key, options, index))
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
    _signature(func)  # computed now, once, for check_binding at each enqueue
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


# Lookups of tasks defined by other means, asked in order when ``registry``
# has no entry: JobsBackend registers one for its ``django.tasks`` tasks.
Resolver = Callable[[str], Task[Any, Any] | None]
resolvers: list[Resolver] = []


def register_resolver(resolver: Resolver) -> None:
    """Let :func:`resolve_task` find tasks that ``resolver`` knows.

    ``resolver(name)`` returns the Task that runs the task at dotted path
    ``name``, or None; it must be a lookup only (no import, no query).
    Registering the same resolver twice changes nothing.
    """
    if resolver not in resolvers:
        resolvers.append(resolver)


def not_registered(name: str) -> UnknownTaskError:
    """The error for a job naming ``name``, which no task is registered at."""
    return UnknownTaskError(f"task {name!r} is not registered: {NOT_REGISTERED_HINT}")


def find_task(name: str) -> Task[Any, Any] | None:
    """The Task that runs the registered task at dotted path ``name``, or None."""
    found = registry.get(name)
    if found is None:
        for resolver in resolvers:
            found = resolver(name)
            if found is not None:
                break
    return found


def resolve_task(name: str) -> Task[Any, Any]:
    """The Task that runs the registered task at dotted path ``name``
    (for a ``django.tasks`` Task, the backend's bridge to it).

    A registry lookup only: nothing is imported or looked up by attribute, so a
    job row cannot make the worker run an arbitrary callable (``os.system``).
    Raises UnknownTaskError for any other name.
    """
    found = registry.get(name)  # the worker's path for every job: one dict lookup
    if found is None:
        found = find_task(name)
        if found is None:
            raise not_registered(name)
    return found
