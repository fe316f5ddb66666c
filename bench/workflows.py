#!/usr/bin/env python
"""The cost of workflow steps against plain jobs, in one run.

    python bench/workflows.py [--jobs 2000] [--write]

On its own PostgreSQL database (``bench_workflows``, created and dropped here),
each drained by ``runworker --burst`` (10 threads):

- ``--jobs`` plain no-op jobs (``enqueue_many``);
- the same number of steps as 20 chains of no-op steps (``.si()``): each step's
  job is created in the transaction that completes the previous one;
- a chord of ``--jobs`` no-op members and a callback.

Reports steps per second and the cost of a step relative to a plain job.
``--write`` puts the table in bench/RESULTS.md (section "Workflows").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_workflows"
os.environ["BENCH_DB"] = DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")

from bench.harness import (  # noqa: E402
    drop_database,
    load,
    log,
    recreate_database,
    write_results_section,
)

SECTION = "## Workflows"
CHAINS = 20


def burst() -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runworker", "--burst"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])
    return time.perf_counter() - started


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_jobs_job, django_jobs_workflowstep, django_jobs_workflow CASCADE"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    recreate_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    from bench.clients import jobs_tasks
    from django_jobs import chain, chord, group
    from django_jobs.models import Workflow
    from django_jobs.status import WorkflowStatus

    call_command("migrate", verbosity=0)
    n = args.jobs
    rows: list[tuple[str, float]] = []
    try:
        reset()
        jobs_tasks.noop.enqueue_many([()] * n)
        rows.append(("plain no-op jobs", n / burst()))
        log(f"plain: {rows[-1][1]:,.0f}/s")

        reset()
        per_chain = n // CHAINS
        for _ in range(CHAINS):
            chain(*[jobs_tasks.noop.si() for _ in range(per_chain)]).enqueue()
        rows.append((f"{CHAINS} chains of {per_chain} steps", CHAINS * per_chain / burst()))
        done = Workflow.objects.filter(status=WorkflowStatus.SUCCESSFUL).count()
        if done != CHAINS:
            raise RuntimeError(f"{done} of {CHAINS} chains succeeded")
        log(f"chains: {rows[-1][1]:,.0f} steps/s")

        reset()
        chord(group(jobs_tasks.noop.si() for _ in range(n)), jobs_tasks.count.s()).enqueue()
        rows.append((f"chord of {n:,} members + callback", (n + 1) / burst()))
        workflow = Workflow.objects.get()
        if workflow.status != WorkflowStatus.SUCCESSFUL or workflow.result != n:
            raise RuntimeError(f"chord ended {workflow.status} with {workflow.result!r}")
        log(f"chord: {rows[-1][1]:,.0f} steps/s")
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DB)
    plain = rows[0][1]
    lines = [
        SECTION,
        "",
        f"`python bench/workflows.py` ({time.strftime('%Y-%m-%d')}, PostgreSQL, "
        f"`runworker --burst`, 10 threads, {n:,} steps each; load {load()}).",
        "",
        "| workload | steps/s | cost per step vs a plain job |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {rate:,.0f} | {plain / rate:.2f}x |" for name, rate in rows]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
