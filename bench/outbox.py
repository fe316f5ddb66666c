"""Outbox throughput on PostgreSQL: publish, and publish -> subscriber job done.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> python bench/outbox.py [--events N]

Uses the test settings and the no-op subscriber ``tests.testapp.subscribers.bench_tick``
in a fresh database ``<db>_outbox_bench``; one ``runworker`` (relay inside, default
concurrency) runs the subscriber jobs. Prints one line per figure, and the load average.
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


def setup(db_name: str) -> None:
    import psycopg

    base = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DJANGO_JOBS_TEST_DB="postgres",
        DJANGO_JOBS_TEST_DB_NAME=db_name,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wait_done(expected: int, timeout: float = 600) -> float:
    from django_jobs.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(status="SUCCESSFUL").count() < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {expected} jobs")
        time.sleep(0.02)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    n = args.events
    db_name = (os.environ.get("DATABASE_URL", "x/bench").rsplit("/", 1)[1]) + "_outbox_bench"
    setup(db_name)
    from django.db import connection

    from django_jobs import outbox
    from django_jobs.models import Job, OutboxEvent

    print(f"load average before: {os.getloadavg()}")
    # Baselines in the same run: a raw single-row INSERT per transaction, and
    # enqueueing one job per transaction.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, payload jsonb)")
    start = time.perf_counter()
    for _ in range(n):
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_raw (payload) VALUES (%s::jsonb)", ['{"i": 1}'])
    elapsed = time.perf_counter() - start
    print(f"baseline raw INSERT, one per transaction: {n / elapsed:,.0f} rows/s")
    from tests.testapp.tasks import noop

    start = time.perf_counter()
    for _ in range(n):
        noop.enqueue()
    elapsed = time.perf_counter() - start
    print(f"baseline enqueue, one job per transaction: {n / elapsed:,.0f} jobs/s")
    Job.objects.all().delete()
    start = time.perf_counter()
    for i in range(n):
        outbox.publish("bench.tick", {"i": i}, key=f"k{i % 100}")
    elapsed = time.perf_counter() - start
    print(
        f"publish, one event per transaction: {n / elapsed:,.0f} events/s ({n} in {elapsed:.2f}s)"
    )
    start = time.perf_counter()
    outbox.publish_many([("bench.tick", {"i": i}, f"k{i % 100}") for i in range(4 * n)])
    elapsed = time.perf_counter() - start
    print(f"publish_many, {4 * n} in one call: {4 * n / elapsed:,.0f} events/s")
    OutboxEvent.objects.all().delete()
    connection.close()

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runworker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # worker and relay up, idle
        # Latency: one event at a time on an idle worker, commit -> job finished.
        latencies = []
        for i in range(30):
            event = outbox.publish("bench.tick", {"latency": i})
            t0 = time.monotonic()
            while not Job.objects.filter(status="SUCCESSFUL", args__0__id=event.pk).exists():
                time.sleep(0.001)
            latencies.append((time.monotonic() - t0) * 1000)
            time.sleep(0.05)
        p50, worst = statistics.median(latencies), max(latencies)
        print(f"publish -> subscriber job done, idle worker: p50 {p50:.1f} ms, max {worst:.1f} ms")
        plain = []
        for _ in range(30):
            job = noop.enqueue()
            t0 = time.monotonic()
            while not Job.objects.filter(status="SUCCESSFUL", pk=job.pk).exists():
                time.sleep(0.001)
            plain.append((time.monotonic() - t0) * 1000)
            time.sleep(0.05)
        p50 = statistics.median(plain)
        print(f"baseline enqueue -> plain job done, same worker: p50 {p50:.1f} ms")
        done_before = Job.objects.filter(status="SUCCESSFUL").count()
        # Throughput: N events published one per transaction while the worker runs.
        start = time.monotonic()
        for i in range(n):
            outbox.publish("bench.tick", {"i": i}, key=f"k{i % 100}")
        published = time.monotonic()
        end = wait_done(done_before + n)
        print(
            f"end to end, {n} events published one per transaction, 1 worker: "
            f"{n / (end - start):,.0f} events/s (published in {published - start:.2f}s, "
            f"last subscriber job done {end - published:.2f}s after the last commit)"
        )
        done_before += n
        # Backlog: N events already committed, drained by the same worker.
        outbox.publish_many([("bench.tick", {"i": i}, f"k{i % 100}") for i in range(n)])
        start = time.monotonic()
        end = wait_done(done_before + n)
        print(
            f"end to end, backlog of {n} events (one publish_many), 1 worker: "
            f"{n / (end - start):,.0f} events/s"
        )
        done_before += n
        # Baseline: the same worker draining plain no-op jobs (no outbox).
        noop.enqueue_many([() for _ in range(n)])
        start = time.monotonic()
        end = wait_done(done_before + n)
        print(f"baseline, backlog of {n} no-op jobs, same worker: {n / (end - start):,.0f} jobs/s")
    finally:
        worker.terminate()
        worker.wait(60)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
