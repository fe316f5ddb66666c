"""Flow control cost: drain no-op jobs unlimited, with a per-key concurrency
limit (100 keys, limit 1) and with a rate limit set above the drain rate;
and what one claim costs in each case (statements, milliseconds).

    DATABASE_URL=postgres://... python bench/flow_control.py [--jobs 10000]
        [--workers 2] [--concurrency 8] [--rounds 3] [--baseline DIR] [--write]

Each drain: the jobs are enqueued into a paused queue, the workers start and
register, the queue is resumed and the clock runs until every job is
SUCCESSFUL. The three drains run interleaved, ``--rounds`` times, and the
medians are reported (the machine may be shared: compare within one run).
``--baseline DIR`` also runs every drain with the workers of another
checkout (e.g. ``git archive REV | tar -x -C DIR``) on the same database, in
the same rounds. The claim cost is measured in this process: the worker's
steady state (``complete_and_claim`` of the previous batch, 8 slots) over
2,000 jobs, statements counted by Django. Uses the test settings
(tests/settings.py; tasks in tests/testapp/flow_tasks.py) on the database of
DATABASE_URL, which it migrates and empties of jobs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_JOBS_TEST_DB", "postgres")

from bench.harness import write_results_section  # noqa: E402

QUEUE = "bench-flow"
SECTION = "## Flow control cost"
SCENARIOS = ("unlimited", "per-key concurrency limit 1 (100 keys)", "rate limit above drain rate")
# Run only with --only 3 (not in the default table: the baseline's tasks lack it).
WIDE = "per-key concurrency limit 1 (1,000 keys)"


def _reset(paused: bool) -> None:
    from django.db import connection

    from django_jobs import queues
    from django_jobs.models import FlowLane, Job, Worker

    Job.objects.all().delete()
    FlowLane.objects.all().delete()
    Worker.objects.all().delete()
    # The previous drain's dead rows would slow the next one's index scans
    # (not the same amount for every scenario): every drain starts clean.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_jobs_job, django_jobs_flowlane")
    if paused:
        queues.pause(QUEUE)
    else:
        queues.resume(QUEUE)


def _enqueue(task: Any, count: int) -> None:
    batch = 5000
    for start in range(0, count, batch):
        task.using(queue_name=QUEUE).enqueue_many(
            [(n,) for n in range(start, min(start + batch, count))]
        )


def drain(task: Any, args: argparse.Namespace, env: dict[str, str], root: Path) -> float:
    """Seconds to drain ``args.jobs`` jobs of ``task`` with the workers of ``root``."""
    from django_jobs import queues
    from django_jobs.models import Job, Worker
    from django_jobs.status import JobStatus

    _reset(paused=True)
    _enqueue(task, args.jobs)
    command = [sys.executable, str(root / "manage.py"), "runworker", "--queue", QUEUE]
    command += ["--concurrency", str(args.concurrency)]
    if args.prefetch is not None:
        command += ["--prefetch", str(args.prefetch)]
    env = dict(env, PYTHONPATH=str(root))
    procs = [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL)
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


def claim_cost(task: Any, jobs: int = 2000, slots: int = 8) -> tuple[float, float, float]:
    """(statements per claim, ms per claim, jobs per claim) in the worker's
    steady state: each call completes the previous batch and claims again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_jobs.engine import get_engine
    from django_jobs.rows import Completion

    _reset(paused=False)
    _enqueue(task, jobs)
    engine = get_engine("default")
    worker = uuid.uuid4()
    held: list[Any] = []
    calls = claimed = statements = 0
    seconds = 0.0
    while True:
        completions = [Completion(job, "null") for job in held]
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            _, held = engine.complete_and_claim(completions, worker, [QUEUE], slots, 60.0)
            seconds += time.perf_counter() - started
        if not held:
            break
        calls += 1
        claimed += len(held)
        statements += len(captured.captured_queries)
    return statements / calls, seconds * 1000 / calls, claimed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="checkout whose workers run too")
    parser.add_argument("--baseline-label", default="baseline")
    parser.add_argument("--prefetch", type=int, help="runworker --prefetch (default: settings)")
    parser.add_argument(
        "--only", type=int, nargs="*", help="scenario numbers to run (0-2; 3: 1,000 keys)"
    )
    parser.add_argument("--no-cost", action="store_true", help="skip the claim cost")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tests.testapp import flow_tasks

    call_command("migrate", verbosity=0)
    env = dict(os.environ, DJANGO_JOBS_TEST_DB_NAME=str(settings.DATABASES["default"]["NAME"]))
    tasks = dict(
        zip(
            SCENARIOS,
            (flow_tasks.bench_free, flow_tasks.bench_keyed, flow_tasks.bench_rated),
            strict=True,
        )
    )
    tasks[WIDE] = flow_tasks.bench_keyed_wide
    if args.only:
        tasks = {name: task for i, (name, task) in enumerate(tasks.items()) if i in args.only}
    else:
        del tasks[WIDE]
    roots = {"this branch": ROOT}
    if args.baseline:
        roots[args.baseline_label] = args.baseline.resolve()
    seconds: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = list(tasks.items())
        order = order[round_ % len(order) :] + order[: round_ % len(order)]  # no fixed first
        for version, root in roots.items():
            for name, task in order:
                took = drain(task, args, env, root)
                seconds.setdefault((version, name), []).append(took)
                print(f"round {round_ + 1} {version} {name}: {args.jobs / took:,.0f}/s", flush=True)
    costs = {} if args.no_cost else {name: claim_cost(task) for name, task in tasks.items()}
    if args.only:
        return
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"`python bench/flow_control.py --jobs {args.jobs} --rounds {args.rounds}"
        + (" --baseline DIR" if args.baseline else "")
        + f"` ({when}, PostgreSQL, {args.workers} workers x {args.concurrency} threads, "
        "the machine shared with other engineers' work: the drains ran interleaved, "
        f"{args.rounds} rounds in rotating order, each on a vacuumed table; medians). "
        "Target: under 20% loss for a limit.",
        "",
        f"| drain {args.jobs:,} no-op jobs | code | jobs/s (median) | runs | loss vs unlimited |",
        "|---|---|---:|---|---:|",
    ]
    for version in roots:
        base = args.jobs / statistics.median(seconds[(version, SCENARIOS[0])])
        for name in SCENARIOS:
            runs = seconds[(version, name)]
            rate = args.jobs / statistics.median(runs)
            each = ", ".join(f"{args.jobs / s:,.0f}" for s in runs)
            lines.append(
                f"| {name} | {version} | {rate:,.0f} | {each} | {(1 - rate / base) * 100:.1f}% |"
            )
    lines += [
        "",
        "One claim in the worker's steady state (complete the previous batch and claim 8; "
        "2,000 jobs; in-process, this branch):",
        "",
        "| jobs | statements per claim | ms per claim | jobs per claim |",
        "|---|---:|---:|---:|",
    ]
    for name, (statements, ms, per) in costs.items():
        lines.append(f"| {name} | {statements:.2f} | {ms:.2f} | {per:.1f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
