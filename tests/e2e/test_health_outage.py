"""Health when the database goes down: a private PostgreSQL server the test stops.

The test runs ``initdb`` into a temporary directory (as the ``postgres`` OS
user when run as root: PostgreSQL refuses root), starts it on a free port,
migrates a database there, and points both ``django_jobs.views.health`` (the
``jobs`` alias, in this process) and a real ``runworker --health-port`` at it.
``pg_ctl stop -m immediate`` is an outage as a crash looks: connections are
cut, nothing is shut down politely. Then the server comes back.

Missing PostgreSQL server binaries fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.test import Client, override_settings

from django_jobs.models import Job
from django_jobs.observability.snapshot import clear_cache
from django_jobs.status import JobStatus
from tests.conftest import ROOT, wait_until, worker_env
from tests.testapp import tasks

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "jobs"]),
    pytest.mark.postgres,
]

DATABASE = "jobs_private"
LEASE = 4.0  # seconds: the worker's probe goes unhealthy this long after its last beat


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def server_bin() -> Path | None:
    """Debian's versioned server binaries (newest first), else initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = candidates[0] if candidates else shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin: Path
    datadir: Path
    port: int
    user: str | None  # the OS user the server runs as (None: this one)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def pg_ctl(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.datadir), *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"pg_ctl {args[0]}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("start", "-w", "-l", str(self.datadir / "server.log"), "-o", options)

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w")


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivatePostgres]:
    """One initdb + migrate for the module's tests (about half of each test's time)."""
    binaries = server_bin()
    if binaries is None:
        unavailable("PostgreSQL server binaries (initdb) not found: apt-get install postgresql")
    assert binaries is not None
    user = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no postgres OS user to run initdb as")
        user = "postgres"
    datadir = Path(tempfile.mkdtemp(prefix="django-jobs-pg-"))
    if user is not None:
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
    server = PrivatePostgres(binaries, datadir, free_port(), user)
    initdb = subprocess.run(
        [str(binaries / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-N"],
        user=user,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert initdb.returncode == 0, initdb.stdout + initdb.stderr
    server.start()
    try:
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")  # a test constant name
        migrate = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--database", "default", "-v0"],
            cwd=ROOT,
            env=private_env(server),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield server
    finally:
        subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(datadir), "stop", "-m", "immediate"],
            user=user,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(datadir, ignore_errors=True)


def _running(server: PrivatePostgres) -> bool:
    done = subprocess.run(
        [str(server.bin / "pg_ctl"), "-D", str(server.datadir), "status"],
        user=server.user,
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


@pytest.fixture
def private_postgres(private_server: PrivatePostgres) -> PrivatePostgres:
    """The module's server, up, with empty django_jobs tables: each test starts clean."""
    if not _running(private_server):  # a test that failed mid-outage
        private_server.start()
    with psycopg.connect(
        host="127.0.0.1", port=private_server.port, user="postgres", dbname=DATABASE
    ) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename LIKE 'django_jobs_%'"
            )
        ]
        # Test tables of a private server no other process uses between tests.
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    return private_server


def private_env(server: PrivatePostgres) -> dict[str, str]:
    """A subprocess's environment: tests.settings pointed at the private server."""
    return worker_env(
        DJANGO_JOBS_TEST_DB="postgres",
        DATABASE_URL=server.url,
        DJANGO_JOBS_TEST_DB_NAME=DATABASE,
        DJANGO_JOBS_TEST_LEASE=str(LEASE),
        DJANGO_JOBS_TEST_HEARTBEAT="0.5",
    )


@pytest.fixture
def jobs_alias_on(private_postgres: PrivatePostgres) -> Iterator[None]:
    """The ``jobs`` alias of this process points at the private server meanwhile."""
    conn = connections["jobs"]
    saved = dict(conn.settings_dict)
    conn.close()
    conn.settings_dict.update(
        HOST="127.0.0.1",
        PORT=str(private_postgres.port),
        NAME=DATABASE,
        USER="postgres",
        PASSWORD="",
        OPTIONS={**saved.get("OPTIONS", {}), "connect_timeout": 3},
    )
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


def view_health(client: Client) -> tuple[int, dict[str, Any]]:
    clear_cache()
    response = client.get("/jobs/health?database=jobs")
    return response.status_code, response.json()


def probe(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("pool", ["thread", "process"])
@override_settings(DJANGO_JOBS={"LEASE_SECONDS": LEASE, "METRICS_CACHE_SECONDS": 0})
def test_health_is_503_while_the_database_is_down_and_recovers(
    private_postgres, jobs_alias_on, start_worker, pool
):
    health_port = free_port()
    worker = start_worker(
        "--health-port",
        str(health_port),
        "--pool",
        pool,
        "--concurrency",
        "2",
        env=private_env(private_postgres),
    )
    client = Client()
    wait_until(lambda: view_health(client)[0] == 200, timeout=60, message="healthy view")
    wait_until(lambda: probe_or_none(health_port) == 200, timeout=30, message="healthy probe")
    code, body = view_health(client)
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["workers"]["live"] == 1

    private_postgres.stop()
    stopped = time.monotonic()
    code, body = view_health(client)
    assert code == 503, body
    assert body["healthy"] is False
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "OperationalError",
        "message": "the database 'jobs' did not answer",
    }
    # The worker's probe: unhealthy once its last heartbeat is a lease old.
    wait_until(lambda: probe(health_port)[0] == 503, timeout=LEASE + 15, message="503 probe")
    code, verdict = probe(health_port)
    assert verdict["alive"] is False and verdict["heartbeat_age"] >= LEASE
    assert time.monotonic() - stopped >= LEASE - 0.5  # not before the lease ran out
    # The worker waits out the outage in one process: it neither exits nor restarts.
    time.sleep(3)
    assert worker.popen.poll() is None, worker.output()[-3000:]
    log = worker.output()
    assert "heartbeat failed" in log and "database unavailable" in log

    private_postgres.start()
    wait_until(lambda: view_health(client)[0] == 200, timeout=60, message="view recovered")
    wait_until(lambda: probe(health_port)[0] == 200, timeout=30, message="probe recovered")
    assert probe(health_port)[1]["alive"] is True
    # And it runs jobs again (enqueued on the private server through "jobs").
    job = tasks.add.using(database="jobs").enqueue(2, 3)
    wait_until(
        lambda: Job.objects.using("jobs").get(pk=job.pk).status == JobStatus.SUCCESSFUL,
        timeout=30,
        message="a job run after the outage",
    )
    assert Job.objects.using("jobs").get(pk=job.pk).result == 5
    assert worker.popen.poll() is None
    assert worker.terminate() == 0  # and it still stops cleanly


def probe_or_none(port: int) -> int | None:
    try:
        return probe(port)[0]
    except OSError:
        return None  # not listening yet


def test_status_watch_rides_out_the_outage(private_postgres, start_worker, tmp_path):
    """``jobs status --watch`` shows the outage as a line and draws again after it."""
    start_worker(env=private_env(private_postgres))
    out_path = tmp_path / "watch.out"
    with out_path.open("w") as out:
        watch = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "jobs", "status", "--watch", "0.3"],
            cwd=ROOT,
            env=private_env(private_postgres),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:

        def shown(text: str) -> bool:
            return text in out_path.read_text()

        wait_until(lambda: shown("Workers (1 live, 0 stale)"), timeout=60, message="a live worker")
        private_postgres.stop()
        wait_until(
            lambda: shown("database 'default' unavailable: OperationalError"),
            timeout=30,
            message="the outage line",
        )
        assert watch.poll() is None  # still watching
        private_postgres.start()
        before = out_path.read_text().count("django_jobs status:")
        wait_until(
            lambda: out_path.read_text().count("django_jobs status:") > before + 1,
            timeout=60,
            message="tables again after the restart",
        )
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
    stderr = watch.stderr.read() if watch.stderr else ""
    assert "Traceback" not in stderr, stderr
    text = out_path.read_text()
    assert "\x1b[" not in text  # not a terminal: no clearing, no colours
    # Frames are separated by a blank line; the outage lines sit between tables.
    outage = text.index("unavailable")
    assert text.index("django_jobs status:") < outage < text.rindex("django_jobs status:")
