#!/usr/bin/env python
"""``make bench``: django_jobs against its peers and the PostgreSQL ceiling.

Every system gets its own database (created and dropped here), its real
worker processes and the same workloads, in one run on this machine. A full
run takes about 12-15 minutes on 2 cores; ``--quick`` checks the harness in
about 3. A full run of every system writes bench/RESULTS.md and the README
summary; partial runs write bench/out/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench import pgbench_ceiling, report, systems, workloads
from bench.harness import BENCH, OUT, drop_database, dsn, load, log


def _machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def _postgres() -> str:
    with psycopg.connect(dsn("postgres")) as conn:
        row = conn.execute("SELECT version(), current_setting('fsync')").fetchone()
    assert row is not None
    return f"{str(row[0]).split(' on ')[0]} (fsync {row[1]})"


def _measure(name: str, func: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    started = time.monotonic()
    try:
        result: dict[str, Any] | None = func(*args, **kwargs)
    except Exception as exc:
        log(f"  {name}: FAILED: {exc}")
        traceback.print_exc()
        return {"error": str(exc), "load": load()}
    took = time.monotonic() - started
    if result is None:
        log(f"  {name}: n/a")
    elif "p95" in result:
        log(
            f"  {name}: p50 {result['value']:.1f} ms, p95 {result['p95']:.1f} ms, "
            f"max {result['max']:.0f} ms ({took:.0f}s, load {result['load']})"
        )
    else:
        note = f" [{result['note']}]" if result.get("note") else ""
        log(f"  {name}: {result['value']:,.0f} jobs/s{note} ({took:.0f}s, load {result['load']})")
    return result


def _steps(args: argparse.Namespace) -> list[tuple[str, str, Any, tuple[Any, ...]]]:
    """(result key, label, workload, arguments after the system), in run order."""
    n, cap = args.jobs, args.cap
    return [
        (
            "enqueue_one",
            "enqueue one per transaction",
            workloads.enqueue_one_median,
            (args.enqueue,),
        ),
        ("enqueue_bulk", "bulk enqueue", workloads.enqueue_bulk, (args.bulk,)),
        ("drain1", "drain, 1 worker", workloads.drain_median, (1, n, cap)),
        ("drain2", "drain, 2 workers", workloads.drain_median, (2, n, cap)),
        ("latency", "latency", workloads.latency, (args.latency,)),
    ]


def set_sizes(args: argparse.Namespace) -> None:
    """The workload sizes, small with ``args.quick`` (shared with bench/compare.py)."""
    quick = args.quick
    args.jobs = 2_000 if quick else 10_000
    args.cap = 10.0 if quick else 30.0
    args.enqueue = 2_000 if quick else 20_000
    args.bulk = 2_000 if quick else 20_000
    args.latency = 50 if quick else 300
    args.history = 100_000 if quick else 1_000_000


def run_all(chosen: list[systems.System], args: argparse.Namespace) -> dict[str, Any]:
    """Every workload for every system, workload by workload.

    The systems take turns within each workload, in alternating order, so a
    change in the machine's load hits them alike rather than whichever system
    happened to run then.
    """
    out: dict[str, Any] = {}
    for system in chosen:
        log(f"== {system.label}: setting up database {system.db}")
        versions = workloads.setup(system)
        log(f"  versions: {versions}")
        out[system.key] = {
            "label": system.label,
            "versions": versions,
            "settings": system.settings,
            "results": {},
        }
    try:
        for index, (key, label, func, extra) in enumerate(_steps(args)):
            log(f"== {label}")
            order = chosen if index % 2 == 0 else list(reversed(chosen))
            for system in order:
                name = f"{system.label}: {label}"
                out[system.key]["results"][key] = _measure(name, func, system, *extra)
        for system in chosen:
            if args.history and workloads.history(system, args.history):
                results = out[system.key]["results"]
                n, cap = args.jobs, args.cap
                results["drain1_history"] = _measure(
                    f"{system.label}: drain, 1 worker, with history", workloads.drain_median,
                    system, 1, n, cap, keep_history=True,
                )  # fmt: skip
                results["drain1_prune"] = _measure(
                    f"{system.label}: drain, 1 worker, with history, while pruning",
                    workloads.drain_median, system, 1, n, cap, keep_history=True, prune=True,
                )  # fmt: skip
    finally:
        if not args.keep_databases:
            for system in chosen:
                drop_database(system.db)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--systems",
        default=",".join(s.key for s in systems.ALL),
        help="comma-separated: " + ", ".join(s.key for s in systems.ALL),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl+C: the finally blocks stop workers and drop databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    set_sizes(args)
    chosen = [s for s in systems.ALL if s.key in args.systems.split(",")]
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.log"):
        old.unlink()

    started = time.monotonic()
    run: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "postgres": _postgres(),
        "python": platform.python_version(),
        "load_start": load(),
        "args": (" " + " ".join(sys.argv[1:])) if sys.argv[1:] else "",
        "systems": {},
        "pgbench": {},
    }
    log(f"load average at start: {run['load_start']}")
    if any(s.python != Path(sys.executable) for s in chosen):
        systems.ensure_peers_venv()
    if not args.skip_pgbench:
        run["pgbench"] = pgbench_ceiling.run(seconds=5 if args.quick else 10)
    run["systems"] = run_all(chosen, args)
    run["load_end"] = load()
    run["duration"] = time.monotonic() - started

    full = not args.quick and not args.skip_pgbench and len(chosen) == len(systems.ALL)
    target = BENCH / "RESULTS.md" if full else OUT / "RESULTS.md"
    report.write_results(target, run)
    (OUT / "results.json").write_text(json.dumps(run, indent=2))
    log(f"wrote {target.relative_to(BENCH.parent)} ({run['duration']:.0f}s)")
    if full and not report.update_readme(run):
        log("README.md has no bench-summary markers: summary not updated")
    print(report.table(run))
    print()
    print(report.targets(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
