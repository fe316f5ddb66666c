#!/usr/bin/env python
"""Async tasks on the worker's event loop against threads and against the peers, in one run.

    python bench/async_tasks.py [--jobs 10000] [--sleep 0.05] [--rounds 2] [--write]

Drains of ``--jobs`` jobs that each wait ``--sleep`` seconds, one worker
process each, on PostgreSQL (a database per system, ``wt_async_bench*`` by
default: ``DATABASE_URL``'s name is the prefix):

- django_jobs, ``async def`` tasks (``await asyncio.sleep``) on the event loop,
  ``runworker`` defaults (10 threads, ``--async-concurrency 100``);
- django_jobs, plain tasks (``time.sleep``), the same worker (10 threads);
- django_jobs, plain tasks with ``--concurrency 100`` (as many threads as coroutines);
- procrastinate, an async task, ``procrastinate worker --concurrency 100``;
- pgqueuer, an async entrypoint, ``pgqueuer.run(max_concurrent_tasks=100)``.

The jobs are inserted before the worker starts; the clock runs from the first
job seen finished to the last (polled every 20 ms), so start-up is not
counted. A system still busy after ``--cap`` seconds is rated on what it
finished. The systems alternate within each round, and each row reports the
median of its rounds. ``--write`` puts the table in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Counter,
    drop_database,
    dsn,
    load,
    log,
    recreate_database,
    spawn,
    stop,
    write_results_section,
)
from bench.systems import PEERS_PY, ensure_peers_venv  # noqa: E402

SECTION = "## Async tasks"
PREFIX = urlparse(os.environ.get("DATABASE_URL", "postgres:///wt_async_bench")).path.strip("/")
CONCURRENCY = 100  # coroutines at once, for every system
POLL = 0.02


def _env(db: str, **more: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        BENCH_DB=db,
        BENCH_DSN=dsn(db),
        PGDSN=dsn(db),
        DJANGO_SETTINGS_MODULE="bench.settings_jobs",
        BENCH_DJANGO_JOBS=json.dumps({"TASK_MODULES": ["bench.clients.async_tasks"]}),
    )
    env.update(more)
    return env


class Run:
    """One row: how to set up, prefill and run one system's worker."""

    def __init__(self, label: str, db: str, remaining_sql: str, worker: list[str]) -> None:
        self.label, self.db, self.remaining_sql, self.worker = label, db, remaining_sql, worker

    def setup(self) -> None:
        recreate_database(self.db)

    def prefill(self, n: int, sleep: float) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class DjangoJobs(Run):
    def __init__(self, label: str, task: str, worker_args: list[str]) -> None:
        super().__init__(
            label,
            PREFIX,
            "SELECT count(*) FROM django_jobs_job WHERE status IN ('READY', 'RUNNING')",
            [sys.executable, "manage.py", "runworker", "-v", "0", *worker_args],
        )
        self.task = task

    def setup(self) -> None:
        super().setup()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=_env(self.db),
            check=True,
        )

    def reset(self) -> None:
        _sql(self.db, "TRUNCATE django_jobs_job, django_jobs_worker")

    def prefill(self, n: int, sleep: float) -> None:
        code = (
            "import django; django.setup()\n"
            f"from bench.clients.async_tasks import {self.task} as t\n"
            f"for s in range(0, {n}, 1000): t.enqueue_many([({sleep},)] * min(1000, {n} - s))\n"
        )
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(self.db), check=True)


class Procrastinate(Run):
    def __init__(self) -> None:
        app = "--app=bench.clients.procrastinate_async_app.app"
        super().__init__(
            f"procrastinate (async task, --concurrency {CONCURRENCY})",
            f"{PREFIX}_procrastinate",
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
            [str(PEERS_PY.parent / "procrastinate"), app, "worker", f"--concurrency={CONCURRENCY}"],
        )

    def setup(self) -> None:
        super().setup()
        _peer(self.db, "bench.clients.procrastinate_async_app", "setup")

    def reset(self) -> None:
        _sql(self.db, "TRUNCATE procrastinate_jobs CASCADE")

    def prefill(self, n: int, sleep: float) -> None:
        _peer(self.db, "bench.clients.procrastinate_async_app", "prefill", str(n), str(sleep))


