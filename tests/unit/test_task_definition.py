"""@task validates at definition time: the worker must be able to import it."""

from datetime import datetime, timedelta

import pytest

from django_jobs import task
from django_jobs.exceptions import InvalidJobOptions, InvalidTaskError
from django_jobs.tasks import Task, registry
from tests.testapp import tasks


def test_bare_and_configured_decorators_make_registered_tasks():
    assert isinstance(tasks.add, Task)
    assert tasks.add.name == "tests.testapp.tasks.add"
    assert registry["tests.testapp.tasks.add"] is tasks.add
    assert tasks.in_other_queue.queue_name == "other"
    assert tasks.in_other_queue.priority == 5


def test_direct_call_runs_the_function():
    assert tasks.add(2, 3) == 5


def test_lambda_is_rejected():
    with pytest.raises(InvalidTaskError, match="lambda"):
        task(lambda: None)


def test_nested_function_is_rejected():
    with pytest.raises(InvalidTaskError, match="nested function"):

        @task
        def inner() -> None: ...


def test_method_is_rejected():
    with pytest.raises(InvalidTaskError, match="method"):

        class Holder:
            @task
            def method(self) -> None: ...


def test_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="retries"):
        task(retries=3)


@pytest.mark.parametrize("priority", [-101, 101, 3.5, "high", True])
def test_priority_out_of_range_or_wrong_type(priority):
    with pytest.raises(InvalidJobOptions, match="priority"):
        tasks.add.using(priority=priority)


@pytest.mark.parametrize("priority", [-100, 0, 100])
def test_priority_bounds_are_accepted(priority):
    assert tasks.add.using(priority=priority).priority == priority


def test_naive_run_after_is_rejected():
    with pytest.raises(InvalidJobOptions, match="aware"):
        tasks.add.using(run_after=datetime(2030, 1, 1))


def test_using_returns_a_copy():
    later = tasks.add.using(queue_name="bulk", run_after=timedelta(minutes=5))
    assert later.queue_name == "bulk"
    assert tasks.add.queue_name is None
    assert later.name == tasks.add.name


def test_using_rejects_unknown_options():
    with pytest.raises(TypeError):
        tasks.add.using(retries=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_attempts", 0), ("timeout", -1), ("backoff", "quadratic"), ("retry_on", (42,))],
)
def test_bad_option_values(option, value):
    def module_level_like() -> None: ...

    module_level_like.__qualname__ = "module_level_like"
    with pytest.raises(InvalidJobOptions, match=option):
        task(**{option: value})(module_level_like)
