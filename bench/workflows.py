#!/usr/bin/env python
"""The cost of workflow steps against plain jobs, in one run.

    python bench/workflows.py [--jobs 2000] [--rounds 3] [--write]

On its own PostgreSQL database (``bench_workflows``, or ``BENCH_WORKFLOWS_DB``;
created and dropped here), each drained by ``runworker --burst`` (10 threads):

- ``--jobs`` plain no-op jobs (``enqueue_many``);
- the same number of steps as 20 chains of no-op steps (``.si()``): each step's
  job is created in the transaction that completes the previous one;
- a chord of ``--jobs`` no-op members and a callback.

The three take turns, ``--rounds`` times, in alternating order (the machine is
shared: a quiet or busy minute hits all three). A rate is the steps over the
time from the first step's start to the last step's end (database clock), so
the worker's start-up is not counted. Reports the median rate of each and the
median over the rounds of the cost of a step relative to a plain job of the
same round. ``--write`` puts the table in bench/RESULTS.md (section "Workflows").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = os.environ.get("BENCH_WORKFLOWS_DB", "bench_workflows")
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


def burst() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runworker", "--burst"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])


def rate(steps: int) -> float:
    """Steps per second from the first start to the last finish (database clock)."""
    from django.db.models import Max, Min

    from django_jobs.models import Job

    span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return steps / max((span["last"] - span["first"]).total_seconds(), 1e-6)


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_jobs_job, django_jobs_workflowstep, django_jobs_workflow CASCADE"
        )


def plain(n: int) -> float:
    from bench.clients import jobs_tasks

    reset()
    jobs_tasks.noop.enqueue_many([()] * n)
    burst()
    return rate(n)


def chains(n: int) -> float:
    from bench.clients import jobs_tasks
    from django_jobs import chain
    from django_jobs.models import Workflow
    from django_jobs.status import WorkflowStatus

    reset()
    per_chain = n // CHAINS
    for _ in range(CHAINS):
        chain(*[jobs_tasks.noop.si() for _ in range(per_chain)]).enqueue()
    burst()
    done = Workflow.objects.filter(status=WorkflowStatus.SUCCESSFUL).count()
    if done != CHAINS:
        raise RuntimeError(f"{done} of {CHAINS} chains succeeded")
    return rate(CHAINS * per_chain)


def a_chord(n: int) -> float:
    from bench.clients import jobs_tasks
    from django_jobs import chord, group
    from django_jobs.models import Workflow
    from django_jobs.status import WorkflowStatus

    reset()
    chord(group(jobs_tasks.noop.si() for _ in range(n)), jobs_tasks.count.s()).enqueue()
    burst()
    workflow = Workflow.objects.get()
    if workflow.status != WorkflowStatus.SUCCESSFUL or workflow.result != n:
        raise RuntimeError(f"chord ended {workflow.status} with {workflow.result!r}")
    return rate(n + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    recreate_database(DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    n = args.jobs
    per_chain = n // CHAINS
    workloads = {
        "plain no-op jobs": plain,
        f"{CHAINS} chains of {per_chain} steps": chains,
        f"chord of {n:,} members + callback": a_chord,
    }
    rates: dict[str, list[float]] = {name: [] for name in workloads}
    loads = []
    try:
        for round_ in range(args.rounds):
            order = list(workloads) if round_ % 2 == 0 else list(reversed(workloads))
            for name in order:
                rates[name].append(workloads[name](n))
                log(f"round {round_ + 1}: {name}: {rates[name][-1]:,.0f} steps/s")
            loads.append(load())
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DB)
    base = rates["plain no-op jobs"]
    lines = [
        SECTION,
        "",
        f"`python bench/workflows.py --rounds {args.rounds}` ({time.strftime('%Y-%m-%d')}, "
        f"PostgreSQL, `runworker --burst`, 10 threads, {n:,} steps each, the three taking "
        f"turns in alternating order; load at the end of each round: {'; '.join(loads)}; "
        "the machine was shared with other engineers' tests).",
        "",
        "| workload | steps/s, median (range) | cost per step vs a plain job of the same round, "
        "median (range) |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        costs = [p / r for p, r in zip(base, values, strict=True)]
        lines.append(
            f"| {name} | {statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f}) "
            f"| {statistics.median(costs):.2f}x ({min(costs):.2f}-{max(costs):.2f}) |"
        )
    chain_costs = [
        p / r for p, r in zip(base, rates[f"{CHAINS} chains of {per_chain} steps"], strict=True)
    ]
    lines += [
        "",
        f"Cost per chain step relative to a plain job (same run): "
        f"**{statistics.median(chain_costs):.2f}x** (median of {args.rounds} rounds).",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
