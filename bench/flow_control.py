"""Flow control cost: drain no-op jobs unlimited, with a per-key concurrency
limit (100 keys, limit 1) and with a rate limit set above the drain rate.

    DATABASE_URL=postgres://... python bench/flow_control.py [--jobs 20000]
        [--workers 2] [--concurrency 8] [--runs 1]

Each scenario: the jobs are enqueued into a paused queue, the workers start
and register, the queue is resumed and the clock runs until every job is
SUCCESSFUL. Uses the test settings (tests/settings.py; tasks in
tests/testapp/flow_tasks.py) on the database of DATABASE_URL, which it
migrates and empties of jobs. Do not run it while other work shares the
machine: the numbers would be noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_JOBS_TEST_DB", "postgres")

QUEUE = "bench-flow"
SCENARIOS = ("unlimited", "per-key limit 1 (100 keys)", "rate limit above drain rate")


def drain(task: Any, args: argparse.Namespace, env: dict[str, str]) -> float:
    """Seconds to drain ``args.jobs`` jobs of ``task`` with the workers."""
    from django_jobs import queues
    from django_jobs.models import FlowLane, Job, Worker
    from django_jobs.status import JobStatus

    Job.objects.all().delete()
    FlowLane.objects.all().delete()
    Worker.objects.all().delete()
    queues.pause(QUEUE)
    batch = 5000
    for start in range(0, args.jobs, batch):
        task.using(queue_name=QUEUE).enqueue_many(
            [(n,) for n in range(start, min(start + batch, args.jobs))]
        )
    command = [sys.executable, str(ROOT / "manage.py"), "runworker", "--queue", QUEUE]
    command += ["--concurrency", str(args.concurrency)]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for _ in range(args.workers)
    ]
    try:
        while Worker.objects.count() < args.workers:
            time.sleep(0.05)
        started = time.monotonic()
        queues.resume(QUEUE)
        done = Job.objects.filter(queue_name=QUEUE, status=JobStatus.SUCCESSFUL)
        while done.count() < args.jobs:
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tests.testapp import flow_tasks

    call_command("migrate", verbosity=0)
    env = dict(os.environ, DJANGO_JOBS_TEST_DB_NAME=str(settings.DATABASES["default"]["NAME"]))
    tasks = (flow_tasks.bench_free, flow_tasks.bench_keyed, flow_tasks.bench_rated)
    results: dict[str, float] = {}
    for name, task in zip(SCENARIOS, tasks, strict=True):
        seconds = statistics.median(drain(task, args, env) for _ in range(args.runs))
        results[name] = args.jobs / seconds
    base = results[SCENARIOS[0]]
    print(f"{args.jobs} no-op jobs, {args.workers} workers x {args.concurrency} threads")
    print("| drain | jobs/s | loss vs unlimited |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {(1 - rate / base) * 100:.1f}% |")


if __name__ == "__main__":
    main()
