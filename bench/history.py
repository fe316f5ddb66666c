#!/usr/bin/env python
"""Drain with 10,000,000 finished jobs in history against an empty table, and
what pruning that history costs (batched DELETE against DROP of a partition).

    python bench/history.py [--history 10000000] [--jobs 20000] [--rounds 3]
                            [--prune 1000000] [--write]

Two PostgreSQL databases of their own (``BENCH_DB`` and ``BENCH_DB_empty``,
default ``bench_history``), migrated alike. The history database gets
``--history`` SUCCESSFUL rows in one ``INSERT ... SELECT generate_series``,
finished 30 to ~18 days ago, then ``VACUUM ANALYZE``. Each round drains
``--jobs`` no-op jobs with ``runworker --burst`` in both databases, the order
alternating between rounds (the machine's speed drifts). The workers run with
``FINISHED_JOB_RETENTION`` off so that only the drain is measured.

Then the pruning comparison on the history database: ``--prune`` rows deleted
by :class:`django_jobs.pruning.JobPruner` (``prunejobs``' batches), with the
table size and dead tuples before/after, against building a range-partitioned
copy holding the same rows in one partition and detaching/dropping it. Also
the admin's costs over the full history: an exact ``COUNT(*)`` against the
planner estimate the admin pages use. ``--write`` puts the rows in
bench/RESULTS.md (section "History: 10,000,000 finished jobs").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import dsn, load, log, recreate_database, write_results_section  # noqa: E402

SECTION = "## History: 10,000,000 finished jobs"

# Finished 30 days ago onward, one every 100 ms: 10M rows span ~11.6 days,
# all older than the default 7-day retention.
INSERT_HISTORY = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, attempts,
    max_attempts, timeout, errors, meta, result, enqueued_at, started_at, finished_at
)
SELECT 'bench.clients.jobs_tasks.noop', 'default', 0, '[]', '{}', 'SUCCESSFUL',
       t, 1, 3, 300, '[]', '{}', 'null', t, t, t
FROM (SELECT now() - interval '30 days' + g * interval '100 milliseconds' AS t
      FROM generate_series(1, %s) AS g) AS s
"""


def env(db: str, **settings: Any) -> dict[str, str]:
    out = dict(os.environ, BENCH_DB=db, DJANGO_SETTINGS_MODULE="bench.settings_jobs")
    out["BENCH_DJANGO_JOBS"] = json.dumps({"FINISHED_JOB_RETENTION": None, **settings})
    out["PYTHONPATH"] = str(ROOT)
    return out


def migrate(db: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env(db), check=True
    )


def sql(db: str, statement: str, params: Any = None) -> Any:
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else None


def drain(db: str, jobs: int) -> float:
    """Jobs/s of ``runworker --burst`` over ``jobs`` ready no-op jobs (history kept)."""
    sql(
        db,
        "DELETE FROM django_jobs_job "
        "WHERE status <> 'SUCCESSFUL' OR finished_at > now() - interval '1 day'",
    )
    subprocess.run(
        [sys.executable, "-m", "bench.clients.django_jobs_client", "prefill", "--n", str(jobs)],
        cwd=ROOT, env=env(db), check=True, capture_output=True,
    )  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst", "-v", "0"],
        cwd=ROOT, env=env(db), capture_output=True, timeout=900,
    )  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])
    (left,) = sql(db, "SELECT count(*) FROM django_jobs_job WHERE status IN ('READY','RUNNING')")[0]
    if left:
        raise RuntimeError(f"{left} jobs left after the burst")
    return jobs / took


def sizes(db: str) -> dict[str, Any]:
    row = sql(
        db,
        "SELECT pg_table_size('django_jobs_job'), pg_indexes_size('django_jobs_job'), "
        "n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'django_jobs_job'",
    )[0]
    return {"table": row[0], "indexes": row[1], "live": row[2], "dead": row[3]}


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def timed(db: str, statement: str, params: Any = None) -> tuple[float, Any]:
    started = time.perf_counter()
    out = sql(db, statement, params)
    return time.perf_counter() - started, out


def prune_delete(db: str, rows: int) -> dict[str, Any]:
    """``prunejobs``' batched DELETE of the oldest ``rows`` finished jobs."""
    (cutoff,) = sql(
        db,
        "SELECT finished_at FROM django_jobs_job WHERE status = 'SUCCESSFUL' "
        "ORDER BY finished_at OFFSET %s LIMIT 1",
        [rows],
    )[0]
    before = sizes(db)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "prunejobs", "--older-than",
         str(int(time.time() - cutoff.timestamp())), "-v", "0"],
        cwd=ROOT, env=env(db), check=True, capture_output=True, input=b"y\n", timeout=3600,
    )  # fmt: skip
    took = time.perf_counter() - started
    time.sleep(1.0)  # the statistics collector catches up
    after = sizes(db)
    deleted = before["live"] - after["live"]
    return {"seconds": took, "rows": rows, "deleted": deleted, "before": before, "after": after}


