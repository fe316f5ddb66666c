#!/usr/bin/env python
"""Soak: sustained load at half the measured capacity, pruning on; is it flat?

    python bench/soak.py [--quick | --tiny] [--workers 3] [--db bench_soak] [--write]

On a PostgreSQL database of its own (``--db``, re-created here). First the
capacity: ``--workers`` ``runworker`` processes (pruning on: a short
``FINISHED_JOB_RETENTION`` and ``PRUNE_INTERVAL``), started and idle, drain a
backlog of the job mix (no-op, 5 ms and 50 ms jobs in equal parts) enqueued
in one go. Then the same workers take jobs enqueued at half that capacity,
one ``enqueue_many`` every 50 ms (one kind of job per tick, rotating), for
the duration: 30 minutes, 3 with ``--quick``, seconds with ``--tiny`` (the
test that keeps the harness alive).

Every "minute" (a window: 60 s, 1.5 s with ``--tiny``) it reports p50/p99
enqueue-to-start latency of the jobs started in it (``started_at -
enqueued_at``, both database clocks), the job table and index sizes and the
live/dead tuples and autovacuum count from ``pg_stat_user_tables``. The
verdict compares the first window after the warm-up (one retention plus one
prune interval, once the table is at its steady size) with the last: flat
when the last window's p99 is under 2x the first's (or under the 50 ms
target) and the table plus indexes grew under 50%.

The last stdout line is the result as JSON; ``--write`` puts the table in
bench/RESULTS.md (section "Soak").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.harness import (  # noqa: E402
    dsn,
    load,
    log,
    recreate_database,
    spawn,
    stop,
    write_results_section,
)

SECTION = "## Soak"  # "## Soak, 30 minutes" and "## Soak (quick)"
# p99 enqueue-to-start target at half capacity (DESIGN.md "Targets").
P99_TARGET_MS = 50.0
BATCH_EVERY = 0.05
MIX = ((), (5.0,), (50.0,))  # noop(), pause(5), pause(50)


@dataclasses.dataclass(frozen=True)
class Mode:
    duration: float
    window: float
    retention: float
    prune_interval: float
    capacity_jobs: int
    vacuum_every: float  # the harness's stand-in for autovacuum, when it is off


# The retention outlasts a window plus its grace: a job started in a window is
# still in the table when that window's percentiles are computed.
MODES = {
    "full": Mode(1800, 60, 120, 30, 6000, 10),
    "quick": Mode(180, 60, 90, 10, 3000, 10),
    "tiny": Mode(6, 1.5, 3, 0.75, 300, 1),
}


class StandInVacuum(threading.Thread):
    """``VACUUM (ANALYZE) django_jobs_job`` every ``every`` seconds, on its own
    connection: what autovacuum would do, for servers where it is off (plain
    VACUUM takes a SHARE UPDATE EXCLUSIVE lock: claims and inserts go on)."""

    def __init__(self, db: str, every: float) -> None:
        super().__init__(name="soak-vacuum", daemon=True)
        self.db, self.every = db, every
        self.runs, self.seconds = 0, 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(dsn(self.db), autocommit=True) as conn:
            while not self.stopping.wait(self.every):
                started = time.perf_counter()
                conn.execute("VACUUM (ANALYZE) django_jobs_job")
                self.seconds += time.perf_counter() - started
                self.runs += 1


def autovacuum_on() -> bool:
    return bool(scalar("SELECT current_setting('autovacuum') = 'on'"))


def worker_env(db: str, mode: Mode) -> dict[str, str]:
    settings = {"FINISHED_JOB_RETENTION": mode.retention, "PRUNE_INTERVAL": mode.prune_interval}
    return dict(
        os.environ,
        BENCH_DB=db,
        DJANGO_SETTINGS_MODULE="bench.settings_jobs",
        BENCH_DJANGO_JOBS=json.dumps(settings),
        PYTHONPATH=str(ROOT),
    )


def enqueue_mix(n: int, offset: int = 0) -> None:
    from bench.clients.jobs_tasks import noop, pause

    plain = [()] * sum(1 for i in range(n) if (i + offset) % 3 == 0)
    short = [(5.0,)] * sum(1 for i in range(n) if (i + offset) % 3 == 1)
    slow = [(50.0,)] * sum(1 for i in range(n) if (i + offset) % 3 == 2)
    if plain:
        noop.enqueue_many(plain)
    if short:
        pause.enqueue_many(short)
    if slow:
        pause.enqueue_many(slow)


def remaining() -> int:
    return int(scalar("SELECT count(*) FROM django_jobs_job WHERE status IN ('READY', 'RUNNING')"))


def enqueue_tick(n: int, tick: int) -> None:
    """One tick's ``n`` jobs, all of one kind of the mix, the kind rotating by
    tick: one ``enqueue_many`` (one transaction) per tick keeps the producer
    ahead of the workers on a loaded machine, and the mix is equal over time."""
    from bench.clients.jobs_tasks import noop, pause

    kind = MIX[tick % len(MIX)]
    if kind:
        pause.enqueue_many([kind] * n)
    else:
        noop.enqueue_many([()] * n)


def capacity(jobs: int) -> float:
    """Jobs/s of the running, idle workers over a backlog of ``jobs`` of the mix
    (enqueued in one go; timed from the enqueue's commit to the last finish)."""
    enqueue_mix(jobs)
    started = time.perf_counter()
    deadline = time.monotonic() + 600
    while remaining():
        if time.monotonic() > deadline:
            raise RuntimeError("the capacity backlog was not drained in 600 s")
        time.sleep(0.01)
    return jobs / (time.perf_counter() - started)


def scalar(statement: str) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
    return row[0] if row else None


# The jobs started in one window: percentiles of started_at - enqueued_at.
WINDOW_SQL = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - enqueued_at),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - enqueued_at)
FROM django_jobs_job
WHERE started_at >= to_timestamp(%s) AND started_at < to_timestamp(%s)
"""
SIZES_SQL = """
SELECT pg_table_size('django_jobs_job'), pg_indexes_size('django_jobs_job'),
       n_live_tup, n_dead_tup, autovacuum_count
