"""django_jobs.backend.JobsBackend against Django's contract for task backends
(no worker needed): configuration, enqueue, results, validation, pickling."""

from __future__ import annotations

import asyncio
import pickle
from datetime import datetime, timedelta

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.base import TaskResult
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.test import override_settings
from django.utils import timezone

from django_jobs.backend import JobsBackend, JobsTask
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import dtasks

BACKEND = "django_jobs.backend.JobsBackend"


def run_async(coroutine):
    """Run ``coroutine``, then close the connections its sync_to_async thread opened."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    async def run_then_close():
        try:
            return await coroutine
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(run_then_close())


def tasks_setting(**params):
    return {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "reports", "other"], **params}}


# -- 1. configuration ----------------------------------------------------------


def test_backend_type_alias_options_and_clean_check():
    backend = task_backends["default"]
    assert type(backend) is JobsBackend
    assert default_task_backend.alias == "default"
    assert backend.alias == "default"
    assert backend.queues == {"default", "reports", "other"}
    assert backend.options == {}
    assert backend.database == "default"
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority
    assert backend.check() == []
    assert isinstance(dtasks.add, JobsTask)
    assert dtasks.add.get_backend() is backend


def test_options_are_read():
    options = {"DATABASE": "default", "MAX_ATTEMPTS": 7, "TIMEOUT": 12.5, "BACKOFF": "linear"}
    with override_settings(TASKS=tasks_setting(OPTIONS=options)):
        backend = task_backends["default"]
        assert backend.options == options
        assert (backend.default_max_attempts, backend.default_timeout) == (7, 12.5)
        assert backend.default_backoff == "linear"
        assert backend.check() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"MAX_ATTEMPS": 3}, "unknown OPTIONS key(s) 'MAX_ATTEMPS'"),
        ({"MAX_ATTEMPTS": 0}, "OPTIONS['MAX_ATTEMPTS']: must be a positive integer, got 0"),
        ({"TIMEOUT": "soon"}, "OPTIONS['TIMEOUT']: must be a positive number of seconds"),
        ({"BACKOFF": "sometimes"}, "OPTIONS['BACKOFF']: backoff must be one of"),
    ],
)
def test_bad_options_are_check_errors_and_enqueue_refuses(options, message):
    with override_settings(TASKS=tasks_setting(OPTIONS=options)):
        backend = task_backends["default"]  # built without raising
        errors = backend.check()
        assert [e.id for e in errors] == ["django_jobs.E104"]
        assert message in errors[0].msg
        assert "TASKS['default']" in errors[0].msg
        with pytest.raises(ImproperlyConfigured, match="TASKS"):
            backend.enqueue(dtasks.add, (1, 2), {})


def test_unknown_database_is_a_check_error():
    with override_settings(TASKS=tasks_setting(OPTIONS={"DATABASE": "nope"})):
        errors = task_backends["default"].check()
        assert [e.id for e in errors] == ["django_jobs.E102"]
        assert "'nope'" in errors[0].msg


@pytest.fixture
def unsupported_database(settings):
    """A second alias on a database JobsBackend does not support."""
    from django.db import connections

    config = {"ENGINE": "django.db.backends.dummy"}
    databases = dict(settings.DATABASES)
    databases["legacy"] = config
    settings.DATABASES = databases
    configured = connections.configure_settings({"default": {}, "legacy": config})
    connections.settings["legacy"] = configured["legacy"]
    yield "legacy"
    del connections.settings["legacy"]
    if hasattr(connections._connections, "legacy"):
        delattr(connections._connections, "legacy")


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_unsupported_database_is_a_check_error(unsupported_database):
    with override_settings(TASKS=tasks_setting(OPTIONS={"DATABASE": unsupported_database})):
        errors = task_backends["default"].check()
    assert [e.id for e in errors] == ["django_jobs.E103"]
    assert "'legacy' is unknown" in errors[0].msg and "PostgreSQL and SQLite" in errors[0].msg


def test_app_not_installed_is_a_check_error(settings):
    from django.apps import apps

    with override_settings(TASKS=tasks_setting()):
        backend = task_backends["default"]
        apps.set_installed_apps([a for a in settings.INSTALLED_APPS if a != "django_jobs"])
        try:
            errors = backend.check()
        finally:
            apps.unset_installed_apps()
    assert [e.id for e in errors] == ["django_jobs.E101"]


# Django's model checks ask every alias whether it supports JSONField.
@pytest.mark.django_db(databases=["default", "jobs"])
def test_check_framework_reports_backend_errors():
    with override_settings(TASKS=tasks_setting(OPTIONS={"TIMEOUT": -1})):
        ids = [m.id for m in run_checks()]
    assert "django_jobs.E104" in ids


def test_building_the_backend_does_not_touch_the_database():
    # No django_db mark: pytest-django makes any query here an error.
    with override_settings(TASKS=tasks_setting()):
        backend = task_backends["default"]
        backend.check()
        JobsTask(func=dtasks.add.func, backend="default")


# -- 2. enqueue ----------------------------------------------------------------


def _assert_fresh(result: TaskResult) -> None:
    assert result.status == TaskResultStatus.READY
    assert isinstance(result.id, str) and 0 < len(result.id) < 64
    assert result.enqueued_at is not None
    assert result.started_at is None and result.finished_at is None
    assert result.last_attempted_at is None
    assert result.args == [1] and result.kwargs == {"two": 3}
    assert result.attempts == 0 and result.errors == [] and result.worker_ids == []
    assert result.backend == "default" and result.task == dtasks.echo
    assert not result.is_finished
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    job = Job.objects.get(pk=int(result.id))
    assert job.task_name == "tests.testapp.dtasks.echo"
    assert (job.status, job.args, job.kwargs) == (JobStatus.READY, [1], {"two": 3})
    assert job.enqueued_at == result.enqueued_at


@pytest.mark.django_db
def test_enqueue_stores_a_ready_job():
    _assert_fresh(dtasks.echo.enqueue(1, two=3))


@pytest.mark.django_db(transaction=True)
def test_aenqueue_stores_a_ready_job():
    _assert_fresh(run_async(dtasks.echo.aenqueue(1, two=3)))


@pytest.mark.django_db
def test_our_options_are_stored_on_the_job():
    result = dtasks.fails_then_succeeds.enqueue(times=1)
    job = Job.objects.get(pk=int(result.id))
    assert (job.max_attempts, job.timeout) == (3, 300.0)
    job = Job.objects.get(pk=int(dtasks.sleep_for.enqueue(0.1).id))
    assert (job.max_attempts, job.timeout) == (3, 30.0)
    with override_settings(TASKS=tasks_setting(OPTIONS={"MAX_ATTEMPTS": 9, "TIMEOUT": 5})):
        job = Job.objects.get(pk=int(dtasks.add.enqueue(1, 2).id))
    assert (job.max_attempts, job.timeout) == (9, 5.0)


@pytest.mark.django_db
def test_idempotency_key_returns_the_active_job():
    first = dtasks.add.using(idempotency_key="add-once").enqueue(1, 2)
    again = dtasks.add.using(idempotency_key="add-once").enqueue(1, 2)
    assert again.id == first.id
    assert Job.objects.filter(idempotency_key="add-once").count() == 1
    with pytest.raises(InvalidTask, match="idempotency_key"):
        dtasks.add.using(idempotency_key="")


# -- 3. get_result -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_get_result_from_task_and_backend_agree():
    result = dtasks.echo.enqueue(1, two=3)
    backend = task_backends["default"]
    for fetched in (
        dtasks.echo.get_result(result.id),
        backend.get_result(result.id),
        run_async(backend.aget_result(result.id)),
        run_async(dtasks.echo.aget_result(result.id)),
    ):
        assert fetched.id == result.id
        assert fetched.task == dtasks.echo
        assert (fetched.status, fetched.args, fetched.kwargs) == (result.status, [1], {"two": 3})
        assert fetched.enqueued_at == result.enqueued_at
        assert fetched.backend == "default"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad_id", ["999999999", "abc", "", "-1", "1.5", "٣", str(2**63), "9" * 40, " 1"]
)
def test_unknown_or_malformed_id_does_not_exist(bad_id):
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(bad_id)
    with pytest.raises(TaskResultDoesNotExist):
        dtasks.add.get_result(bad_id)


@pytest.mark.django_db
def test_another_tasks_id_is_a_mismatch():
    result = dtasks.echo.enqueue(1)
    with pytest.raises(TaskResultMismatch):
        dtasks.add.get_result(result.id)


@pytest.mark.django_db
def test_a_django_jobs_task_id_is_not_a_django_tasks_result():
    from tests.testapp import tasks

    job = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist, match=r"not a django\.tasks Task"):
        task_backends["default"].get_result(str(job.pk))


# -- 4. validation -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("priority", [-101, 101, 3.5])
def test_bad_priority_is_rejected(priority):
    with pytest.raises(InvalidTask, match="priority"):
        dtasks.add.using(priority=priority)
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("priority", [-100, 0, 100])
def test_priority_bounds_are_accepted(priority):
    result = dtasks.add.using(priority=priority).enqueue(1, 1)
    assert Job.objects.get(pk=int(result.id)).priority == priority
    assert result.task.priority == priority


def test_naive_run_after_is_rejected():
    with pytest.raises(InvalidTask, match="aware"):
        dtasks.add.using(run_after=datetime(2030, 1, 1))


def test_unknown_queue_is_rejected():
    with pytest.raises(InvalidTask, match="Queue 'nowhere'"):
        dtasks.add.using(queue_name="nowhere")


def test_nested_function_is_rejected():
    from django.tasks import task

    def nested() -> None:
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task(nested)


def test_takes_context_without_context_argument_is_rejected():
    from django.tasks import task

    with pytest.raises(InvalidTask, match="context"):
        task(takes_context=True)(_no_context)


def _no_context(a: int) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": -1}, "timeout"),
        ({"backoff": "never"}, "backoff"),
        ({"retry_on": (int,)}, "retry_on"),
    ],
)
def test_our_options_are_validated_at_definition(options, message):
    from django.tasks import task

    with pytest.raises(InvalidTask, match=message):
        task(**options)(_no_context)


def test_unknown_decorator_option_is_a_type_error():
    from django.tasks import task

    with pytest.raises(TypeError, match="max_retries"):
        task(max_retries=3)(_no_context)


@pytest.mark.django_db
def test_queue_is_revalidated_on_enqueue_after_queues_change():
    reports = dtasks.with_progress  # defined while "reports" was allowed
    with (
        override_settings(TASKS=tasks_setting(QUEUES=["default"])),
        pytest.raises(InvalidTask, match="Queue 'reports'"),
    ):
        reports.enqueue(1, 0.0)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_non_json_arguments_are_a_type_error_and_nothing_is_written():
    with pytest.raises(TypeError, match=r"positional argument 0 \(set\)"):
        dtasks.echo.enqueue({1, 2})
    with pytest.raises(TypeError, match="keyword argument 'when'"):
        dtasks.echo.enqueue(when=timezone.now())
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_deferred_task_is_stored_with_run_after():
    when = timezone.now() + timedelta(hours=1)
    result = dtasks.add.using(run_after=when).enqueue(1, 2)
    assert Job.objects.get(pk=int(result.id)).run_after == when
    assert dtasks.add.get_result(result.id).task.run_after == when


# -- 8. pickling ---------------------------------------------------------------


@pytest.mark.django_db
def test_task_and_result_pickle_round_trip():
    configured = dtasks.fails_then_succeeds.using(priority=7, queue_name="other")
    assert pickle.loads(pickle.dumps(configured)) == configured
    assert pickle.loads(pickle.dumps(dtasks.async_multiply)) == dtasks.async_multiply
    result = dtasks.echo.enqueue(1, two=3)
    restored = pickle.loads(pickle.dumps(result))
    assert restored == result
    assert restored.task == dtasks.echo and restored.status == TaskResultStatus.READY
    fetched = dtasks.echo.get_result(result.id)
    assert pickle.loads(pickle.dumps(fetched)) == fetched
    assert connection.vendor in {"sqlite", "postgresql"}


# -- 6. task_enqueued only after commit ----------------------------------------


@pytest.fixture
def enqueued_signals():
    from django.tasks.signals import task_enqueued

    seen: list[tuple[type, TaskResult]] = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result))

    task_enqueued.connect(receiver)
    yield seen
    task_enqueued.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_rolled_back_enqueue_leaves_no_row_and_sends_no_signal(enqueued_signals):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        dtasks.add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert not Job.objects.exists()
    assert enqueued_signals == []


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_is_sent_once_after_commit(enqueued_signals):
    from django.db import transaction

    with transaction.atomic():
        result = dtasks.add.enqueue(1, 2)
        assert enqueued_signals == []
    assert enqueued_signals == [(JobsBackend, result)]
    assert enqueued_signals[0][1].status == TaskResultStatus.READY


@pytest.mark.django_db(transaction=True)
def test_raising_task_enqueued_receiver_changes_nothing():
    from django.tasks.signals import task_enqueued

    def broken(sender, task_result, **kwargs):
        raise RuntimeError("broken receiver")

    task_enqueued.connect(broken)
    try:
        result = dtasks.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(broken)
    assert Job.objects.get(pk=int(result.id)).status == JobStatus.READY


# -- query budgets ---------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_and_get_result_query_budgets(django_assert_max_num_queries):
    # PostgreSQL: one INSERT ... RETURNING. SQLite: the insert in a savepoint.
    budget = 1 if connection.vendor == "postgresql" else 3
    with django_assert_max_num_queries(budget):
        result = dtasks.add.enqueue(1, 2)
    with django_assert_max_num_queries(1):
        dtasks.add.get_result(result.id)