def prune_partition(db: str, rows: int) -> dict[str, Any]:
    """The same number of rows in one partition of a range-partitioned copy:
    detach and drop it."""
    sql(db, "DROP TABLE IF EXISTS bench_history_parted")
    sql(
        db,
        "CREATE TABLE bench_history_parted (LIKE django_jobs_job INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (finished_at)",
    )
    sql(db, "ALTER TABLE bench_history_parted ADD PRIMARY KEY (id, finished_at)")
    sql(db, "CREATE INDEX ON bench_history_parted (finished_at)")
    sql(
        db,
        "CREATE TABLE bench_history_p_old PARTITION OF bench_history_parted "
        "FOR VALUES FROM (MINVALUE) TO ('2100-01-01')",
    )
    fill, _ = timed(
        db,
        "INSERT INTO bench_history_parted SELECT * FROM django_jobs_job "
        "WHERE status = 'SUCCESSFUL' ORDER BY finished_at LIMIT %s",
        [rows],
    )
    detach, _ = timed(
        db, "ALTER TABLE bench_history_parted DETACH PARTITION bench_history_p_old CONCURRENTLY"
    )
    drop, _ = timed(db, "DROP TABLE bench_history_p_old")
    sql(db, "DROP TABLE bench_history_parted")
    return {"fill": fill, "detach": detach, "drop": drop}


def admin_counts(db: str) -> dict[str, float]:
    exact, _ = timed(db, "SELECT count(*) FROM django_jobs_job")
    estimate, _ = timed(db, "EXPLAIN SELECT * FROM django_jobs_job")
    by_status, _ = timed(db, "SELECT status, count(*) FROM django_jobs_job GROUP BY status")
    return {"exact": exact, "estimate": estimate, "by_status": by_status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prune", type=int, default=1_000_000)
    parser.add_argument("--db", default=os.environ.get("BENCH_DB", "bench_history"))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    full, empty = args.db, args.db + "_empty"
    for db in (full, empty):
        recreate_database(db)
        migrate(db)
    load_start = load()
    took, _ = timed(full, INSERT_HISTORY, [args.history])
    vacuum, _ = timed(full, "VACUUM (ANALYZE) django_jobs_job")
    history = sizes(full)
    log(
        f"history: {args.history:,} rows in {took:.0f}s, VACUUM ANALYZE {vacuum:.0f}s; "
        f"table {mib(history['table'])}, indexes {mib(history['indexes'])}"
    )
    rates: dict[str, list[float]] = {"empty": [], "history": []}
    for round_ in range(args.rounds):
        order = [("empty", empty), ("history", full)]
        for name, db in order if round_ % 2 == 0 else order[::-1]:
            rate = drain(db, args.jobs)
            rates[name].append(rate)
            log(f"round {round_ + 1}: {name} {rate:,.0f}/s")
    counts = admin_counts(full)
    log(f"admin: {counts}")
    deleted = prune_delete(full, args.prune)
    log(f"prune DELETE: {deleted}")
    parted = prune_partition(full, args.prune)
    log(f"partition: {parted}")
    a, b = statistics.median(rates["empty"]), statistics.median(rates["history"])
    before, after = deleted["before"], deleted["after"]
    section = "\n".join(
        [
            SECTION,
            "",
            f"`python bench/history.py --history {args.history}` ({time.strftime('%Y-%m-%d')}, "
            f"PostgreSQL; load {load_start} at start, {load()} at end; the machine was "
            "shared with other engineers' tests and benchmarks, so only the ratios "
            "within this run mean something).",
            "",
            f"History: {args.history:,} SUCCESSFUL rows inserted in {took:.0f}s "
            f"(VACUUM ANALYZE {vacuum:.0f}s): table {mib(history['table'])}, "
            f"indexes {mib(history['indexes'])}.",
            "",
            "| workload | empty table | 10M finished rows | ratio |",
            "|---|---|---|---|",
            f"| drain {args.jobs:,} no-op jobs, `runworker --burst`, median of "
            f"{args.rounds} interleaved | {a:,.0f}/s | {b:,.0f}/s | {b / a:.2f} |",
            "",
            "Runs: empty "
            + ", ".join(f"{r:,.0f}" for r in rates["empty"])
            + "; history "
            + ", ".join(f"{r:,.0f}" for r in rates["history"])
            + " jobs/s.",
            "",
            "| admin query over the history | time |",
            "|---|---|",
            "| exact `SELECT count(*)` (what the admin never runs) | "
            f"{counts['exact'] * 1000:,.0f} ms |",
            f"| `GROUP BY status` count | {counts['by_status'] * 1000:,.0f} ms |",
            f"| planner estimate (what `admin/counts.py` uses past its bound) | "
            f"{counts['estimate'] * 1000:,.1f} ms |",
            "",
            f"| pruning {args.prune:,} rows | time | after |",
            "|---|---|---|",
            f"| `prunejobs` (batched DELETE, {deleted['deleted']:,} rows) | "
            f"{deleted['seconds']:,.1f} s "
            f"({deleted['deleted'] / deleted['seconds']:,.0f} rows/s) | "
            f"table {mib(before['table'])} -> {mib(after['table'])}, indexes "
            f"{mib(before['indexes'])} -> {mib(after['indexes'])}, dead tuples "
            f"{before['dead']:,} -> {after['dead']:,} (space reused only after VACUUM, "
            "never returned) |",
            f"| one partition holding the same rows: DETACH CONCURRENTLY + DROP | "
            f"{(parted['detach'] + parted['drop']) * 1000:,.0f} ms "
            f"(detach {parted['detach'] * 1000:,.0f} ms, drop {parted['drop'] * 1000:,.0f} ms) | "
            "no dead tuples, space returned to the OS |",
            "",
        ]
    )
    print(section)
    if args.write:
        write_results_section(SECTION, section)


if __name__ == "__main__":
    main()
