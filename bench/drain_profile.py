#!/usr/bin/env python
"""Where a drained job's time goes: the 1-process drain of no-op jobs and the
pgbench 50-row claim+complete ceiling in one run, then one drain watched by
py-spy (``--gil``: Python on-CPU time) and pg_stat_statements.

    BENCH_PGPORT=55433 python bench/drain_profile.py [--n 100000] [--rounds 3]

Needs a PostgreSQL with pg_stat_statements loaded (shared_preload_libraries)
and the extension created in the ``postgres`` database's template: the run
creates it in its own databases. py-spy: ``pip install py-spy``. Writes the
section "Where a drained job's time goes" of bench/RESULTS.md and the profile
to bench/out/drain-profile.speedscope.json (open in speedscope.app).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench import pgbench_ceiling, workloads
from bench.harness import OUT, Counter, dsn, load, log, run_json, spawn, stop, write_results_section
from bench.systems import DJANGO_JOBS

DB = os.environ.get("BENCH_DB", "wt_bulk_drain")
TITLE = "## Where a drained job's time goes"
TICKS = os.sysconf("SC_CLK_TCK")

STATEMENTS = """
SELECT calls, rows, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)
ORDER BY total_exec_time DESC LIMIT 8
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def backends_cpu(db: str) -> float:
    """CPU seconds of the server processes connected to ``db`` (this host's /proc)."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        pids = [
            r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db])
        ]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            total += cpu_seconds(pid)
    return total


def profiled_drain(system: workloads.System, n: int) -> dict[str, object]:
    workloads.reset(system)
    run_json(system.client_cmd("prefill", "--n", str(n)), system.env(), cwd=system.root)
    with psycopg.connect(dsn(system.db), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("CHECKPOINT")
    remaining = Counter(system.db, system.remaining_sql)
    env = system.env(BENCH_WORKERS="1")
    worker = spawn(system.workers(1)[0], env, "worker-profile.log", system.root)
    raw = OUT / "drain-profile.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    prof = subprocess.Popen(
        [spy, "record", "--gil", "--nonblocking", "-r", "200", "-p", str(worker.pid),
         "-f", "raw", "-o", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while remaining() >= n:
            time.sleep(0.01)
        started, cpu0 = time.monotonic(), cpu_seconds(worker.pid)
        db0 = backends_cpu(system.db)
        first = remaining()
        while remaining() > 0 and time.monotonic() - started < 120:
            # A count(*) of the table: polled rarely (see workloads.POLL_SHARE).
            time.sleep(max(0.01, (time.monotonic() - started) * workloads.POLL_SHARE))
        wall, cpu1 = time.monotonic() - started, cpu_seconds(worker.pid)
        db1 = backends_cpu(system.db)
        left = remaining()
    finally:
        prof.send_signal(signal.SIGINT)
        prof.wait(30)
        stop([worker])
        remaining.close()
    done = first - left
    with psycopg.connect(dsn(system.db), autocommit=True) as conn:
        stats = conn.execute(STATEMENTS, [system.db]).fetchall()
    return {
        "jobs": done,
        "rate": done / wall,
        "wall_us": wall / done * 1e6,
        "worker_cpu_us": (cpu1 - cpu0) / done * 1e6,
        "db_cpu_us": (db1 - db0) / done * 1e6,
        "statements": stats,
        "profile": summarize(raw),
    }


def summarize(raw: Path, top: int = 14) -> list[tuple[str, float]]:
    """Share of GIL-holding samples per leaf function (py-spy raw: stack count)."""
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    if not raw.exists():
        return []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frame = stack.split(";")[-1]
        name = frame.split(" (")[0] + " (" + frame.split("/")[-1] if "/" in frame else frame
        leaf[name] += int(count)
        total += int(count)
    return [(name, count / total) for name, count in leaf.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    pgbench_ceiling.DB = DB + "_pgbench"
    system = dataclasses.replace(DJANGO_JOBS, db=DB)
    workloads.setup(system)
    ceilings, drains = [], []
    for round_ in range(args.rounds):  # interleaved: the ceiling, then the drain
        ceilings.append(pgbench_ceiling.run(args.seconds)["claim50"]["value"])
        drains.append(float(workloads.drain(system, 1, args.n, cap=60)["value"]))
        log(f"round {round_ + 1}: ceiling {ceilings[-1]:,.0f}/s, drain {drains[-1]:,.0f}/s")
    profile = profiled_drain(system, args.n)
    ceiling, drain = statistics.median(ceilings), statistics.median(drains)
    lines = [
        TITLE,
        "",
        f"`BENCH_PGPORT=55433 python bench/drain_profile.py --n {args.n} --rounds "
        f"{args.rounds}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, against a "
        "private PostgreSQL 15 (initdb'd for the run, fsync on, shared_buffers 128MB, "
        "pg_stat_statements loaded) on the same 2 cores, load average at the end "
        f"{load()} (other sessions' tests and benchmarks alongside).",
        "",
        "| measure | jobs/s (median) | runs |",
        "|---|---|---|",
        f"| pgbench ceiling: 50-row SKIP LOCKED claim+complete, 2 clients | {ceiling:,.0f} | "
        + ", ".join(f"{v:,.0f}" for v in ceilings)
        + " |",
        f"| django_jobs drain, 1 worker process, {args.n:,} no-op jobs | {drain:,.0f} | "
        + ", ".join(f"{v:,.0f}" for v in drains)
        + " |",
        "",
        f"Drain / ceiling: {drain / ceiling:.2f} (target 0.5).",
        "",
        f"One more drain, profiled (py-spy at 200 Hz, --gil, nonblocking): "
        f"{profile['rate']:,.0f} jobs/s, so {profile['wall_us']:.0f} us of wall time per job, "
        f"of which the worker process used {profile['worker_cpu_us']:.0f} us of CPU and the "
        f"PostgreSQL backends of the database {profile['db_cpu_us']:.0f} us (from /proc, all "
        "backends of the database, the bench's progress poll included).",
        "",
        "pg_stat_statements, the statements by total execution time during that drain "
        "(executor time only: the commit's WAL flush is not in it):",
        "",
        "| calls | rows | total ms | us per job | statement |",
        "|---|---|---|---|---|",
    ]
    jobs = float(profile["jobs"])  # type: ignore[arg-type]
    for calls, rows, total, query in profile["statements"]:  # type: ignore[attr-defined]
        query = query.replace("|", "\\|")
        lines.append(
            f"| {calls:,} | {rows:,} | {total:,.0f} | {total * 1000 / jobs:.1f} | `{query}` |"
        )
    lines += ["", "py-spy, the worker's Python on-CPU samples by leaf function:", ""]
    lines += ["| share | function |", "|---|---|"]
    for name, share in profile["profile"]:  # type: ignore[attr-defined]
        lines.append(f"| {share:.1%} | `{name}` |")
    section = "\n".join(lines) + "\n"
    print(section)
    write_results_section(TITLE, section)


if __name__ == "__main__":
    main()