class PgQueuer(Run):
    def __init__(self) -> None:
        super().__init__(
            f"pgqueuer (async entrypoint, max_concurrent_tasks {CONCURRENCY})",
            f"{PREFIX}_pgqueuer",
            "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')",
            [str(PEERS_PY), "-m", "bench.clients.pgqueuer_async_app", "worker", str(CONCURRENCY)],
        )

    def setup(self) -> None:
        super().setup()
        subprocess.run(
            [str(PEERS_PY), "-m", "pgqueuer", "install"],
            cwd=ROOT,
            env=_env(self.db),
            check=True,
            capture_output=True,
        )

    def reset(self) -> None:
        _sql(self.db, "TRUNCATE pgqueuer, pgqueuer_log")

    def prefill(self, n: int, sleep: float) -> None:
        _peer(self.db, "bench.clients.pgqueuer_async_app", "prefill", str(n), str(sleep))


def _sql(db: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute(statement)


def _peer(db: str, module: str, *args: str) -> None:
    subprocess.run(
        [str(PEERS_PY), "-m", module, *args],
        cwd=ROOT,
        env=_env(db),
        check=True,
        capture_output=True,
        timeout=600,
    )


def drain(run: Run, n: int, sleep: float, cap: float) -> tuple[float, int]:
    """Jobs per second of one drain, and how many finished (n unless capped)."""
    run.reset()
    run.prefill(n, sleep)
    remaining = Counter(run.db, run.remaining_sql)
    proc = spawn(run.worker, _env(run.db), f"async-{run.db}.log")
    try:
        deadline = time.monotonic() + 120  # start-up
        while remaining() >= n:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{run.label}: no job finished; see bench/out/async-*.log")
            time.sleep(POLL)
        first = time.perf_counter()
        left = remaining()
        while left and time.perf_counter() - first < cap:
            time.sleep(POLL)
            left = remaining()
        elapsed = time.perf_counter() - first
    finally:
        stop([proc])
        remaining.close()
    done = n - left
    return done / elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cap", type=float, default=300.0)
    parser.add_argument("--only", default="", help="run the rows whose label contains this")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    ensure_peers_venv()
    runs: list[Run] = [
        DjangoJobs("django_jobs, async def (event loop, 100 coroutines)", "async_sleep", []),
        DjangoJobs("django_jobs, def + time.sleep (10 threads)", "thread_sleep", []),
        DjangoJobs(
            "django_jobs, def + time.sleep (--concurrency 100 threads)",
            "thread_sleep",
            ["--concurrency", "100"],
        ),
        Procrastinate(),
        PgQueuer(),
    ]
    runs = [run for run in runs if args.only in run.label]
    for db in {run.db: run for run in runs}.values():
        db.setup()
    rates: dict[str, list[float]] = {run.label: [] for run in runs}
    capped: dict[str, int] = {}
    try:
        for round_no in range(args.rounds):
            for run in runs:
                rate, done = drain(run, args.jobs, args.sleep, args.cap)
                rates[run.label].append(rate)
                if done < args.jobs:
                    capped[run.label] = done
                log(f"round {round_no + 1} {run.label}: {rate:,.0f} jobs/s (load {load()})")
    finally:
        for db in {run.db for run in runs}:
            drop_database(db)
    ideal = CONCURRENCY / args.sleep
    base = statistics.median(rates[runs[0].label])
    lines = [
        SECTION,
        "",
        f"`python bench/async_tasks.py` ({time.strftime('%Y-%m-%d')}, PostgreSQL, one worker "
        f"process per system, {args.jobs:,} jobs of {args.sleep:g} s each, median of "
        f"{args.rounds} interleaved rounds; load average {load()} at the end). The machine is "
        "shared (2 cores, other engineers' test runs alongside): compare the rows with each "
        f"other, not with other runs. 100 at once can at best do about {ideal:,.0f} jobs/s "
        "(a little more is measured: the clock starts when the first wave ends).",
        "",
        "| system | jobs/s | vs django_jobs async | rounds (jobs/s) |",
        "|---|---|---|---|",
    ]
    for run in runs:
        rate = statistics.median(rates[run.label])
        note = (
            f" (capped: {capped[run.label]:,} done in {args.cap:g} s)"
            if run.label in capped
            else ""
        )
        each = ", ".join(f"{r:,.0f}" for r in rates[run.label])
        lines.append(f"| {run.label}{note} | {rate:,.0f} | {rate / base:.2f}x | {each} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
