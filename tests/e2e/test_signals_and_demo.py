"""Signals in the worker process, and the README's demo command."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from django_jobs.engine import get_engine
from django_jobs.signals import job_finished, job_started
from django_jobs.worker.runner import run_job
from tests.conftest import wait_until
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_started_and_finished_signals_and_a_raising_receiver_changes_nothing():
    seen: list[tuple[str, int, str | None]] = []

    def on_started(sender, job, **kwargs):
        seen.append(("started", job.id, None))
        raise RuntimeError("receiver bug")

    def on_finished(sender, job, status, **kwargs):
        seen.append(("finished", job.id, status))
        raise RuntimeError("receiver bug")

    job_started.connect(on_started)
    job_finished.connect(on_finished)
    try:
        job = tasks.add.enqueue(1, 2)
        (claimed,) = get_engine().claim_jobs(uuid.uuid4(), None, 1, 30)
        outcome = run_job(claimed)
    finally:
        job_started.disconnect(on_started)
        job_finished.disconnect(on_finished)
    assert outcome is not None and outcome.result_json == "3"  # type: ignore[union-attr]
    assert seen == [("started", job.pk, None), ("finished", job.pk, "SUCCESSFUL")]


# Runs a program with SIGINT ignored, as a shell starts a background job (`cmd &`):
# the disposition survives exec and is inherited by the program's children.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def test_demo_command_serves_admin_and_runs_jobs(tmp_path):
    """`make demo` runs example_project/rundemo.py: server + worker + admin login + jobs.

    Started with SIGINT ignored (a background job) and stopped with SIGTERM: the
    demo must not depend on the disposition it inherits, and stops its children itself.
    """
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    port = str(_free_port())
    database = tmp_path / "demo.sqlite3"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            IGNORING_SIGINT,
            str(ROOT / "example_project" / "rundemo.py"),
            "--port",
            port,
            "--every",
            "3",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its server and worker children die with it below
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"login: admin / (\S+)\)", line)
            if match:
                break
        assert match, "".join(lines)
        page = _admin_page_after_login(port, match.group(1))
        assert "Jobs" in page and "Dead letters" in page
        # Jobs really flow: successes, a dead letter, and the outbox event's subscriber job.
        wait_until(lambda: _demo_progress(database), timeout=120, interval=0.5, message="demo jobs")
        proc.send_signal(signal.SIGTERM)  # the demo stops its children and exits 0
        rest, _ = proc.communicate(timeout=60)  # EOF: no child holds its stdout any more
    finally:
        if proc.poll() is None:  # a failed run must not leave the port taken
            proc.terminate()  # the demo stops its children (own process groups)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "enqueued 8 demo jobs" in output
    # One SIGTERM each: the worker finished its jobs and unregistered, the server is gone.
    assert re.search(r"worker \S+ stopped after \d+ job\(s\)", output), output
    assert "exiting now" not in output, output
    assert "demo stopped" in output
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from django_jobs_worker").fetchone()[0] == 0
    with pytest.raises(ConnectionRefusedError):  # nobody listens on the demo's port any more
        socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()


def _demo_progress(database: Path) -> bool:
    if not database.exists():
        return False
    db = sqlite3.connect(database, timeout=20)
    try:
        statuses = dict(db.execute("select status, count(*) from django_jobs_job group by status"))
        dead = db.execute("select count(*) from django_jobs_deadletter").fetchone()[0]
        shipped = db.execute(
            "select count(*) from django_jobs_job where task_name = "
            "'example_project.demo.tasks.ship_order' and status = 'SUCCESSFUL'"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # tables not migrated yet
        return False
    finally:
        db.close()
    return statuses.get("SUCCESSFUL", 0) >= 6 and dead >= 1 and shipped >= 1


def _admin_page_after_login(port: str, password: str) -> str:
    """Log in through the real login form and return the admin index HTML."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            form = opener.open(f"{base}/admin/login/", timeout=5).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, form
    data = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": "admin",
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=data, headers={"Referer": f"{base}/admin/login/"}
    )
    return opener.open(request, timeout=10).read().decode()


def _free_port() -> int:
    """A port nobody listens on now (the demo test must not meet another demo)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
