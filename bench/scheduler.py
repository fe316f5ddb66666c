#!/usr/bin/env python
"""The scheduler's cost: idle, and with 1,000 schedules firing every second.

    python bench/scheduler.py [--seconds 30] [--idle-seconds 60] [--write]

On its own PostgreSQL database (``bench_scheduler``, created and dropped here):

1. **Idle cluster**: 10 hourly schedules, none due; one scheduler runs in this
   process for ``--idle-seconds`` with every statement counted (Django's
   ``execute_wrapper``): statements and transactions per minute.
2. **1,000 schedules every second**: ``manage.py runscheduler`` with 1, then
   3, processes for ``--seconds``: jobs per second enqueued against the ticks
   due, lag (the job's ``enqueued_at`` minus its tick, both the database's
   clock) p50 / p99 / max, and duplicates (must be 0).

``--write`` puts the table in bench/RESULTS.md (section "Scheduler").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_scheduler"
os.environ["BENCH_DB"] = DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")

from bench.harness import (  # noqa: E402
    drop_database,
    load,
    log,
    recreate_database,
    write_results_section,
)

TASK = "bench.clients.jobs_tasks.noop"
SECTION = "## Scheduler"


def setup() -> None:
    recreate_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def idle(seconds: float) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from django_jobs.models import Schedule
    from django_jobs.scheduling.service import SchedulerService

    now = timezone.now()
    Schedule.objects.bulk_create(
        Schedule(
            name=f"hourly-{i}",
            task_name=TASK,
            interval=timedelta(hours=1),
            next_run_at=now + timedelta(hours=1),
        )
        for i in range(10)
    )
    statements = 0
    commits = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements, commits
        statements += 1
        commits += sql.lstrip().upper().startswith(("COMMIT", "RELEASE"))
        return execute(sql, params, many, context)

    service = SchedulerService("default")
    timer = threading.Timer(seconds, service.stop)
    timer.start()
    with connection.execute_wrapper(count):
        service.run()  # this thread, until the timer stops it
    passes = service.scheduler.passes
    per_minute = 60.0 / seconds
    return {
        "statements_per_minute": statements * per_minute,
        "passes_per_minute": passes * per_minute,
        "load": load(),
    }


def firing(processes: int, seconds: float, schedules: int = 1000) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from django_jobs.models import Job, Schedule

    Job.objects.all().delete()
    Schedule.objects.all().delete()
    start = timezone.now().replace(microsecond=0) + timedelta(seconds=3)
    Schedule.objects.bulk_create(
        Schedule(name=f"s{i}", task_name=TASK, interval=timedelta(seconds=1), next_run_at=start)
        for i in range(schedules)
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runscheduler"],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "bench.settings_jobs"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    time.sleep(3 + seconds)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        if proc.returncode not in (0, -15):
            raise RuntimeError(f"runscheduler exited {proc.returncode}: {err.decode()[-2000:]}")
    # Ticks of the measured window only: from the first whole second to seconds later.
    window_end = start + timedelta(seconds=int(seconds))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(DISTINCT (meta->>'schedule', run_after)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag)
            FROM (SELECT meta, run_after,
                         EXTRACT(EPOCH FROM enqueued_at - run_after) * 1000 AS lag
                  FROM django_jobs_job WHERE run_after >= %s AND run_after < %s) AS j
            """,
            [start, window_end],
        )
        jobs, distinct, p50, p99, worst = cursor.fetchone()
    due = schedules * int(seconds)
    return {
        "processes": processes,
        "due": due,
        "jobs": jobs,
        "duplicates": jobs - distinct,
        "ticks_per_second": jobs / int(seconds),
        "lag_p50_ms": p50,
        "lag_p99_ms": p99,
        "lag_max_ms": worst,
        "load": load(),
    }


def table(idle_result: dict[str, Any], runs: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        SECTION,
        "",
        f"`python bench/scheduler.py` ({time.strftime('%Y-%m-%d')}, PostgreSQL, "
        f"{os.cpu_count()} cores). Idle: 10 hourly schedules, none due, one scheduler, "
        f"SCHEDULER_MAX_SLEEP 30 s. Busy: 1,000 schedules every 1 s for {seconds:g} s; "
        "lag = the job's enqueued_at minus its tick (database clock).",
        "",
        "| workload | result |",
        "|---|---|",
        f"| idle cluster, 1 scheduler | {idle_result['statements_per_minute']:.1f} statements/min "
        f"({idle_result['passes_per_minute']:.1f} passes/min; load {idle_result['load']}) |",
    ]
    for run in runs:
        lines.append(
            f"| 1,000 schedules x 1 s, {run['processes']} scheduler process(es) | "
            f"{run['ticks_per_second']:,.0f} ticks/s of 1,000 due ({run['jobs']:,} of "
            f"{run['due']:,} jobs, {run['duplicates']} duplicates); lag p50 "
            f"{run['lag_p50_ms']:.0f} ms, p99 {run['lag_p99_ms']:.0f} ms, max "
            f"{run['lag_max_ms']:.0f} ms (load {run['load']}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    setup()
    try:
        log(f"idle cluster for {args.idle_seconds:g}s")
        idle_result = idle(args.idle_seconds)
        log(f"  {idle_result}")
        runs = []
        for processes in (1, 3):
            log(f"1,000 schedules every second, {processes} runscheduler process(es)")
            runs.append(firing(processes, args.seconds))
            log(f"  {runs[-1]}")
        section = table(idle_result, runs, args.seconds)
        print(section)
        if args.write:
            write_results_section(SECTION, section)
        lags = [r["lag_p99_ms"] for r in runs]
        log(f"done: p99 lag median {statistics.median(lags):.0f} ms")
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DB)


if __name__ == "__main__":
    main()
