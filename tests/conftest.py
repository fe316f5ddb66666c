"""Shared fixtures: real worker subprocesses against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests import fast_flush

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = os.environ.get("DJANGO_JOBS_TEST_DB", "sqlite")


# `make test` runs the suite twice, on SQLite then on PostgreSQL, with
# DJANGO_JOBS_TEST_SPLIT=1: a test that cannot touch the test database (no
# django_db marker or database fixture: pytest-django refuses it any query)
# gives the same answer on both, so it runs in the SQLite pass only; browser
# tests run in the PostgreSQL pass only (the production database, and the
# live server, worker subprocess and test share it without SQLite's
# single-writer lock). Without the variable every pass runs everything it can.
SPLIT = os.environ.get("DJANGO_JOBS_TEST_SPLIT", "") == "1"
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}
    | {"live_server"}
)


def uses_database(item: pytest.Item) -> bool:
    """Whether pytest-django lets ``item`` query the test database."""
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(DATABASE_FIXTURES & fixtures)


def runs_in_this_pass(item: pytest.Item) -> bool:
    if TEST_DB != "postgres":
        # PostgreSQL-only tests run in the PostgreSQL pass of `make test`; in the
        # SQLite pass they are deselected (not skipped: they never count as green).
        if item.get_closest_marker("postgres"):
            return False
        return not (SPLIT and item.get_closest_marker("browser"))
    if not SPLIT or item.get_closest_marker("postgres") or item.get_closest_marker("browser"):
        return True
    return uses_database(item)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        (kept if runs_in_this_pass(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionstart(session: pytest.Session) -> None:
    if TEST_DB == "postgres":
        import psycopg

        url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/test")
        try:
            # The server must be up; the database itself is created by pytest-django.
            psycopg.connect(url, dbname="postgres", connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            pytest.exit(
                f"PostgreSQL is required for this run and is not reachable at {url}: {exc}", 2
            )


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = ""
) -> Any:
    """Poll ``predicate`` until truthy; fail the test with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


# Environment every worker subprocess gets on top of its test's own: a module
# that runs the e2e tests through something else (tests/e2e/test_pgbouncer.py:
# PgBouncer's address, USE_NOTIFY off) fills it for its tests and empties it after.
WORKER_ENV_OVERRIDES: dict[str, str] = {}


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJANGO_JOBS_TEST_DB=TEST_DB,
        DJANGO_JOBS_TEST_DB_NAME=str(settings.DATABASES["default"]["NAME"]),
        PYTHONUNBUFFERED="1",
    )
    env.update(WORKER_ENV_OVERRIDES)
    env.update(extra)
    return env


class WorkerProcess:
    """A real ``manage.py runworker`` subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runworker", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self._log.close()


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start runworker subprocesses; all are killed at teardown."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        proc = WorkerProcess(list(args), worker_env(**(env or {})), log)
        started.append(proc)
        return proc

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for proc in started:
        proc.close()
        if failed:
            sys.stderr.write(
                f"--- {proc.log_path.name} ({' '.join(proc.args)}) ---\n{proc.output()[-4000:]}\n"
            )


@pytest.fixture
def run_burst(start_worker: Callable[..., WorkerProcess]) -> Callable[..., WorkerProcess]:
    """Run ``runworker --burst`` to completion and return the finished process."""

    def run(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> WorkerProcess:
        proc = start_worker("--burst", *args, env=env)
        code = proc.wait(timeout)
        assert code == 0, f"runworker --burst exited {code}:\n{proc.output()[-3000:]}"
        return proc

    return run


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# The `jobs` / `outbox` fixtures come from the pytest11 entry point once the
# distribution is installed from a tree that declares it; until then from here.
pytest_plugins = ["tests.testing.load_plugin"]

fast_flush.install()  # tests/fast_flush.py: DELETE, not TRUNCATE, between transactional tests
