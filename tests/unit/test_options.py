"""JobOptions: one validation for @task, using() and the django.tasks backend (no database)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from django_jobs import task
from django_jobs.backend import JobsTask
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.options import _CHECKS, ENQUEUE_OPTIONS, TASK_OPTIONS, JobOptions
from django_jobs.outbox.delivery import DELIVERY_TASK, delivery_job, delivery_task, plan_jobs
from django_jobs.outbox.publishers import Publisher
from django_jobs.rows import Event, NewJob
from django_jobs.tasks import Task, registry
from tests.testapp import subscribers, tasks


def plain() -> None:
    """Decorated by the tests (a module-level function)."""


BACKOFFS = "exponential, linear, fixed, fibonacci"
NAIVE = datetime(2030, 1, 1)


# Each message as the validators of tasks.py wrote it before JobOptions existed.
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("priority", 101, "priority must be between -100 and 100, got 101"),
        ("priority", -101, "priority must be between -100 and 100, got -101"),
        ("priority", 3.5, "priority must be an integer, got 3.5"),
        ("priority", "high", "priority must be an integer, got 'high'"),
        ("priority", True, "priority must be an integer, got True"),
        ("queue_name", "", "queue_name must be a non-empty string, got ''"),
        ("queue_name", "  ", "queue_name must be a non-empty string, got '  '"),
        ("queue_name", 7, "queue_name must be a non-empty string, got 7"),
        ("queue_name", "q" * 101, "queue_name is longer than 100 characters"),
        ("max_attempts", 0, "max_attempts must be a positive integer, got 0"),
        ("max_attempts", 2.5, "max_attempts must be a positive integer, got 2.5"),
        ("max_attempts", True, "max_attempts must be a positive integer, got True"),
        ("timeout", -1, "timeout must be a positive number of seconds, got -1"),
        ("timeout", float("inf"), "timeout must be a positive number of seconds, got inf"),
        ("timeout", "soon", "timeout must be a positive number of seconds, got 'soon'"),
        (
            "backoff",
            "quadratic",
            f"backoff must be one of {BACKOFFS} or a callable, got 'quadratic'",
        ),
        ("retry_on", (42,), "retry_on must contain exception classes, got 42"),
        ("discard_on", (int,), "discard_on must contain exception classes, got <class 'int'>"),
        ("run_after", 5, "run_after must be a datetime or timedelta, got 5"),
        (
            "run_after",
            NAIVE,
            "run_after must be an aware datetime (got naive 2030-01-01T00:00:00); "
            "use django.utils.timezone.now() or a timedelta",
        ),
        (
            "run_after",
            timedelta.max,
            f"run_after {timedelta.max!r} is out of range: from now it lands outside "
            "the years 1 to 9999",
        ),
        ("idempotency_key", "", "idempotency_key must be a non-empty string, got ''"),
        ("idempotency_key", "k" * 256, "idempotency_key is longer than 255 characters"),
    ],
)
def test_each_bad_value_raises_the_message_it_always_did(option, value, message):
    with pytest.raises(InvalidJobOptions) as info:
        JobOptions(**{option: value})
    assert str(info.value) == message
    # The same error from every way of giving the option.
    if option in TASK_OPTIONS:
        with pytest.raises(InvalidJobOptions) as again:
            task(**{option: value})(plain)
        assert str(again.value) == message
        assert f"{__name__}.plain" not in registry
    if option in ENQUEUE_OPTIONS:
        with pytest.raises(InvalidJobOptions) as again:
            tasks.add.using(**{option: value})
        assert str(again.value) == message


@pytest.mark.parametrize(
    ("option", "text"), [("queue_name", "a\x00b"), ("idempotency_key", "\ud800")]
)
def test_unstorable_text_names_the_option_and_the_value(option, text):
    with pytest.raises(InvalidJobOptions) as info:
        JobOptions(**{option: text})
    assert str(info.value).startswith(f"{option} {text!r} ")
    assert "cannot be stored" in str(info.value) or "cannot store" in str(info.value)


def test_values_are_normalised_once():
    options = JobOptions(retry_on=ValueError, discard_on=[KeyError, OSError], atomic=1)  # type: ignore[arg-type]
    assert options.retry_on == (ValueError,)
    assert options.discard_on == (KeyError, OSError)
    assert options.atomic is True
    assert JobOptions(retry_on=None).retry_on == ()  # type: ignore[arg-type]


def test_defaults_are_unset_or_valid_so_skipping_them_is_safe():
    for _name, validate, default in _CHECKS:
        assert default is None or validate(default) == default
    assert JobOptions() == JobOptions(**{f.name: f.default for f in dataclasses.fields(JobOptions)})


def test_unknown_options_are_named_once_with_the_valid_ones():
    with pytest.raises(TypeError) as info:
        task(retries=3, tries=2, queue_name="ok")
    assert str(info.value) == (
        "@task got unknown option(s) retries, tries; valid options: atomic, backoff, circuit, "
        "concurrency_key, concurrency_limit, discard_on, max_attempts, priority, queue_name, "
        "rate_limit, rate_limit_key, retry_on, schedule, schedule_timezone, timeout"
    )
    assert str(info.value).count("retries") == 1


@pytest.mark.parametrize("option", sorted(ENQUEUE_OPTIONS - TASK_OPTIONS))
def test_per_enqueue_options_are_not_task_options(option):
    with pytest.raises(TypeError, match=f"unknown option\\(s\\) {option};"):
        task(**{option: "x"})


def test_using_validates_the_whole_copy_again():
    assert isinstance(tasks.add, JobOptions)
    with pytest.raises(InvalidJobOptions, match="priority"):
        dataclasses.replace(tasks.add, priority=500)
    broken = tasks.add.using(queue_name="ok")
    object.__setattr__(broken, "max_attempts", 0)  # what validation would have refused
    with pytest.raises(InvalidJobOptions, match="max_attempts must be a positive integer"):
        broken.using(priority=1)  # a copy checks every option, not only the changed one
    copy = tasks.add.using(priority=7, idempotency_key="k", run_after=timedelta(seconds=5))
    assert (copy.priority, copy.idempotency_key, copy.func) == (7, "k", tasks.add.func)
    assert tasks.add.using() == tasks.add


def test_accepted_option_names_are_the_fields():
    names = {f.name for f in dataclasses.fields(JobOptions)}
    assert names == TASK_OPTIONS | ENQUEUE_OPTIONS
    assert {"queue_name", "priority", "concurrency_key"} == TASK_OPTIONS & ENQUEUE_OPTIONS
    # The typed signatures list the same names.
    overloads = typing.get_overloads(task)
    decorator_form = next(o for o in overloads if "func" not in inspect.signature(o).parameters)
    assert set(inspect.signature(decorator_form).parameters) == TASK_OPTIONS
    assert set(inspect.signature(Task.using).parameters) - {"self"} == ENQUEUE_OPTIONS
    # django.tasks tasks carry every option (Django's Task has queue, priority, run_after).
    # Schedules are declared with @task(schedule=...) or DJANGO_JOBS["SCHEDULES"] only.
    # Flow control: @task only for now (not on django.tasks tasks yet).
    not_carried = {"database", "schedule", "schedule_timezone"} | {
        "concurrency_limit",
        "concurrency_key",
        "rate_limit",
        "rate_limit_key",
        "circuit",
    }
    assert names - not_carried <= {f.name for f in dataclasses.fields(JobsTask)}


# -- rows ---------------------------------------------------------------------------


def test_new_job_maps_the_options_to_the_row():
    later = tasks.add.using(queue_name="q", priority=3, idempotency_key="k")
    row = later.new_job((1,), {"b": 2})
    assert row == NewJob(
        task_name="tests.testapp.tasks.add",
        queue_name="q",
        priority=3,
        args_json="[1]",
        kwargs_json='{"b":2}',
        max_attempts=3,
        timeout=300.0,
        run_after=None,
        idempotency_key="k",
    )
    assert later.new_job((1, 2), {}, index=4).idempotency_key == "k:4"
    with pytest.raises(TypeError, match="enqueue_many item 4"):
        later.new_job((1,), {}, index=4)


def test_one_enqueue_call_resolves_run_after_once():
    before = timezone.now()
    deferred = tasks.add.using(run_after=timedelta(minutes=5))
    options = deferred.row_options()
    rows = [deferred.new_job((n, n), {}, index=n, options=options) for n in range(3)]
    assert {row.run_after for row in rows} == {options.run_after}
    assert options.run_after is not None and options.run_after >= before + timedelta(minutes=5)


class Recorder(Publisher):
    def publish(self, event: Event) -> None:  # pragma: no cover - never delivered here
        raise AssertionError


EVENT = Event(id=41, topic="order.created", key=None, payload={}, headers={}, created_at=NAIVE)


@pytest.mark.parametrize(
    ("options", "queue", "priority", "attempts", "timeout"),
    [
        ({}, "default", 0, 8, 25.0),
        ({"QUEUE": "hooks", "PRIORITY": 9, "MAX_ATTEMPTS": 2, "TIMEOUT": 1.5}, "hooks", 9, 2, 8.0),
    ],
)
def test_delivery_rows_keep_their_options_and_key(options, queue, priority, attempts, timeout):
    publisher = Recorder("hook", options)
    row = delivery_job(publisher, EVENT, '{"id": 41}')
    assert row == NewJob(
        task_name=DELIVERY_TASK,
        queue_name=queue,
        priority=priority,
        args_json='["hook",{"id": 41}]',
        kwargs_json="{}",
        max_attempts=attempts,
        timeout=timeout,
        run_after=None,
        idempotency_key="outbox:41:publisher:hook",
    )
    assert delivery_task(publisher) is delivery_task(publisher)  # built once per publisher
    assert delivery_task(Recorder("hook", {"PRIORITY": 1})).priority == 1  # settings changed


def test_subscriber_rows_carry_the_event_and_its_key():
    rows = {row.task_name: row for row in plan_jobs([EVENT])}
    row = rows[subscribers.on_order_created.name]
    assert row.args_json.startswith('[{"id":41,"topic":"order.created"') and row.kwargs_json == "{}"
    assert row.idempotency_key == f"outbox:41:{subscribers.on_order_created.name}"
    assert (row.queue_name, row.max_attempts, row.run_after) == ("default", 3, None)
