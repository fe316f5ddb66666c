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
from collections.abc import Callable
from datetime import datetime
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

from django_jobs.backend.registry import register_django_task, runnable_django_task
from django_jobs.backend.results import result_for_job, result_for_new_job
from django_jobs.backoff import BackoffSpec
from django_jobs.conf import jobs_settings
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.rows import NewJob
from django_jobs.tasks import (
    _encode_arguments,
    _validate_backoff,
    _validate_exception_classes,
    _validate_positive_number,
    check_binding,
    register_resolver,
    validate_idempotency_key,
    validate_run_after,
)

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
register_resolver(runnable_django_task)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobsTask(_TaskBase):
    """Django's ``Task`` plus django_jobs' options (``None``: the backend's default)."""

    max_attempts: int | None = None
    backoff: BackoffSpec | None = None
    timeout: float | None = None
    atomic: bool = False
    retry_on: tuple[type[BaseException], ...] = ()
    discard_on: tuple[type[BaseException], ...] = ()
    # Per enqueue only, through using(idempotency_key=...): a key fixed at
    # definition time would make every enqueue after the first a no-op.
    idempotency_key: str | None = None

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | None = None,
        backend: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobsTask:
        """Django's ``using()``, plus ``idempotency_key``."""
        task = cast(
            "JobsTask",
            Task.using(
                self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
            ),
        )
        if idempotency_key is not None:
            task = dataclasses.replace(task, idempotency_key=idempotency_key)
        return task


def _validate_key(key: Any) -> str | None:
    return None if key is None else validate_idempotency_key(key)


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
        self.default_max_attempts: int | None = self._option(
            options, "MAX_ATTEMPTS", lambda v: _validate_positive_number("v", v, integer=True)
        )
        self.default_timeout: float | None = self._option(
            options, "TIMEOUT", lambda v: _validate_positive_number("v", v, integer=False)
        )
        self.default_backoff: BackoffSpec | None = self._option(
            options, "BACKOFF", _validate_backoff
        )

    def _option(self, options: dict[str, Any], key: str, validate: Callable[[Any], Any]) -> Any:
        try:
            return validate(options.get(key))
        except InvalidJobOptions as exc:
            self.problems.append(f"OPTIONS[{key!r}]: {str(exc).removeprefix('v ')}")
            return None

    # -- validation --------------------------------------------------------

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks plus django_jobs' options; raises ``InvalidTask``."""
        super().validate_task(task)
        if not isinstance(task, JobsTask):
            register_django_task(task)
            return
        try:
            _validate_positive_number("max_attempts", task.max_attempts, integer=True)
            _validate_positive_number("timeout", task.timeout, integer=False)
            _validate_backoff(task.backoff)
            _validate_exception_classes("retry_on", task.retry_on)
            _validate_exception_classes("discard_on", task.discard_on)
            _validate_key(task.idempotency_key)
            validate_run_after(task.run_after)
        except InvalidJobOptions as exc:
            raise InvalidTask(f"{task.module_path}: {exc}") from exc
        if not isinstance(task.retry_on, tuple) or not isinstance(task.discard_on, tuple):
            raise InvalidTask(f"{task.module_path}: retry_on and discard_on must be tuples")
        # Django calls this from Task.__post_init__: the definition registers the
        # task for the worker (a dict entry, no import).
        register_django_task(task)

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

    def _new_job(self, task: Task[..., Any], args: Any, kwargs: Any) -> NewJob:
        check_binding(task.module_path, task.func, args, kwargs, takes_context=task.takes_context)
        args_json, kwargs_json = _encode_arguments(task.module_path, args, kwargs)
        max_attempts = getattr(task, "max_attempts", None) or self.default_max_attempts
        timeout = getattr(task, "timeout", None) or self.default_timeout
        return NewJob(
            task_name=task.module_path,
            queue_name=task.queue_name,
            priority=task.priority,
            args_json=args_json,
            kwargs_json=kwargs_json,
            max_attempts=int(max_attempts or jobs_settings.DEFAULT_MAX_ATTEMPTS),
            timeout=float(timeout or jobs_settings.DEFAULT_TIMEOUT),
            run_after=task.run_after,
            idempotency_key=getattr(task, "idempotency_key", None),
        )

    def enqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """Store a job in the caller's transaction; ``task_enqueued`` fires on commit."""
        # The engine imports the models; django.tasks may load this backend while
        # the app registry is still loading (a task defined in a models module).
        from django_jobs.engine import get_engine

        self._ensure_configured()
        self.validate_task(task)  # again: QUEUES may have changed since the definition
        row = self._new_job(task, args, kwargs)
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
