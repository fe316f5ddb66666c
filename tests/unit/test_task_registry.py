"""The task registries: what the worker may run, looked up without imports."""

from __future__ import annotations

import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs.apps import task_modules
from django_jobs.backend.registry import django_task_registry
from django_jobs.exceptions import UnknownTaskError
from django_jobs.tasks import Task, find_task, registry, resolve_task
from tests.testapp import dtasks, subscribers, tasks


def test_registered_tasks_resolve():
    assert resolve_task("tests.testapp.tasks.add") is tasks.add
    assert resolve_task("tests.testapp.subscribers.on_order_created") is (
        subscribers.on_order_created
    )
    assert (
        resolve_task("django_jobs.outbox.delivery.deliver")
        is registry["django_jobs.outbox.delivery.deliver"]
    )
    # A django.tasks Task resolves to the bridge that runs it on the worker.
    bridged = resolve_task("tests.testapp.dtasks.add")
    assert isinstance(bridged, Task)
    assert bridged.django_task is dtasks.add
    assert resolve_task("tests.testapp.dtasks.add") is bridged  # built once
    assert find_task("tests.testapp.tasks.add") is tasks.add


def test_using_copies_keep_the_defined_django_task():
    dtasks.add.using(priority=7)
    assert django_task_registry["tests.testapp.dtasks.add"] is dtasks.add


@pytest.mark.parametrize(
    "name",
    ["os.system", "builtins.exec", "subprocess.run", "tests.testapp.tasks.current_job", "x"],
)
def test_anything_else_is_not_registered(name):
    with pytest.raises(UnknownTaskError, match=rf"task '{name}' is not registered: .*TASK_MODULES"):
        resolve_task(name)
    assert find_task(name) is None


def test_lookup_imports_nothing():
    sys.modules.pop("tests.testapp.import_sentinel", None)
    with pytest.raises(UnknownTaskError):
        resolve_task("tests.testapp.import_sentinel.anything")
    assert "tests.testapp.import_sentinel" not in sys.modules


@pytest.mark.parametrize("value", ["myapp.jobs", None, ["ok", 3], [""]])
def test_task_modules_setting_is_checked(value):
    with pytest.raises(ImproperlyConfigured, match="TASK_MODULES"):
        task_modules(value)
