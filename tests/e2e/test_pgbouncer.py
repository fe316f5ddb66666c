"""The worker e2e tests again, through PgBouncer in transaction mode.

The test starts Debian's ``pgbouncer`` on a free local port in front of the
test server (its own config and auth files in a temporary directory, as the
``postgres`` user when run as root: PgBouncer refuses root) and points both
the test process and every worker subprocess at it, with the settings the
docs prescribe (docs/howto/pgbouncer.md): ``USE_NOTIFY: False`` (LISTEN
needs a session) and ``PREPARED_STATEMENTS`` only on PgBouncer >= 1.22 with
``max_prepared_statements``; before 1.22 it is off.

The representative tests are imported from their modules, so pytest runs
them a second time here with this module's fixtures: enqueue and results,
a long-running worker picking up new jobs by polling, a burst drain, retries,
SIGKILL recovery, a paused worker's late writes, the outbox relay.

Missing pgbouncer fails under ``CI=true`` (``make test`` installs it) and skips
with the reason elsewhere.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from tests import conftest
from tests.e2e.test_burst_drain import test_burst_with_one_slot_runs_every_job
from tests.e2e.test_crash_recovery import (
    test_paused_worker_cannot_overwrite_an_outcome_after_losing_its_lease,
    test_sigkill_mid_50_jobs_they_complete_elsewhere_with_attempts_counted,
)
from tests.e2e.test_outbox_relay import (
    start_relay,
    test_committed_events_reach_each_subscriber_once_rolled_back_never,
    test_relay_killed_mid_batch_loses_and_duplicates_nothing,
)
from tests.e2e.test_worker import (
    test_burst_drains_jobs_and_stores_results,
    test_long_running_worker_picks_up_new_jobs,
    test_retry_then_success_with_backoff,
    test_scheduled_job_waits_for_run_after,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

PGBOUNCER = os.environ.get(
    "DJANGO_JOBS_PGBOUNCER", shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
)
# The first PgBouncer that keeps prepared statements per client in transaction mode.
PREPARED_SINCE = (1, 22)

__all__ = [
    "start_relay",
    "test_burst_drains_jobs_and_stores_results",
    "test_burst_with_one_slot_runs_every_job",
    "test_committed_events_reach_each_subscriber_once_rolled_back_never",
    "test_long_running_worker_picks_up_new_jobs",
    "test_paused_worker_cannot_overwrite_an_outcome_after_losing_its_lease",
    "test_relay_killed_mid_batch_loses_and_duplicates_nothing",
    "test_retry_then_success_with_backoff",
    "test_scheduled_job_waits_for_run_after",
    "test_sigkill_mid_50_jobs_they_complete_elsewhere_with_attempts_counted",
]


@dataclass(frozen=True)
class Bouncer:
    port: int
    version: tuple[int, int]
    log: Path

    @property
    def prepared(self) -> bool:
        return self.version >= PREPARED_SINCE


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bouncer_version() -> tuple[int, int]:
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"PgBouncer (\d+)\.(\d+)", out.stdout + out.stderr)
    if not found:
        raise RuntimeError(f"unexpected `pgbouncer --version` output: {out.stdout!r}")
    return int(found[1]), int(found[2])


def config(workdir: Path, port: int, version: tuple[int, int]) -> str:
    server = settings.DATABASES["default"]
    lines = [
        "[databases]",
        # Every database name passes through, so the test database pytest-django
        # created is reachable under its own name.
        f"* = host={server.get('HOST') or '127.0.0.1'} port={server.get('PORT') or 5432}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {workdir / 'userlist.txt'}",
        "pool_mode = transaction",
        "max_client_conn = 500",
        # The test server is shared: at most this many server connections.
        "default_pool_size = 30",
        "server_lifetime = 3600",
        f"logfile = {workdir / 'pgbouncer.log'}",
        f"admin_users = {settings.DATABASES['default'].get('USER') or 'root'}",
    ]
    if version >= PREPARED_SINCE:
        lines.append("max_prepared_statements = 200")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[Bouncer]:
    if not Path(PGBOUNCER).exists():
        unavailable(
            f"pgbouncer not found at {PGBOUNCER}: install it with `apt-get install -y pgbouncer` "
            "(`make pgbouncer-deps`), or point DJANGO_JOBS_PGBOUNCER at it"
        )
    version = bouncer_version()
    workdir = Path(tempfile.mkdtemp(prefix="django-jobs-pgbouncer-"))
    port = free_port()
    user = str(settings.DATABASES["default"].get("USER") or "root")
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(config(workdir, port, version))
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root.
        owner = pwd.getpwnam("postgres")
        for path in [workdir, *workdir.iterdir()]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    log = workdir / "pgbouncer.log"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace") if log.exists() else "(no log)"
                    unavailable(f"pgbouncer did not start on port {port}:\n{text[-2000:]}")
                time.sleep(0.05)
        yield Bouncer(port, version, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _through_pgbouncer(pgbouncer: Bouncer, transactional_db: None) -> Iterator[None]:
    """The test's connection and every worker's go through PgBouncer."""
    default = connections["default"]
    server = default.settings_dict
    saved = (server["HOST"], server["PORT"])
    prepared = "1" if pgbouncer.prepared else "0"
    conftest.WORKER_ENV_OVERRIDES.update(
        DATABASE_URL=f"postgres://{server['USER']}@127.0.0.1:{pgbouncer.port}/{server['NAME']}",
        DJANGO_JOBS_TEST_USE_NOTIFY="0",
        DJANGO_JOBS_TEST_PREPARED=prepared,
    )
    options = {**settings.DJANGO_JOBS, "USE_NOTIFY": False, "PREPARED_STATEMENTS": prepared == "1"}
    default.close()
    server["HOST"], server["PORT"] = "127.0.0.1", str(pgbouncer.port)
    try:
        with override_settings(DJANGO_JOBS=options):
            with default.cursor() as cursor:
                cursor.execute("SHOW port")  # PgBouncer answers with the server's port
                assert cursor.fetchone() is not None
            yield
    finally:
        conftest.WORKER_ENV_OVERRIDES.clear()
        default.close()
        server["HOST"], server["PORT"] = saved


def test_everything_here_really_goes_through_pgbouncer(pgbouncer: Bouncer, start_worker) -> None:
    """The worker's and the test's connections are PgBouncer clients."""
    from django_jobs.models import Job
    from django_jobs.status import JobStatus
    from tests.testapp import tasks

    worker = start_worker("--concurrency", "2")
    job = tasks.add.enqueue(2, 3)
    conftest.wait_until(
        lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCESSFUL, 20, message="job done"
    )
    # PgBouncer's admin console lists its clients: this test and the worker.
    import psycopg  # only this test talks to the admin console

    user = settings.DATABASES["default"]["USER"]
    with psycopg.connect(
        host="127.0.0.1", port=pgbouncer.port, dbname="pgbouncer", user=user, autocommit=True
    ) as admin:
        clients = admin.execute("SHOW CLIENTS").fetchall()
    assert len(clients) >= 3, clients  # admin + test + worker (claim loop, heartbeat, ...)
    assert worker.terminate() == 0


def test_prepared_statements_left_on_are_rejected_before_1_22_and_the_log_says_what_to_do(
    pgbouncer: Bouncer, start_worker
) -> None:
    """docs/howto/pgbouncer.md: before 1.22 the rejections are logged with the fix named;
    from 1.22 with max_prepared_statements, nothing is rejected."""
    from django_jobs.models import Job
    from django_jobs.status import JobStatus
    from tests.testapp import tasks

    jobs = tasks.add.enqueue_many([(1, 2)] * 600)
    workers = [
        start_worker("--concurrency", "4", env={"DJANGO_JOBS_TEST_PREPARED": "1"}) for _ in range(2)
    ]

    def rejected() -> bool:
        return any("rejected a statement" in worker.output() for worker in workers)

    if pgbouncer.prepared:
        conftest.wait_until(
            lambda: (
                Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.SUCCESSFUL).count()
                == len(jobs)
            ),
            60,
            message="every job, with prepared statements kept per client",
        )
        assert not rejected(), [worker.output()[-2000:] for worker in workers]
    else:
        conftest.wait_until(rejected, 30, message="a prepared statement rejected by PgBouncer")
        line = next(
            text
            for worker in workers
            for text in worker.output().splitlines()
            if "rejected a statement" in text
        )
        assert "PREPARED_STATEMENTS'] = False" in line, line
    for worker in workers:
        worker.kill()
