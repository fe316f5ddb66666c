"""Alert rules at ``manage.py check``: E3xx errors, W301 for an unknown task."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs.alerts.checks import check_alerts
from tests.conftest import ROOT, worker_env


def ids(**alerts_settings: object) -> list[str]:
    with override_settings(DJANGO_JOBS=alerts_settings):
        return [m.id for m in check_alerts() if m.id]


def test_valid_rules_pass():
    rules = {
        "rate": {"kind": "failure_rate", "task": "tests.testapp.tasks.fails_if", "threshold": 0.2},
        "workers": {"kind": "stale_workers"},
    }
    assert ids(ALERTS=rules) == []


def test_each_problem_is_its_own_error():
    rules = {
        "a": {"kind": "nope"},
        "b": {"kind": "failure_rate", "threshold": -1},
        "c": {"kind": "dead_letters", "window": 0},
        "d": {"kind": "stale_workers", "thresold": 1},
        "e": {"kind": "oldest_ready_age", "threshold": 5, "queue": 3},
    }
    assert sorted(ids(ALERTS=rules)) == [f"django_jobs.E30{n}" for n in range(2, 7)]


def test_unregistered_task_is_a_warning():
    with override_settings(
        DJANGO_JOBS={"ALERTS": {"r": {"kind": "dead_letters", "task": "no.such.task"}}}
    ):
        messages = check_alerts()
    assert [(m.id, m.level) for m in messages] == [("django_jobs.W301", checks.WARNING)]
    assert "'no.such.task' is not a registered task" in messages[0].msg


@pytest.mark.parametrize("interval", [0, -1, "30", True])
def test_e307_a_bad_interval(interval):
    assert ids(ALERT_INTERVAL=interval) == ["django_jobs.E307"]


def test_e307_mail_admins_must_be_a_bool():
    assert ids(ALERT_MAIL_ADMINS="yes") == ["django_jobs.E307"]
    assert ids(ALERT_INTERVAL=None, ALERT_MAIL_ADMINS=False) == []


@pytest.mark.django_db(databases=["default", "jobs"], transaction=True)
def test_manage_py_check_fails_naming_the_rule():
    env = worker_env(
        DJANGO_JOBS_TEST_ALERTS='{"payments": {"kind": "failure_rate", "threshold": 0}}'
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "(django_jobs.E304) DJANGO_JOBS['ALERTS']['payments']: 'threshold' must be more" in (
        proc.stderr
    )
