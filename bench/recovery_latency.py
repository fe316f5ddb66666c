"""Recovery latency: time from SIGKILL of a worker to its jobs running elsewhere.

    DATABASE_URL=postgres://... python bench/recovery_latency.py [--runs 3]
        [--lease 30 --heartbeat 5 --recovery 5] [--jobs 10]

Each run: worker A claims ``--jobs`` long jobs; worker B has been up for a
whole lease (its recovery is allowed); A is SIGKILLed at a random moment of
its heartbeat cycle; the clock stops when every job is RUNNING again on B.
Uses the test settings (tests/settings.py) on the database of DATABASE_URL,
which it migrates and empties of jobs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_JOBS_TEST_DB", "postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--recovery", type=float, default=5.0)
    args = parser.parse_args()
    os.environ.update(
        DJANGO_JOBS_TEST_LEASE=str(args.lease),
        DJANGO_JOBS_TEST_HEARTBEAT=str(args.heartbeat),
        DJANGO_JOBS_TEST_RECOVERY=str(args.recovery),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    latencies = [measure(args) for _ in range(args.runs)]
    print(
        f"lease={args.lease:g}s heartbeat={args.heartbeat:g}s recovery={args.recovery:g}s: "
        f"recovery latency min {min(latencies):.1f}s, median {statistics.median(latencies):.1f}s, "
        f"max {max(latencies):.1f}s over {len(latencies)} runs"
    )


def worker(*options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runworker", *options],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def measure(args: argparse.Namespace) -> float:
    from django_jobs.models import Job, Worker
    from django_jobs.status import JobStatus
    from tests.testapp import tasks

    Job.objects.all().delete()
    jobs = [j.pk for j in tasks.slow_first_attempt.enqueue_many([(3600,)] * args.jobs)]
    victim = worker("--concurrency", str(args.jobs))
    wait(lambda: Job.objects.filter(pk__in=jobs, status=JobStatus.RUNNING).count() == args.jobs, 60)
    rescuer = worker("--concurrency", str(args.jobs))
    wait(lambda: Worker.objects.filter(pid=rescuer.pid).exists(), 60)
    rescuer_id = Worker.objects.get(pid=rescuer.pid).id
    # The rescuer has been healthy for a lease (recovery allowed); kill at a random phase.
    time.sleep(args.lease + random.uniform(0, args.heartbeat))
    killed = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    wait(lambda: Job.objects.filter(pk__in=jobs, worker_id=rescuer_id).count() == args.jobs, 300)
    latency = time.monotonic() - killed
    rescuer.send_signal(signal.SIGKILL)
    rescuer.wait()
    print(f"  run: {latency:.1f}s", flush=True)
    return latency


if __name__ == "__main__":
    main()
