"""Test helpers: run jobs in the test's process, assert what was enqueued or published.

- :func:`run_jobs` drains due jobs here, with the real engine and runner
  (retries, ``atomic=True``, idempotency, dead letters) and the outbox relay,
  and returns one :class:`~django_jobs.worker.inline.JobRun` per attempt.
- :func:`assert_enqueued`, :func:`assert_not_enqueued`, :func:`enqueued_jobs`,
  :func:`assert_published`, :func:`published_events`.
- ``clock``: freeze or advance "now" for run_after and retries.

They run on the calling thread's connection, so inside a ``TestCase`` jobs
enqueued by the test (not committed) are runnable, like on_commit callbacks
under ``captureOnCommitCallbacks``. The pytest fixtures ``jobs`` and ``outbox``
(``django_jobs.pytest_plugin``) and
:class:`~django_jobs.testing.mixins.JobsTestMixin` wrap them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from django_jobs.status import JobStatus
from django_jobs.testing.clock import Clock, clock
from django_jobs.worker.inline import JobRun, claim_one, run_claimed

if TYPE_CHECKING:
    from django_jobs.models import Job, OutboxEvent
    from django_jobs.tasks import Task

__all__ = [
    "Clock",
    "JobRun",
    "assert_enqueued",
    "assert_not_enqueued",
    "assert_not_published",
    "assert_published",
    "clock",
    "enqueued_jobs",
    "published_events",
    "run_jobs",
]

# run_jobs() stops with an error after this many attempts by default: a job
# that enqueues itself again would otherwise never let the queue empty.
DEFAULT_MAX_JOBS = 1000


def _in_tests() -> bool:
    # Django's setup_test_environment() (its test runner, pytest-django) installs
    # the locmem outbox; nothing else does.
    from django.core import mail  # a module attribute set at test setup, read now

    return hasattr(mail, "outbox")


def run_jobs(
    queue: str | Sequence[str] | None = None,
    until_empty: bool = True,
    *,
    skip_backoff: bool = False,
    relay: bool = True,
    database: str = DEFAULT_DB_ALIAS,
    max_jobs: int = DEFAULT_MAX_JOBS,
) -> list[JobRun]:
    """Run the due jobs of ``queue`` (a name, names, None: all) in this process.

    ``until_empty``: also the jobs that those enqueue (and their retries, once
    due) until none is due; False: only the jobs due when called. A failed
    attempt is retried at its backoff time, that is not now, unless
    ``skip_backoff`` (or the clock is advanced). With ``relay``, pending outbox
    events are dispatched first (and again whenever jobs publish), so
    subscribers run too. Returns one JobRun per attempt, in run order.

    Outside a test environment (Django's test runner or pytest-django) it
    raises RuntimeError: it would run jobs inside a web or shell process.
    """
    if not _in_tests():
        raise RuntimeError(
            "django_jobs.testing.run_jobs() runs jobs in this process and only works in tests "
            "(Django's test runner or pytest-django); run `manage.py runworker` instead"
        )
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
    queues = [queue] if isinstance(queue, str) else (list(queue) if queue else None)
    worker_id = uuid.uuid4()
    runs: list[JobRun] = []
    if relay:
        _dispatch_events(database)
    # until_empty=False: the jobs due now, each once (a retry due at once is not rerun).
    batch = None if until_empty else _due_ids(database, queues)
    while batch is None or batch:
        job = claim_one(database, queues, worker_id, ids=batch)
        if job is None:
            if until_empty and relay and _dispatch_events(database):
                continue  # the jobs published events: their subscribers' jobs are due
            break
        if batch is not None:
            batch.remove(job.id)
        if len(runs) >= max_jobs:
            _engine(database).release_jobs([job])
            raise RuntimeError(
                f"run_jobs() ran {max_jobs} attempts and jobs are still due (a job that "
                "enqueues itself again?); pass a larger max_jobs if this is expected"
            )
        runs.append(run_claimed(job, skip_backoff=skip_backoff))
        if until_empty and relay:
            _dispatch_events(database)
    return runs


def _engine(database: str) -> Any:
    from django_jobs.engine import get_engine  # imports the models: at call time

    return get_engine(database)


def _due_ids(database: str, queues: Sequence[str] | None) -> list[int]:
    from django_jobs.models import Job  # needs the app registry: at call time

    # The due condition of Engine.claim_jobs_at.
    due = Q(run_after__lte=clock.now()) | Q(attempts=0, requested_run_after__isnull=True)
    return list(
        Job.objects.using(database)
        .filter(due, status=JobStatus.READY)
        .for_queues(queues)
        .claim_order()
        .values_list("pk", flat=True)
    )


def _dispatch_events(database: str) -> int:
    from django_jobs.outbox.relay import Relay  # imports the models: at call time

    return Relay(database).drain()


# -- jobs -----------------------------------------------------------------------


def _task_name(task: Task[Any, Any] | str) -> str:
    return task if isinstance(task, str) else task.name


def _database_of(task: Task[Any, Any] | str, database: str | None) -> str:
    if database is not None:
        return database
    return DEFAULT_DB_ALIAS if isinstance(task, str) else task.database


def enqueued_jobs(
    task: Task[Any, Any] | str | None = None,
    *,
    status: str | Sequence[str] | None = "READY",
    database: str | None = None,
) -> list[Job]:
    """Jobs of ``task`` (a Task or dotted name; None: every task), oldest first,
    READY by default (``status=None``: any status)."""
    from django_jobs.models import Job  # needs the app registry: at call time

    alias = _database_of(task, database) if task is not None else database or DEFAULT_DB_ALIAS
    jobs = Job.objects.using(alias).order_by("id")
    if task is not None:
        jobs = jobs.filter(task_name=_task_name(task))
    if isinstance(status, str):
        jobs = jobs.filter(status=status)
    elif status is not None:
        jobs = jobs.filter(status__in=list(status))
    return list(jobs)


def _describe_jobs(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "  (none)"
    return "\n".join(
        f"  #{job.pk} {job.task_name} args={job.args!r} kwargs={job.kwargs!r} "
        f"queue={job.queue_name} status={job.status}"
        for job in jobs
    )


def assert_enqueued(
    task: Task[Any, Any] | str,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    count: int | None = None,
    *,
    queue: str | None = None,
    database: str | None = None,
) -> list[Job]:
    """Assert that READY jobs of ``task`` exist, matching ``args`` / ``kwargs``
    / ``queue`` where given (exactly ``count`` of them if given, else at least
    one); returns the matching jobs. The failure message lists every READY job."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    name = _task_name(task)
    ready = enqueued_jobs(None, database=_database_of(task, database))
    matching = [
        job
        for job in ready
        if job.task_name == name
        and (args is None or job.args == list(args))
        and (kwargs is None or job.kwargs == dict(kwargs))
        and (queue is None or job.queue_name == queue)
    ]
    if (count is None and not matching) or (count is not None and len(matching) != count):
        wanted = [f"args={list(args)!r}" if args is not None else ""]
        wanted += [f"kwargs={dict(kwargs)!r}" if kwargs is not None else ""]
        wanted += [f"queue={queue!r}" if queue is not None else ""]
        shown = " ".join(w for w in wanted if w)
        expected = f"{count} job(s)" if count is not None else "a job"
        raise AssertionError(
            f"expected {expected} of {name}{' with ' + shown if shown else ''} enqueued, "
            f"found {len(matching)}. READY jobs:\n{_describe_jobs(ready)}"
        )
    return matching


def assert_not_enqueued(task: Task[Any, Any] | str, *, database: str | None = None) -> None:
    """Assert that no READY job of ``task`` exists (the message lists those that do)."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    found = enqueued_jobs(task, database=database)
    if found:
        raise AssertionError(
            f"expected no job of {_task_name(task)} enqueued, found {len(found)}:\n"
            f"{_describe_jobs(found)}"
        )


# -- outbox ---------------------------------------------------------------------


def published_events(
    topic: str | None = None, *, database: str = DEFAULT_DB_ALIAS
) -> list[OutboxEvent]:
    """Outbox events of ``topic`` (None: every topic), any status, oldest first."""
    from django_jobs.models import OutboxEvent  # needs the app registry: at call time

    events = OutboxEvent.objects.using(database).order_by("id")
    if topic is not None:
        events = events.filter(topic=topic)
    return list(events)


def _describe_events(events: Sequence[OutboxEvent]) -> str:
    if not events:
        return "  (none)"
    return "\n".join(
        f"  #{e.pk} {e.topic} key={e.key!r} payload={e.payload!r} status={e.status}" for e in events
    )


_ANY: Any = object()


def assert_published(
    topic: str,
    payload: Any = _ANY,
    key: Any = _ANY,
    count: int | None = None,
    *,
    database: str = DEFAULT_DB_ALIAS,
) -> list[OutboxEvent]:
    """Assert that events of ``topic`` were published (committed or in this
    test's transaction), matching ``payload`` / ``key`` where given; exactly
    ``count`` if given, else at least one. The message lists every event."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    every = published_events(database=database)
    matching = [
        e
        for e in every
        if e.topic == topic
        and (payload is _ANY or e.payload == payload)
        and (key is _ANY or e.key == key)
    ]
    if (count is None and not matching) or (count is not None and len(matching) != count):
        wanted = [f"payload={payload!r}" if payload is not _ANY else ""]
        wanted += [f"key={key!r}" if key is not _ANY else ""]
        shown = " ".join(w for w in wanted if w)
        expected = f"{count} event(s)" if count is not None else "an event"
        raise AssertionError(
            f"expected {expected} {topic!r}{' with ' + shown if shown else ''} published, "
            f"found {len(matching)}. Published events:\n{_describe_events(every)}"
        )
    return matching


def assert_not_published(topic: str, *, database: str = DEFAULT_DB_ALIAS) -> None:
    """Assert that no event of ``topic`` was published."""
    __tracebackhide__ = True  # pytest shows the caller's line, not ours
    found = published_events(topic, database=database)
    if found:
        raise AssertionError(
            f"expected no {topic!r} event published, found {len(found)}:\n{_describe_events(found)}"
        )
