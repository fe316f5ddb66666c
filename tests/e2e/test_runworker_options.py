"""Command-line options of runworker, runrelay and prunejobs, through real ``manage.py``.

Bad values are refused before anything is written (no worker row), with an
error naming the option; ``--database`` reaches every statement; logging
follows the project's LOGGING.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_jobs import outbox
from django_jobs.models import Job, OutboxEvent, Worker
from django_jobs.status import JobStatus, OutboxStatus
from tests.conftest import ROOT, worker_env
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` to completion against the test database."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output_of(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "-3"], "--concurrency"),
        (["--concurrency", "50000"], "must be between 1 and 1000, got 50000"),
        (["--concurrency", "300", "--pool", "process"], "--concurrency must be between 1 and 256"),
        (["--concurrency", "ten"], "--concurrency"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--prefetch", "-1"], "--prefetch"),
        (["--poll-interval", "0"], "--poll-interval"),
        (["--poll-interval", "-1"], "--poll-interval"),
        (["--poll-interval", "nan"], "--poll-interval"),
        (["--poll-interval", "inf"], "--poll-interval"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
        (["--shutdown-timeout", "nan"], "--shutdown-timeout"),
        (["--shutdown-timeout", "inf"], "--shutdown-timeout"),
        (["--max-jobs", "0"], "--max-jobs"),
        (["--max-jobs", "-5"], "--max-jobs"),
        (["--pool", "process", "--max-tasks-per-child", "0"], "--max-tasks-per-child"),
        (["--pool", "process", "--max-memory-per-child", "nan"], "--max-memory-per-child"),
        (["--pool", "process", "--max-memory-per-child", "-1"], "--max-memory-per-child"),
    ],
)
def test_runworker_refuses_bad_numbers_naming_the_option(args, expected):
    job = tasks.add.enqueue(1, 2)
    proc = manage("runworker", "--burst", *args)
    output = output_of(proc)
    assert proc.returncode != 0, output
    assert expected in output, output
    assert "Traceback" not in output, output
    assert not Worker.objects.exists(), "nothing is written for a refused option"
    assert Job.objects.get(pk=job.pk).status == JobStatus.READY


def test_call_command_values_are_checked_like_the_command_line():
    # call_command(concurrency=0) skips argparse's type=: the command checks again.
    with pytest.raises(CommandError, match="--concurrency must be between 1 and 1000, got 0"):
        call_command("runworker", burst=True, concurrency=0)
    with pytest.raises(CommandError, match="--poll-interval must be a finite number"):
        call_command("runrelay", once=True, poll_interval=float("inf"))
    assert not Worker.objects.exists()


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("runrelay", ["--once", "--batch-size", "0"], "--batch-size"),
        ("runrelay", ["--once", "--poll-interval", "nan"], "--poll-interval"),
        ("runrelay", ["--once", "--poll-interval", "0"], "--poll-interval"),
        ("prunejobs", ["--batch-size", "0"], "--batch-size"),
        ("prunejobs", ["--batch-size", "-2"], "--batch-size"),
    ],
)
def test_runrelay_and_prunejobs_refuse_bad_numbers(command, args, expected):
    proc = manage(command, *args)
    output = output_of(proc)
    assert proc.returncode != 0, output
    assert expected in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize(
    "args", [["runworker", "--burst"], ["runrelay", "--once"], ["prunejobs", "--older-than", "0"]]
)
def test_an_unknown_database_alias_is_a_command_error(args):
    proc = manage(*args, "--database", "nope")
    output = output_of(proc)
    assert proc.returncode == 1, output
    assert "CommandError" in output and "'nope'" in output, output
    assert "Traceback" not in output, output
    assert not Worker.objects.exists()


@pytest.fixture
def second_db(tmp_path: Path) -> dict[str, str]:
    """Env for tests.settings_second_db: the test database as "second", default empty."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.settings_second_db",
        "DJANGO_JOBS_TEST_EMPTY_DB": str(tmp_path / "empty.sqlite3"),
    }


def _tables(path: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("select name from sqlite_master where type='table'")]


def test_runworker_on_an_unmigrated_sqlite_database_is_a_command_error(second_db):
    proc = manage("runworker", "--burst", "--database", "default", **second_db)
    output = output_of(proc)
    assert proc.returncode == 1, output
    assert "CommandError" in output and "manage.py migrate" in output, output
    assert "Traceback" not in output, output
    assert _tables(second_db["DJANGO_JOBS_TEST_EMPTY_DB"]) == []


def test_all_three_commands_use_the_database_alias_they_are_given(second_db):
    job = tasks.add.enqueue(2, 3)
    old = tasks.add.enqueue(1, 1)
    event = outbox.publish("order.created", {"order": 1})

    worker = manage("runworker", "--burst", "--no-relay", "--database", "second", **second_db)
    assert worker.returncode == 0, output_of(worker)
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCESSFUL

    relay = manage("runrelay", "--once", "--database", "second", **second_db)
    assert relay.returncode == 0, output_of(relay)
    assert "dispatched 1 event(s)" in relay.stdout
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED

    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=2))
    prune = manage("prunejobs", "--older-than", "1d", "--database", "second", **second_db)
    assert prune.returncode == 0, output_of(prune)
    assert "Deleted 1 job(s)" in prune.stdout
    assert not Job.objects.filter(pk=old.pk).exists()
    # The default alias (empty SQLite) was never touched by any statement.
    assert _tables(second_db["DJANGO_JOBS_TEST_EMPTY_DB"]) == []


def _log_lines(output: str, fragment: str) -> list[str]:
    return [line for line in output.splitlines() if fragment in line]


def test_runworker_respects_a_project_logging_the_root_logger():
    tasks.add.enqueue(1, 2)
    proc = manage(
        "runworker",
        "--burst",
        DJANGO_SETTINGS_MODULE="tests.settings_rootlogging",
        DJANGO_JOBS_TEST_LOGGING="root",
    )
    output = output_of(proc)
    assert proc.returncode == 0, output
    started = _log_lines(output, "started: queues=")
    assert len(started) == 1, output  # not once per handler
    assert started[0].startswith("PROJECT INFO django_jobs.worker: worker "), output
    assert len(_log_lines(output, "stopped after 1 job(s)")) == 1, output


def test_runworker_logs_once_on_its_own_without_any_project_logging():
    tasks.add.enqueue(1, 2)
    proc = manage(
        "runworker",
        "--burst",
        DJANGO_SETTINGS_MODULE="tests.settings_rootlogging",
        DJANGO_JOBS_TEST_LOGGING="none",
    )
    output = output_of(proc)
    assert proc.returncode == 0, output
    assert len(_log_lines(output, "started: queues=")) == 1, output
    assert len(_log_lines(output, "stopped after 1 job(s)")) == 1, output
