#!/usr/bin/env python
"""Bulk enqueue with COPY: ``enqueue_many`` of N jobs through the array-bound
INSERT (the path before COPY) and through COPY, pgqueuer's bulk enqueue, and a
raw COPY of the same rows into a bare table, in one run, interleaved, medians.

    python bench/bulk_copy.py [--n 100000] [--rounds 3] [--crossover]

``--crossover`` also times both django_jobs paths at 100 to 10,000 rows (in
one process, interleaved) to place COPY_THRESHOLD. Writes the section "Bulk
enqueue with COPY" of bench/RESULTS.md. Databases: BENCH_DB (default
wt_bulk_bench) and BENCH_DB + "_pgq" for pgqueuer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workloads
from bench.harness import ROOT, dsn, load, log, write_results_section
from bench.systems import DJANGO_JOBS, PGQUEUER, ensure_peers_venv

DB = os.environ.get("BENCH_DB", "wt_bulk_bench")
TITLE = "## Bulk enqueue with COPY"

# The columns a job row carries at enqueue, as django_jobs' staging table has them.
RAW_TABLE = """
DROP TABLE IF EXISTS bench_raw_copy;
CREATE TABLE bench_raw_copy (
    task_name text, queue_name text, priority smallint, args jsonb, kwargs jsonb,
    run_after timestamptz, max_attempts int, timeout float8, idempotency_key text, meta jsonb
)
"""


def raw_copy(n: int) -> float:
    """Jobs/s of COPY of n rows into a bare table (no index, no constraint), committed."""
    with psycopg.connect(dsn(DB)) as conn:
        conn.execute(RAW_TABLE)
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor:
            copy_sql = (
                "COPY bench_raw_copy (task_name, queue_name, priority, args, kwargs, "
                "run_after, max_attempts, timeout, idempotency_key, meta) FROM STDIN"
            )
            with cursor.copy(copy_sql) as copy:
                row = ("bench.clients.jobs_tasks.noop", "default", 0, "[]", "{}")
                rest = (None, 3, 300.0, None, None)
                for _ in range(n):
                    copy.write_row(row + rest)
        conn.commit()
        return n / (time.perf_counter() - started)


def crossover(sizes: list[int], rounds: int) -> dict[int, tuple[float, float]]:
    """Median jobs/s of the array path and of COPY at each size (one process)."""
    code = f"""
import json, os, statistics, time
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_jobs"
import django; django.setup()
from django.db import connection, transaction
from django_jobs.engine import postgres
from bench.clients.jobs_tasks import noop
out = {{}}
for n in {sizes!r}:
    runs = {{"array": [], "copy": []}}
    for _ in range({rounds}):
        for path in ("array", "copy"):
            postgres.COPY_THRESHOLD = 2**62 if path == "array" else 1
            with connection.cursor() as c:
                c.execute("TRUNCATE django_jobs_job")
            start = time.perf_counter()
            with transaction.atomic():
                noop.enqueue_many([()] * n)
            runs[path].append(n / (time.perf_counter() - start))
    out[n] = [statistics.median(runs["array"]), statistics.median(runs["copy"])]
print(json.dumps(out))
"""
    env = {**DJANGO_JOBS.env(), "BENCH_DB": DB}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {int(k): (v[0], v[1]) for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crossover", action="store_true")
    args = parser.parse_args()
    ensure_peers_venv()
    jobs = dataclasses.replace(DJANGO_JOBS, db=DB)
    array = dataclasses.replace(jobs, extra_env={**jobs.extra_env, "BENCH_BULK_PATH": "array"})
    pgq = dataclasses.replace(PGQUEUER, db=DB + "_pgq")
    versions = {**workloads.setup(jobs), **workloads.setup(pgq)}
    runs: dict[str, list[float]] = {k: [] for k in ("array", "copy", "pgqueuer", "raw")}
    for round_ in range(args.rounds):
        for name, measure in (
            ("array", lambda: workloads.enqueue_bulk(array, args.n)),
            ("copy", lambda: workloads.enqueue_bulk(jobs, args.n)),
            ("pgqueuer", lambda: workloads.enqueue_bulk(pgq, args.n)),
            ("raw", lambda: {"value": raw_copy(args.n)}),
        ):
            result = measure()
            assert result is not None
            runs[name].append(float(result["value"]))
            log(f"round {round_ + 1} {name}: {result['value']:,.0f}/s")
    med = {k: statistics.median(v) for k, v in runs.items()}
    labels = {
        "array": "django_jobs `enqueue_many`, array-bound INSERT (before)",
        "copy": "django_jobs `enqueue_many`, COPY + INSERT ... SELECT (after)",
        "pgqueuer": f"pgqueuer {versions.get('pgqueuer', '')} `enqueue` of lists",
        "raw": "raw COPY of the same rows into a bare table (no index), psycopg",
    }
    lines = [
        TITLE,
        "",
        f"`python bench/bulk_copy.py --n {args.n} --rounds {args.rounds}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one batch of {args.n:,} "
        f"no-op jobs per call, committed; {args.rounds} rounds, the four interleaved in each, "
        f"medians. Load average at the end {load()} on 2 cores (other benchmarks and tests "
        "ran alongside): compare the ratios, not the absolute numbers.",
        "",
        "| what | jobs/s (median) | runs | vs pgqueuer | vs raw COPY |",
        "|---|---|---|---|---|",
    ]
    for key, label in labels.items():
        spread = ", ".join(f"{v:,.0f}" for v in runs[key])
        lines.append(
            f"| {label} | {med[key]:,.0f} | {spread} | {med[key] / med['pgqueuer']:.2f}x "
            f"| {med[key] / med['raw']:.2f}x |"
        )
    if args.crossover:
        sizes = [100, 300, 1_000, 3_000, 10_000]
        table = crossover(sizes, max(3, args.rounds))
        lines += [
            "",
            "Crossover (same run, one process, in a transaction, medians of "
            f"{max(3, args.rounds)}): jobs/s",
            "",
            "| rows | array-bound INSERT | COPY | COPY / array |",
            "|---|---|---|---|",
        ]
        for n, (a, c) in table.items():
            lines.append(f"| {n:,} | {a:,.0f} | {c:,.0f} | {c / a:.2f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    write_results_section(TITLE, section)


if __name__ == "__main__":
    main()
