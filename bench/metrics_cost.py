#!/usr/bin/env python
"""The cost of worker metrics on the hot path: drains with and without
``--metrics-port``, interleaved in one run.

    python bench/metrics_cost.py [--jobs 20000] [--rounds 3] [--write]

On its own PostgreSQL database (``bench_metrics``, created and dropped here):
each round enqueues ``--jobs`` no-op jobs with ``enqueue_many`` and drains them
with ``runworker --burst`` (defaults: 10 threads), once plain and once with
``--metrics-port`` (order alternating between rounds, since this machine's
speed drifts). Reports the median jobs/s of each and the loss.
``--write`` puts the row in bench/RESULTS.md (section "Metrics cost").
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_metrics"
os.environ["BENCH_DB"] = DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")

from bench.harness import (  # noqa: E402
    drop_database,
    load,
    log,
    recreate_database,
    write_results_section,
)

SECTION = "## Metrics cost"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drain(jobs: int, metrics: bool) -> float:
    from django.db import connection

    from bench.clients import jobs_tasks

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_jobs_job")
    jobs_tasks.noop.enqueue_many([()] * jobs)
    args = [sys.executable, str(ROOT / "manage.py"), "runworker", "--burst"]
    if metrics:
        args += ["--metrics-port", str(free_port())]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=dict(os.environ), capture_output=True, timeout=900)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_jobs_job WHERE status = 'SUCCESSFUL'")
        (finished,) = cursor.fetchone()
    if finished != jobs:
        raise RuntimeError(f"drained {finished} of {jobs}")
    return jobs / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    recreate_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    plain: list[float] = []
    measured: list[float] = []
    try:
        for round_ in range(args.rounds):
            order = [False, True] if round_ % 2 == 0 else [True, False]
            for metrics in order:
                rate = drain(args.jobs, metrics)
                (measured if metrics else plain).append(rate)
                log(f"round {round_ + 1}: {'--metrics-port' if metrics else 'plain'} {rate:,.0f}/s")
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DB)
    a, b = statistics.median(plain), statistics.median(measured)
    row = (
        f"| drain {args.jobs:,} no-op jobs, `runworker --burst`, median of {args.rounds} "
        f"| {a:,.0f}/s | {b:,.0f}/s | {100 * (a - b) / a:+.1f}% loss (load {load()}) |"
    )
    section = "\n".join(
        [
            SECTION,
            "",
            f"`python bench/metrics_cost.py` ({time.strftime('%Y-%m-%d')}, PostgreSQL, "
            "rounds interleaved; the goal is under 3% loss).",
            "",
            "| workload | plain | with --metrics-port | cost |",
            "|---|---|---|---|",
            row,
            "",
        ]
    )
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
