"""``@task``: turn a module-level function into an enqueueable task.

A :class:`Task` is a frozen dataclass: its options are those of
:class:`~django_jobs.options.JobOptions`, validated when the task is defined
and again by ``using()``, which returns a copy (``dataclasses.replace``), so a
task object can be shared freely and a bad task fails at import time, not at
3 a.m. in the worker. :meth:`Task.new_job` builds the row an enqueue inserts,
for ``enqueue``, ``enqueue_many``, the ``django.tasks`` backend and the outbox.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

from django.apps import apps

from django_jobs import clock
from django_jobs import options as defined
from django_jobs.backoff import BackoffSpec
from django_jobs.codec import dumps, encode, reject_oversized, reject_unstorable
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions, InvalidTaskError, UnknownTaskError
from django_jobs.flow.lanes import lane_for
from django_jobs.observability import tracing
from django_jobs.options import MAX_KEY_LENGTH, JobOptions, reject_unknown_options
from django_jobs.rows import NewJob

if TYPE_CHECKING:
    from django_jobs.models import Job
    from django_jobs.workflows.signatures import Signature

logger = logging.getLogger("django_jobs.tasks")

P = ParamSpec("P")
R = TypeVar("R")

MAX_NAME_LENGTH = 255

# Dotted path -> Task. Filled by @task (and so @subscriber and the outbox's
# delivery task) when the task's module is imported. The worker runs the names
# in this registry and those its resolvers know, and nothing else: a job row
# naming any other callable is dead-lettered, its module never imported.
registry: dict[str, Task[Any, Any]] = {}

# Names of tasks defined after Django's setup finished (a module imported by the
# URLconf or a view, say). A worker process runs only the setup, so it never
# defines them: their jobs would be dead-lettered as not registered. Enqueueing
# one logs a warning, once per name.
defined_after_setup: set[str] = set()
_warned_after_setup: set[str] = set()

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


def encode_arguments(where: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str]:
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


class RowOptions(NamedTuple):
    """The options of one enqueue call, resolved: the settings' defaults filled
    in, a ``run_after`` timedelta counted from now, the caller's trace context.
    Every row of the call shares them."""

    queue_name: str
    max_attempts: int
    timeout: float
    run_after: datetime | None
    # Job.meta as JSON: the current trace context (observability.tracing), or None.
    meta_json: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Task(JobOptions, Generic[P, R]):
    """A function that can run now (call it) or later on a worker (``enqueue``).

    Its options are the fields of :class:`~django_jobs.options.JobOptions`,
    validated when the task is made and again by each ``using()`` copy.
    """

    func: Callable[P, R]
    name: str
    # The function's first parameter is the TaskContext the worker passes
    # (django.tasks' takes_context): enqueue arguments bind after it.
    takes_context: bool = False

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function right here, like the undecorated function."""
        return self.func(*args, **kwargs)

    def using(
        self,
        *,
        queue_name: str | None = None,
        priority: int | None = None,
        run_after: datetime | timedelta | None = None,
        idempotency_key: str | None = None,
        unique_for: timedelta | None = None,
        database: str | None = None,
        concurrency_key: str | None = None,
    ) -> Task[P, R]:
        """A copy of this task with per-enqueue options changed (None: unchanged),
        validated again (``dataclasses.replace`` runs ``__post_init__``)."""
        changes: dict[str, Any] = {
            "queue_name": queue_name,
            "priority": priority,
            "run_after": run_after,
            "idempotency_key": idempotency_key,
            "unique_for": unique_for,
            "database": database,
            "concurrency_key": concurrency_key,
        }
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- rows ----------------------------------------------------------------

    def row_options(self) -> RowOptions:
        """This task's options as one enqueue call stores them."""
        run_after = self.run_after
        if isinstance(run_after, timedelta):
            run_after = clock.now() + run_after
        return RowOptions(
            self.effective_queue,
            self.effective_max_attempts,
            self.effective_timeout,
            run_after,
            # Without the [otel] extra, AVAILABLE is a constant False: one check.
            tracing.trace_meta() if tracing.AVAILABLE else None,
        )

    def new_job(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        index: int | None = None,
        options: RowOptions | None = None,
    ) -> NewJob:
        """The row that runs ``func(*args, **kwargs)``; raises what enqueue raises
        (arguments that do not bind or are not storable JSON: TypeError).

        ``index``: the item of ``enqueue_many``, named in errors and suffixed to
        the idempotency key. ``options``: :meth:`row_options`, when the caller
        resolved them once for many rows.
        """
        where, key = self.name, self.idempotency_key
        if defined_after_setup and self.name in defined_after_setup:
            warn_defined_after_setup(self.name)
        if index is not None:
            where = f"{self.name}: enqueue_many item {index}"
            if key:
                key = f"{key}:{index}"
                if len(key) > MAX_KEY_LENGTH:
                    raise InvalidJobOptions(
                        f"{where}: idempotency_key {key!r} (with its :{index} suffix) "
                        f"is longer than {MAX_KEY_LENGTH} characters"
                    )
        check_binding(where, self.func, args, kwargs, takes_context=self.takes_context)
        args_json, kwargs_json = encode_arguments(where, args, kwargs)
        return self.encoded_job(args_json, kwargs_json, key, options, (args, kwargs))

    def encoded_job(
        self,
        args_json: str,
        kwargs_json: str = "{}",
        idempotency_key: str | None = None,
        options: RowOptions | None = None,
        call: tuple[Sequence[Any], Mapping[str, Any]] | None = None,
    ) -> NewJob:
        """The row for arguments already encoded and checked by the caller (the
        outbox relay encodes each event once for all its jobs): the one place
        options become row fields. ``call``: the decoded arguments, if at hand."""
        resolved = options or self.row_options()

        def arguments() -> tuple[Sequence[Any], Mapping[str, Any]]:
            return call if call is not None else (json.loads(args_json), json.loads(kwargs_json))

        return NewJob(
            task_name=self.name,
            queue_name=resolved.queue_name,
            priority=self.priority,
            args_json=args_json,
            kwargs_json=kwargs_json,
            max_attempts=resolved.max_attempts,
            timeout=resolved.timeout,
            run_after=resolved.run_after,
            idempotency_key=idempotency_key,
            meta_json=resolved.meta_json,
            # Only with a key: the outbox relay passes its own, never this task's.
            unique_for=(
                self.unique_for.total_seconds()
                if self.unique_for is not None and idempotency_key is not None
                else None
            ),
            lane=lane_for(self, self.name, resolved.queue_name, arguments),
        )

    # -- workflows ---------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature for a workflow step: it gets the previous step's result as
        its first positional argument, then ``args`` (see ``django_jobs.chain``)."""
        # signatures imports this module (check_binding): imported when called.
        from django_jobs.workflows.signatures import Signature

        return Signature.create(self, args, kwargs, immutable=False)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: the step runs with exactly ``args`` and ``kwargs``."""
        # signatures imports this module (check_binding): imported when called.
        from django_jobs.workflows.signatures import Signature

        return Signature.create(self, args, kwargs, immutable=True)

    # -- enqueueing ------------------------------------------------------

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job for this task in the caller's current transaction.

        Returns the saved :class:`~django_jobs.models.Job`; with an
        ``idempotency_key`` already READY or RUNNING, returns that job instead
        (with ``unique_for``, also one enqueued within that period, whatever
        its status).
        """
        # The engine imports the models: not while the app registry loads (tasks.py).
        from django_jobs.engine import get_engine

        row = self.new_job(args, kwargs)
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
        options = self.row_options()
        for index, call in enumerate(calls):
            if isinstance(call, Mapping):
                rows.append(self.new_job((), call, index=index, options=options))
            elif isinstance(call, list | tuple):
                rows.append(self.new_job(call, {}, index=index, options=options))
            else:
                raise TypeError(
                    f"{self.name}: enqueue_many item {index} must be a tuple/list of positional "
                    f"arguments or a dict of keyword arguments, got {type(call).__name__}"
                )
        if not rows:
            return []
        return [inserted.job for inserted in get_engine(self.database).insert_jobs(rows)]


def _make_task(func: Callable[P, R], options: dict[str, Any]) -> Task[P, R]:
    name = dotted_path(func)
    defined.reject_atomic_coroutine(name, func, options)
    _signature(func)  # computed now, once, for check_binding at each enqueue
    created: Task[P, R] = Task(func=func, name=name, **options)
    registry[name] = created
    note_definition(name)
    return created


def note_definition(name: str) -> None:
    """Record a task defined once Django's setup has finished (see ``defined_after_setup``)."""
    if apps.ready:
        defined_after_setup.add(name)
    else:
        defined_after_setup.discard(name)


def warn_defined_after_setup(name: str) -> None:
    """Warn, once per task, that workers will not know the task ``name``."""
    if name in _warned_after_setup:
        return
    _warned_after_setup.add(name)
    module = name.rpartition(".")[0]
    logger.warning(
        "task %s is defined in %s, which is imported after Django's setup (by a URLconf or "
        "view?): workers do not import it and will dead-letter its jobs as not registered. "
        "Define the task in an installed app's tasks.py or add %r to "
        "DJANGO_JOBS['TASK_MODULES'].",
        name,
        module,
        module,
    )


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
    schedule: str | timedelta | None = ...,
    schedule_timezone: str | None = ...,
    concurrency_limit: int | None = ...,
    concurrency_key: str | Callable[..., str] | None = ...,
    rate_limit: str | None = ...,
    rate_limit_key: str | Callable[..., str] | None = ...,
    circuit: str | None = ...,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(func: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Declare a task: ``@task`` or ``@task(queue_name=..., priority=..., ...)``
    (the options of :class:`~django_jobs.options.JobOptions` marked for ``@task``)."""
    if func is not None:
        if options:
            raise TypeError("use @task(...) with keyword options, or bare @task")
        return _make_task(func, {})
    reject_unknown_options(options)

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
