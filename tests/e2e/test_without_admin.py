"""A project without django.contrib.admin runs the worker (scheduler and alert
evaluator included): nothing outside the admin pages may import them."""

from __future__ import annotations

import json

import pytest

from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def test_runworker_without_the_admin_app(run_burst):
    job = tasks.add.enqueue(2, 3)
    rule = {"dead": {"kind": "dead_letters", "threshold": 1}}
    proc = run_burst(
        env={
            "DJANGO_SETTINGS_MODULE": "tests.settings_no_admin",
            "DJANGO_JOBS_TEST_ALERTS": json.dumps(rule),
        }
    )
    assert "Traceback" not in proc.output(), proc.output()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCESSFUL, 5)
