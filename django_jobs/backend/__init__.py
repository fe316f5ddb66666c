"""A ``django.tasks`` backend on django_jobs' own tables and worker.

::

    TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"DATABASE": "default", "MAX_ATTEMPTS": 3, "TIMEOUT": 300,
                        "BACKOFF": "exponential"},
        }
    }

Tasks declared with ``from django.tasks import task`` are stored as
:class:`~django_jobs.models.Job` rows, run by ``manage.py runworker``, retried,
dead-lettered and shown in the admin exactly like ``@django_jobs.task`` tasks.
Our own options ride on Django's ``@task(**kwargs)`` forwarding::

    @task(max_attempts=5, backoff="linear", timeout=30, atomic=True)
    def charge(order_id: int) -> dict: ...

    charge.using(idempotency_key=f"charge-{order.pk}").enqueue(order.pk)
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.tasks import Task, TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from django_jobs import tasks
from django_jobs.backend.registry import register_django_task, runnable_django_task
from django_jobs.backend.results import result_for_job, result_for_new_job
from django_jobs.backoff import BackoffSpec
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.options import positive_number_problem, validate_backoff

__all__ = ["JobsBackend", "JobsTask"]

P = ParamSpec("P")
R = TypeVar("R")

if TYPE_CHECKING:
    _TaskBase = Task[..., Any]
else:
    _TaskBase = Task  # not subscriptable at runtime

SUPPORTED_VENDORS = ("postgresql", "sqlite")
OPTION_KEYS = frozenset({"DATABASE", "MAX_ATTEMPTS", "TIMEOUT", "BACKOFF"})
MAX_JOB_ID = 2**63 - 1  # bigint

# The worker finds this backend's tasks by name through the bridge (a lookup only).
tasks.register_resolver(runnable_django_task)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobsTask(_TaskBase):
    """Django's ``Task`` plus django_jobs' options (``None``: the backend's default),
    validated by :class:`~django_jobs.options.JobOptions` (``validate_task``)."""

    max_attempts: int | None = None
    backoff: BackoffSpec | None = None
    timeout: float | None = None
    atomic: bool = False
    retry_on: tuple[type[BaseException], ...] = ()
    discard_on: tuple[type[BaseException], ...] = ()
    # Per enqueue only, through using(idempotency_key=...): a key fixed at
    # definition time would make every enqueue after the first a no-op.
    idempotency_key: str | None = None
    # With idempotency_key: reuse any job with that key enqueued this recently.
    unique_for: timedelta | None = None

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | None = None,
        backend: str | None = None,
        idempotency_key: str | None = None,
        unique_for: timedelta | None = None,
    ) -> JobsTask:
        """Django's ``using()``, plus ``idempotency_key`` and ``unique_for``."""
        task = cast(
            "JobsTask",
            Task.using(
                self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
            ),
        )
        if idempotency_key is not None:
            task = dataclasses.replace(task, idempotency_key=idempotency_key)
        if unique_for is not None:
            task = dataclasses.replace(task, unique_for=unique_for)
        return task


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` when it is None (a bad value stays, to be refused)."""
    return default if value is None else value


class JobsBackend(BaseTaskBackend):
    """Store ``django.tasks`` tasks as django_jobs jobs; ``runworker`` runs them."""

    task_class = JobsTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        # Built while tasks modules are imported: no database access here, and
        # no exception either, so that ``manage.py check`` can report problems.
        super().__init__(alias, params)
        self.problems: list[str] = []
        options = self.options if isinstance(self.options, dict) else {}
        if not isinstance(self.options, dict):
            self.problems.append(f"OPTIONS must be a dict, got {type(self.options).__name__}")
        unknown = sorted(set(options) - OPTION_KEYS)
        if unknown:
            self.problems.append(
                f"unknown OPTIONS key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(sorted(OPTION_KEYS))}"
            )
        self.database: str = options.get("DATABASE", DEFAULT_DB_ALIAS)
        if not isinstance(self.database, str):
            self.problems.append(f"OPTIONS['DATABASE'] must be a string, got {self.database!r}")
            self.database = DEFAULT_DB_ALIAS
        self.default_max_attempts: int | None = self._number(options, "MAX_ATTEMPTS", integer=True)
        self.default_timeout: float | None = self._number(options, "TIMEOUT", integer=False)
        self.default_backoff: BackoffSpec | None = None
        try:
            self.default_backoff = validate_backoff(options.get("BACKOFF"))
        except InvalidJobOptions as exc:
            self.problems.append(f"OPTIONS['BACKOFF']: {exc}")

    def _number(self, options: dict[str, Any], key: str, *, integer: bool) -> Any:
        problem = positive_number_problem(options.get(key), integer=integer)
        if problem is None:
            return options.get(key)
        self.problems.append(f"OPTIONS[{key!r}]: {problem}")
        return None

    # -- validation --------------------------------------------------------

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks plus django_jobs' options; raises ``InvalidTask``."""
        super().validate_task(task)
        if isinstance(task, JobsTask):
            self._jobs_task(task)
        # Django calls this from Task.__post_init__: the definition registers the
        # task for the worker (a dict entry, no import).
        register_django_task(task)

    def _jobs_task(self, task: Task[..., Any]) -> tasks.Task[..., Any]:
        """The django_jobs Task that makes ``task``'s rows: its options, or this
        backend's defaults, validated by JobOptions (``InvalidTask`` names the
        problem). A plain ``django.tasks`` Task has none of ours: the defaults."""
        retry_on = getattr(task, "retry_on", ())
        discard_on = getattr(task, "discard_on", ())
        try:
            built = tasks.Task(
                func=task.func,
                name=task.module_path,
                takes_context=task.takes_context,
                queue_name=task.queue_name,
                priority=task.priority,
                max_attempts=_or(getattr(task, "max_attempts", None), self.default_max_attempts),
                backoff=_or(getattr(task, "backoff", None), self.default_backoff),
                timeout=_or(getattr(task, "timeout", None), self.default_timeout),
                atomic=getattr(task, "atomic", False),
                retry_on=retry_on,
                discard_on=discard_on,
                run_after=task.run_after,
                idempotency_key=getattr(task, "idempotency_key", None),
                unique_for=getattr(task, "unique_for", None),
                database=self.database,
            )
        except InvalidJobOptions as exc:
            raise InvalidTask(f"{task.module_path}: {exc}") from exc
        if not isinstance(retry_on, tuple) or not isinstance(discard_on, tuple):
            raise InvalidTask(f"{task.module_path}: retry_on and discard_on must be tuples")
        return built

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        """System-check errors for this backend; never touches the database."""
        where = f"TASKS[{self.alias!r}]"
        errors: list[CheckMessage] = [
            Error(f"{where}: {p}.", id="django_jobs.E104") for p in self.problems
        ]
        if not apps.is_installed("django_jobs"):
            errors.append(
                Error(
                    f"{where} uses django_jobs.backend.JobsBackend but 'django_jobs' is not in "
                    "INSTALLED_APPS.",
                    hint="Add 'django_jobs' to INSTALLED_APPS and run migrate.",
                    id="django_jobs.E101",
                )
            )
        if self.database not in settings.DATABASES:
            errors.append(
                Error(
                    f"{where}: OPTIONS['DATABASE'] is {self.database!r}, which is not in "
                    "DATABASES.",
                    id="django_jobs.E102",
                )
            )
        elif connections[self.database].vendor not in SUPPORTED_VENDORS:
            errors.append(
                Error(
                    f"{where}: database {self.database!r} is "
                    f"{connections[self.database].vendor}; JobsBackend supports PostgreSQL "
                    "and SQLite.",
                    id="django_jobs.E103",
                )
            )
        return errors

    def _ensure_configured(self) -> None:
        if self.problems:
            raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {'; '.join(self.problems)}")

    # -- enqueue -------------------------------------------------------------

    def enqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """Store a job in the caller's transaction; ``task_enqueued`` fires on commit."""
        # The engine imports the models; django.tasks may load this backend while
        # the app registry is still loading (a task defined in a models module).
        from django_jobs.engine import get_engine

        self._ensure_configured()
        super().validate_task(task)  # again: QUEUES may have changed since the definition
        jobs_task = self._jobs_task(task)
        register_django_task(task)
        row = jobs_task.new_job(args, kwargs)
        # The insert says whether it created the job: with an idempotency key
        # held by an active job (even one committed a moment ago by a concurrent
        # enqueue) that job comes back, and task_enqueued is not sent again.
        inserted = get_engine(self.database).insert_jobs([row])[0]
        if not inserted.created:
            return cast("TaskResult[P, R]", result_for_job(inserted.job, self.alias))
        result = result_for_new_job(inserted.job, task, self.alias)
        sender = type(self)

        def send() -> None:
            task_enqueued.send_robust(sender=sender, task_result=result)

        transaction.on_commit(send, using=self.database)
        return cast("TaskResult[P, R]", result)

    # -- results ---------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The current state of a job as a ``TaskResult``."""
        from django_jobs.models import Job  # as in enqueue: not at import time

        text = str(result_id)
        if not text.isascii() or not text.isdigit() or int(text) > MAX_JOB_ID:
            raise TaskResultDoesNotExist(f"{result_id!r} is not a django_jobs job id")
        job = Job.objects.using(self.database).filter(pk=int(text)).first()
        if job is None:
            raise TaskResultDoesNotExist(f"no job with id {text}")
        return result_for_job(job, self.alias)
