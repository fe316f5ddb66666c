"""System checks: each one triggered for real, and W001 where users look for it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs.models import Worker
from tests.conftest import ROOT, worker_env

# Model checks open a connection to every alias, as a plain `manage.py check` does
# (the test settings have two: "default" and "jobs").
pytestmark = pytest.mark.django_db(databases=["default", "jobs"])


def check_ids() -> list[str]:
    """Ids of what a plain ``manage.py check`` reports (no --database, no --deploy)."""
    return [message.id for message in checks.run_checks() if message.id]


def test_no_django_jobs_message_on_the_test_settings():
    assert [i for i in check_ids() if i.startswith("django_jobs.")] == []


@override_settings(DJANGO_JOBS={"LEASE_SECONDS": 30, "NO_SUCH_KEY": 1})
def test_e001_an_unknown_settings_key():
    messages = [m for m in checks.run_checks() if m.id == "django_jobs.E001"]
    assert len(messages) == 1
    assert "'NO_SUCH_KEY'" in messages[0].msg


@override_settings(DJANGO_JOBS={"LEASE_SECONDS": 10, "HEARTBEAT_INTERVAL": 6})
def test_e002_a_heartbeat_too_slow_for_the_lease():
    assert "django_jobs.E002" in check_ids()


@override_settings(DJANGO_JOBS={"LEASE_SECONDS": 10, "HEARTBEAT_INTERVAL": 5})
def test_e002_not_raised_at_exactly_half_the_lease():
    assert "django_jobs.E002" not in check_ids()


@override_settings(
    DJANGO_JOBS={"OUTBOX_PUBLISHERS": {"broken": {"BACKEND": "no.such.module.Publisher"}}}
)
def test_e010_a_publisher_that_cannot_be_built():
    assert "django_jobs.E010" in check_ids()


def test_w001_sqlite_without_immediate_transactions_in_plain_check(settings):
    # The check runs with the default tags: no --database needed to see it.
    settings.DATABASES = {
        **settings.DATABASES,
        "plain": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    messages = [m for m in checks.run_checks() if m.id == "django_jobs.W001"]
    assert [m.msg for m in messages] == [
        "Database 'plain' is SQLite without transaction_mode='IMMEDIATE'."
    ]


PLAIN = {"DJANGO_SETTINGS_MODULE": "tests.settings_plain_sqlite"}


# Subprocesses open every alias: the test must not hold SQLite's write lock on
# either (a non-transactional test keeps a transaction open on each alias).
@pytest.mark.django_db(databases=["default", "jobs"], transaction=True)
def test_w001_shows_in_a_real_manage_py_check():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=ROOT,
        env=worker_env(**PLAIN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr  # a warning, not an error
    assert "(django_jobs.W001)" in proc.stderr, proc.stdout + proc.stderr
    assert "transaction_mode='IMMEDIATE'" in proc.stderr


@pytest.mark.django_db(databases=["default", "jobs"], transaction=True)
def test_w001_shows_when_runworker_starts(run_burst):
    proc = run_burst(env=PLAIN)
    assert "(django_jobs.W001)" in proc.output(), proc.output()
    assert not Worker.objects.exists()  # it ran and unregistered
