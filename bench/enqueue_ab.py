#!/usr/bin/env python
"""Enqueue cost of the django_jobs found on PYTHONPATH, for A/B runs of two trees.

    PYTHONPATH=TREE BENCH_DB=ab_bulk python bench/enqueue_ab.py N one|bulk

``one``: N enqueues, one transaction each; ``bulk``: ``enqueue_many`` of N
jobs in one call, best of 5. Prints jobs/s and the client's CPU per job. The
database must exist and be migrated (``manage.py migrate`` with
``DJANGO_SETTINGS_MODULE=bench.settings_jobs BENCH_DB=...``). Run the two trees
alternately several times (e.g. with ``/usr/bin/time -v``) and compare medians:
this machine's speed drifts more than the difference being measured.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_jobs")
os.environ.setdefault("BENCH_DB", "ab_bulk")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402 - after django.setup()

from bench.clients import jobs_tasks  # noqa: E402 - the models need setup


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    mode = sys.argv[2] if len(sys.argv) > 2 else "bulk"
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_jobs_job")
    if mode == "one":
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            with transaction.atomic():
                jobs_tasks.noop.enqueue()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"one/txn {n / wall:,.0f}/s wall, client CPU {cpu / n * 1e6:.1f} us/job")
        return
    best = (float("inf"), float("inf"))
    for _ in range(5):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE django_jobs_job")
        start, cpu = time.perf_counter(), time.process_time()
        with transaction.atomic():
            jobs_tasks.noop.enqueue_many([()] * n)
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    print(f"bulk best of 5: {n / best[0]:,.0f}/s wall, client CPU {best[1] / n * 1e6:.1f} us/job")


if __name__ == "__main__":
    main()
