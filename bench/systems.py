"""The systems under test: how to run each one's clients and workers.

django_jobs runs from the project's venv; the peers run from
``bench/peers/venv`` (created by :func:`ensure_peers_venv`), each with its
own database and its real worker command on its defaults.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.harness import BENCH, ROOT, dsn, log

PEERS_VENV = BENCH / "peers" / "venv"
PEERS_PY = PEERS_VENV / "bin" / "python"
# Pinned so a run is reproducible; bump deliberately.
PEER_REQUIREMENTS = [
    "Django==6.1.3",
    "psycopg[binary,pool]==3.3.9",
    "procrastinate==3.10.0",
    "django-q2==1.11.1",
    "django-tasks-db==0.13.0",
    "pgqueuer==1.6.0",
    "asyncpg==0.32.0",
]


def ensure_peers_venv() -> None:
    """Create bench/peers/venv with the pinned peers unless it is up to date."""
    stamp = PEERS_VENV / "bench-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating the peers' venv in {PEERS_VENV.relative_to(ROOT)} (pip install, ~1 min)")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PEER_REQUIREMENTS], check=True)
    stamp.write_text(wanted)


@dataclasses.dataclass(frozen=True)
class System:
    key: str
    label: str
    db: str
    python: Path
    client: str  # module run with -m
    remaining_sql: str  # jobs not finished yet (ready or running)
    reset_sql: str
    workers: Callable[[int], list[list[str]]]  # worker commands for N processes
    settings: str  # how it runs, for the results table
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    ready_sql: str | None = None  # rows counting live worker processes, when known
    # Where its clients and workers run (cwd and PYTHONPATH): another checkout
    # of this repository for bench/compare.py, this one otherwise.
    root: Path = ROOT

    def env(self, **more: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(self.root),
            PYTHONUNBUFFERED="1",
            BENCH_DB=self.db,
            BENCH_DSN=dsn(self.db),
            PGDSN=dsn(self.db),
            BENCH_LATENCY_FILE=str(BENCH / "out" / f"latency-{self.key}.txt"),
        )
        env.update(self.extra_env)
        env.update(more)
        return env

    def client_cmd(self, *args: str) -> list[str]:
        return [str(self.python), "-m", self.client, *args]


def _bin(name: str) -> str:
    return str(PEERS_VENV / "bin" / name)


DJANGO_JOBS = System(
    key="django_jobs",
    label="django_jobs",
    db="bench_jobs",
    python=Path(sys.executable),
    client="bench.clients.django_jobs_client",
    remaining_sql="SELECT count(*) FROM django_jobs_job WHERE status IN ('READY', 'RUNNING')",
    reset_sql="TRUNCATE django_jobs_job, django_jobs_worker",
    workers=lambda n: [[sys.executable, "manage.py", "runworker", "-v", "0"]] * n,
    settings="runworker defaults: 10 threads, LISTEN/NOTIFY, poll 1 s",
    extra_env={"DJANGO_SETTINGS_MODULE": "bench.settings_jobs"},
    ready_sql="SELECT count(*) FROM django_jobs_worker",
)

PGQUEUER = System(
    key="pgqueuer",
    label="pgqueuer",
    db="bench_pgqueuer",
    python=PEERS_PY,
    client="bench.clients.pgqueuer_client",
    remaining_sql="SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')",
    reset_sql="TRUNCATE pgqueuer, pgqueuer_log",
    workers=lambda n: [[str(PEERS_PY), "-m", "bench.clients.pgqueuer_worker"]] * n,
    settings=(
        "`pgqueuer.run()` (what `pgq run` calls) defaults: asyncpg, batch 10, LISTEN/NOTIFY; "
        "async no-op entrypoint"
    ),
)

PROCRASTINATE = System(
    key="procrastinate",
    label="procrastinate",
    db="bench_procrastinate",
    python=PEERS_PY,
    client="bench.clients.procrastinate_client",
    remaining_sql="SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
    reset_sql="TRUNCATE procrastinate_jobs CASCADE",
    workers=lambda n: (
        [[_bin("procrastinate"), "--app=bench.clients.procrastinate_app.app", "worker"]] * n
    ),
    settings="`procrastinate worker` defaults (concurrency 1, LISTEN/NOTIFY), psycopg connector",
)

TASKS_DB = System(
    key="tasksdb",
    label="django-tasks-db",
    db="bench_tasksdb",
    python=PEERS_PY,
    client="bench.clients.tasksdb_client",
    remaining_sql=(
        "SELECT count(*) FROM django_tasks_database_dbtaskresult"
        " WHERE status IN ('READY', 'RUNNING')"
    ),
    reset_sql="TRUNCATE django_tasks_database_dbtaskresult",
    workers=lambda n: [[str(PEERS_PY), "-m", "django", "db_worker"]] * n,
    settings="`manage.py db_worker` defaults (poll 1 s), CONN_MAX_AGE 0",
    extra_env={"DJANGO_SETTINGS_MODULE": "bench.settings_peers", "BENCH_PEER": "tasksdb"},
)

DJANGO_Q = System(
    key="djangoq",
    label="django-q2",
    db="bench_djangoq",
    python=PEERS_PY,
    client="bench.clients.djangoq_client",
    remaining_sql="SELECT count(*) FROM django_q_ormq",
    reset_sql="TRUNCATE django_q_ormq, django_q_task",
    # One qcluster with N worker processes (BENCH_WORKERS is read by settings_peers).
    workers=lambda n: [[str(PEERS_PY), "-m", "django", "qcluster"]],
    settings="`manage.py qcluster`, ORM broker, defaults (poll 0.2 s), CONN_MAX_AGE 0",
    extra_env={"DJANGO_SETTINGS_MODULE": "bench.settings_peers", "BENCH_PEER": "djangoq"},
)

ALL = [DJANGO_JOBS, PGQUEUER, PROCRASTINATE, TASKS_DB, DJANGO_Q]