FROM pg_stat_user_tables WHERE relname = 'django_jobs_job'
"""


def window_row(index: int, start: float, end: float) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(WINDOW_SQL, [start, end])
        count, p50, p99 = cursor.fetchone()
        cursor.execute(SIZES_SQL)
        table, indexes, live, dead, autovacuums = cursor.fetchone()

    def ms(value: Any) -> float | None:
        return None if value is None else value.total_seconds() * 1000

    return {
        "window": index,
        "started": count,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "table": table,
        "indexes": indexes,
        "live": live,
        "dead": dead,
        "autovacuums": autovacuums,
    }


def verdict(rows: list[dict[str, Any]], mode: Mode) -> dict[str, Any]:
    """Flat or not: the first window after the warm-up against the last."""
    warm = mode.retention + mode.prune_interval
    steady = [r for r in rows if r["window"] * mode.window >= warm and r["p99_ms"] is not None]
    if len(steady) < 2:
        steady = [r for r in rows if r["p99_ms"] is not None][-2:]
    if len(steady) < 2:
        return {"flat": False, "why": "fewer than two windows with started jobs"}
    first, last = steady[0], steady[-1]
    p99_ok = last["p99_ms"] <= max(2 * first["p99_ms"], P99_TARGET_MS)
    size_first = first["table"] + first["indexes"]
    size_last = last["table"] + last["indexes"]
    size_ok = size_last <= 1.5 * size_first
    why = (
        f"window {first['window']} vs {last['window']}: p99 {first['p99_ms']:.1f} -> "
        f"{last['p99_ms']:.1f} ms, table+indexes {size_first / 2**20:.1f} -> "
        f"{size_last / 2**20:.1f} MiB"
    )
    return {"flat": p99_ok and size_ok, "p99_ok": p99_ok, "size_ok": size_ok, "why": why}


def soak(db: str, mode: Mode, workers: int) -> tuple[float, list[dict[str, Any]]]:
    """Capacity of ``workers`` workers, then half of it for the mode's duration;
    (capacity, window rows)."""
    cmd = [sys.executable, "manage.py", "runworker", "-v", "0"]
    procs = [spawn(cmd, worker_env(db, mode), "soak-worker.log") for _ in range(workers)]
    rows: list[dict[str, Any]] = []
    windows = round(mode.duration / mode.window)
    grace = min(0.5, mode.window / 4)  # claims near a window's end have committed
    vacuum = None if autovacuum_on() else StandInVacuum(db, mode.vacuum_every)
    try:
        deadline = time.monotonic() + 60
        while scalar("SELECT count(*) FROM django_jobs_worker") < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("soak workers did not register; see bench/out/soak-worker.log")
            time.sleep(0.1)
        cap = capacity(mode.capacity_jobs)
        rate = cap / 2
        log(f"capacity with {workers} workers: {cap:,.0f} jobs/s; soaking at {rate:,.0f}/s")
        if vacuum is not None:
            log(f"autovacuum is off on this server: VACUUM every {mode.vacuum_every:g}s instead")
            vacuum.start()
        started = time.time()
        sent = tick = counted = 0
        while len(rows) < windows:
            now = time.time()
            if now - started < mode.duration:
                due = int((now - started) * rate) - sent
                if due > 0:
                    enqueue_tick(due, tick)
                    sent, tick = sent + due, tick + 1
            window_start = started + len(rows) * mode.window
            if now >= window_start + mode.window + grace:
                rows.append(window_row(len(rows), window_start, window_start + mode.window))
                rows[-1]["enqueued"], counted = sent - counted, sent
                rows[-1]["vacuums"] = None if vacuum is None else vacuum.runs
                log(f"window {rows[-1]['window']}: {json.dumps(rows[-1])}")
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a soak worker exited; see bench/out/soak-worker.log")
            time.sleep(max(0.0, BATCH_EVERY - (time.time() - now)))
    finally:
        if vacuum is not None:
            vacuum.stopping.set()
            vacuum.join(30)
        stop(procs)
    return cap, rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| window | jobs enqueued | jobs started | p50 ms | p99 ms | table MiB | indexes MiB "
        "| live | dead | autovacuums | stand-in VACUUMs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
        p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
        stand_in = "-" if r["vacuums"] is None else r["vacuums"]
        out.append(
            f"| {r['window']} | {r['enqueued']:,} | {r['started']:,} | {p50} | {p99} "
            f"| {r['table'] / 2**20:.1f} | {r['indexes'] / 2**20:.1f} | {r['live']:,} "
            f"| {r['dead']:,} | {r['autovacuums']} | {stand_in} |"
        )
    return out


def title(mode: str) -> str:
    return f"{SECTION}, 30 minutes" if mode == "full" else f"{SECTION} ({mode})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 minutes, to check the harness")
    parser.add_argument("--tiny", action="store_true", help="seconds: the harness test")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--db", default=os.environ.get("BENCH_DB", "bench_soak"))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    mode = MODES[name]
    os.environ["BENCH_DB"] = args.db
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_jobs"
    recreate_database(args.db)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    load_start = load()
    autovacuum = autovacuum_on()
    try:
        cap, rows = soak(args.db, mode, args.workers)
    finally:
        connections.close_all()
    result = {
        "mode": name,
        "capacity": cap,
        "rate": cap / 2,
        "autovacuum": autovacuum,
        "windows": rows,
    }
    vacuum_note = (
        "Autovacuum was on."
        if autovacuum
        else "Autovacuum is off on this shared server (`autovacuum = off`), so the harness "
        f"ran `VACUUM (ANALYZE) django_jobs_job` every {mode.vacuum_every:g} s in its place "
        "(column stand-in VACUUMs, cumulative)."
    )
    result["verdict"] = verdict(rows, mode)
    flat = "flat" if result["verdict"]["flat"] else "NOT flat"
    section = "\n".join(
        [
            title(name),
            "",
            f"`python bench/soak.py{' --' + name if name != 'full' else ''}` "
            f"({time.strftime('%Y-%m-%d %H:%M')}, PostgreSQL, {args.workers} worker processes "
            f"of 10 threads; load {load_start} at start, {load()} at end; the machine was "
            "shared with other engineers' tests and benchmarks). Capacity (drain of a backlog of "
            f"{mode.capacity_jobs:,} mixed jobs: no-op, 5 ms, 50 ms): {cap:,.0f} jobs/s; soak at "
            f"{cap / 2:,.0f} jobs/s for {mode.duration / 60:g} min, retention "
            f"{mode.retention:g} s, prune interval {mode.prune_interval:g} s.",
            "",
            vacuum_note,
            "",
            *table(rows),
            "",
            f"Verdict: **{flat}** ({result['verdict']['why']}).",
            "",
        ]
    )
    print(section)
    if args.write:
        write_results_section(title(name), section)
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
