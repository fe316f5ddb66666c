"""``manage.py jobs status`` as an operator runs it, next to a real worker."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.cli.status import CLEAR
from django_jobs.models import Job, Worker
from django_jobs.status import JobStatus
from tests.admin.factories import make_worker
from tests.conftest import ROOT, wait_until, worker_env
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])


def jobs_command(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "jobs", *args],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_status_shows_a_running_worker_with_a_fresh_heartbeat(start_worker):
    for _ in range(3):
        tasks.always_fails.enqueue()  # max_attempts=2: dead letters
    tasks.sleep_for.enqueue(60)  # holds a slot while status looks
    worker = start_worker("--concurrency", "2")
    wait_until(
        lambda: (
            Job.objects.filter(status=JobStatus.FAILED).count() == 3
            and Job.objects.filter(status=JobStatus.RUNNING).count() == 1
        ),
        timeout=60,
        message="three dead letters and one running job",
    )
    done = jobs_command("status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (shown,) = doc["workers"]
    row = Worker.objects.get()
    assert (shown["pid"], shown["id"]) == (worker.pid, str(row.id))
    assert shown["stale"] is False and shown["heartbeat_age_seconds"] < 10
    assert shown["running"] == 1 and shown["concurrency"] == 2
    assert doc["dead_letters"] == 3
    assert {f["task"] for f in doc["latest_failures"]} == {"tests.testapp.tasks.always_fails"}
    (default,) = [q for q in doc["queues"] if q["name"] == "default"]
    assert default["running"] == 1 and default["failed"] == 3

    table = jobs_command("status")
    assert table.returncode == 0, table.stderr
    name = f"{row.hostname}:{worker.pid}"
    line = next(x for x in table.stdout.splitlines() if x.startswith(name))
    assert line.split()[-3:] == ["2", "1", "live"]  # concurrency, held, state
    assert "\x1b[" not in table.stdout  # a pipe, not a terminal


def test_watch_redraws_until_ctrl_c_and_exits_cleanly(start_worker, tmp_path):
    start_worker()
    wait_until(lambda: Worker.objects.exists(), timeout=30, message="the worker row")
    out = (tmp_path / "watch.out").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "jobs", "status", "--watch", "0.3", "--json"],
        cwd=ROOT,
        env=worker_env(),
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def frames() -> list[str]:
            return (tmp_path / "watch.out").read_text().splitlines()

        wait_until(lambda: len(frames()) >= 3, timeout=30, message="three redraws")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    docs = [json.loads(line) for line in frames() if line.strip()]
    assert len(docs) >= 3
    assert all(len(d["workers"]) == 1 and not d["workers"][0]["stale"] for d in docs)
    stamps = [d["taken_at"] for d in docs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # fresh each time


def test_status_names_an_unreachable_database(is_postgres):
    skip: list[str] = []
    if is_postgres:  # nothing listens on port 1
        env = worker_env(DATABASE_URL="postgres://root@127.0.0.1:1/nowhere")
    else:
        env = worker_env(DJANGO_JOBS_TEST_DB_NAME="/nonexistent-dir/x.sqlite3")
        # Django's system checks open a SQLite file first (JSONField support)
        # and fail with their own traceback, before any command runs.
        skip = ["--skip-checks"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "jobs", *skip, "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "database 'default' unavailable: OperationalError" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_terminal_gets_redraws_in_place_and_colours():
    """On a real pseudo-terminal: the screen is cleared before each redraw, and
    a stale worker's line is coloured (a pipe gets neither: tests above)."""
    make_worker(hostname="old-host", pid=7, last_heartbeat_at=timezone.now() - timedelta(hours=1))
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "jobs", "status", "--watch", "0.3"],
        cwd=ROOT,
        env=worker_env(TERM="xterm"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while seen.count(CLEAR.encode()) < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                seen += os.read(controller, 65536)
        assert seen.count(CLEAR.encode()) >= 3, seen[-2000:]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
        with contextlib.suppress(OSError):  # the terminal closes with the process
            while select.select([controller], [], [], 0.5)[0]:
                chunk = os.read(controller, 65536)
                if not chunk:
                    break
                seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    text = seen.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "Traceback" not in text
    stale = next(line for line in text.splitlines() if "old-host:7" in line)
    assert "\x1b[" in stale and stale.rstrip().endswith("\x1b[0m")  # coloured, then reset
    assert "STALE" in stale
