"""A task defined after Django's setup (in a module only the web side imports)
is unknown to workers: enqueueing it warns, once, naming TASK_MODULES."""

from __future__ import annotations

import logging

import pytest

from django_jobs import task
from django_jobs.models import Job
from tests.testapp import tasks as app_tasks

pytestmark = pytest.mark.django_db


# Defined when pytest imports this module, long after django.setup(): like a
# task declared in a views module.
@task
def defined_late(n: int) -> int:
    return n


def test_enqueueing_a_task_defined_after_setup_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="django_jobs.tasks"):
        defined_late.enqueue(1)
        defined_late.enqueue_many([(2,), (3,)])
    warnings = [r for r in caplog.records if r.name == "django_jobs.tasks"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "tests.integration.test_tasks_defined_after_setup.defined_late" in message
    assert "DJANGO_JOBS['TASK_MODULES']" in message
    assert Job.objects.count() == 3  # a warning, not a refusal: in-process runners know it


def test_tasks_of_an_apps_tasks_module_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="django_jobs.tasks"):
        app_tasks.add.enqueue(1, 2)
    assert [r for r in caplog.records if r.name == "django_jobs.tasks"] == []
