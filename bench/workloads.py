"""The workloads, the same procedure for every system.

Each returns a result dict: ``value`` (jobs/s or ms), ``load`` (1/5/15-minute
load average when it ended) and optional ``note``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.harness import (
    OUT,
    Counter,
    dsn,
    load,
    log,
    recreate_database,
    run_json,
    spawn,
    stop,
)
from bench.systems import System

Result = dict[str, Any]
# Seconds given to worker processes without a readiness signal to start up.
SETTLE_SECONDS = 6.0


def setup(system: System) -> dict[str, str]:
    recreate_database(system.db)
    out = run_json(system.client_cmd("setup"), system.env(), cwd=system.root)
    versions: dict[str, str] = out["versions"]
    return versions


def reset(system: System) -> None:
    with psycopg.connect(dsn(system.db), autocommit=True) as conn:
        conn.execute(system.reset_sql)


def enqueue_one(system: System, n: int = 2000, clients: int = 2, deadline: float = 15) -> Result:
    """``n`` jobs, one per transaction, from ``clients`` processes started together."""
    reset(system)
    cmd = system.client_cmd("enqueue-one", "--n", str(n // clients), "--deadline", str(deadline))
    procs = [
        subprocess.Popen(
            cmd,
            cwd=system.root,
            env=system.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    for proc in procs:  # barrier: every client has warmed up
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("enqueue-one client failed to start")
    go = time.time()
    outs = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        stdout, _ = proc.communicate(timeout=deadline + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"enqueue-one client exited {proc.returncode}")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    count = sum(o["count"] for o in outs)
    elapsed = max(o["end"] for o in outs) - go
    note = "" if count >= n else f"{count:,} in the {deadline:.0f}s cap"
    return {"value": count / elapsed, "load": load(), "note": note}


def enqueue_bulk(system: System, n: int = 20_000) -> Result | None:
    reset(system)
    out = run_json(system.client_cmd("enqueue-bulk", "--n", str(n)), system.env(), cwd=system.root)
    if not out["seconds"]:
        return None
    return {"value": n / out["seconds"], "load": load()}


def _wait_ready(system: System, counter: Counter | None, workers: int, timeout: float) -> None:
    if counter is None:
        time.sleep(SETTLE_SECONDS)  # no readiness signal: give the workers time to start
        return
    deadline = time.monotonic() + timeout
    while counter() < workers and time.monotonic() < deadline:
        time.sleep(0.05)


# Progress polls during a drain: a 10,000-job drain may take well under a
# second now, so a coarse poll would be a large share of the measurement.
POLL_SECONDS = 0.01
POLL_SHARE = 0.005


def drain(
    system: System,
    workers: int,
    n: int = 10_000,
    cap: float = 30.0,
    *,
    keep_history: bool = False,
    prune: bool = False,
) -> Result:
    """Drain ``n`` ready no-op jobs with ``workers`` processes.

    The workers start first and idle (until they are registered, or for
    SETTLE_SECONDS); then the jobs are inserted in one transaction and the
    clock runs from the first job seen finished to the last (polled every
    POLL_SECONDS), so start-up is never counted. Slow systems are stopped after
    ``cap`` seconds and rated on what they finished.
    """
    if not keep_history:
        reset(system)
    remaining = Counter(system.db, system.remaining_sql)
    ready = Counter(system.db, system.ready_sql) if system.ready_sql else None
    env = system.env(BENCH_WORKERS=str(workers))
    procs = [
        spawn(cmd, env, f"worker-{system.key}.log", system.root) for cmd in system.workers(workers)
    ]
    pruner = None
    try:
        # Every worker process is up and idle before the jobs arrive (in one
        # transaction), so a slow start never counts as slow draining.
        _wait_ready(system, ready, workers, 60)
        # The jobs are watched while the prefill client still runs: a fast
        # worker may finish them all while that process exits, and a clock
        # started only after its exit would see nothing left to time.
        prefill = spawn(
            system.client_cmd("prefill", "--n", str(n)),
            system.env(),
            f"prefill-{system.key}.log",
            system.root,
        )
        procs.append(prefill)
        if prune:
            pruner = spawn(
                system.client_cmd("prune", "--seconds", str(cap)),
                env,
                f"prune-{system.key}.log",
                system.root,
            )
        start_deadline = time.monotonic() + 660  # the prefill (600 s at most), then 60 s
        left = remaining()
        # Until a job is seen finished: none visible yet (prefill not committed)
        # or all still unfinished.
        while left >= n or (left == 0 and prefill.poll() is None):
            if time.monotonic() > start_deadline:
                break  # rated on what it finishes in the cap, as a slow system
            if prefill.poll() not in (None, 0):
                raise RuntimeError(
                    f"prefill exited {prefill.returncode}; see bench/out/prefill-{system.key}.log"
                )
            if all(proc.poll() is not None for proc in procs[:-1]):
                raise RuntimeError(f"{system.label} workers exited; see bench/out/worker-*.log")
            time.sleep(POLL_SECONDS)
            left = remaining()
        if left == 0:
            raise RuntimeError(
                f"{system.label}: all {n:,} jobs finished between two polls; too few to time"
            )
        started, first_left = time.monotonic(), left
        while left > 0 and time.monotonic() - started < cap:
            # The poll is a count(*) over the whole table: every 10 ms it took
            # about half of the database's CPU on 2 cores during a 100,000-job
            # drain (bench/drain_profile.py). Polling every 0.5% of the time
            # elapsed so far bounds the timing error to 0.5%.
            time.sleep(max(POLL_SECONDS, (time.monotonic() - started) * POLL_SHARE))
            left = remaining()
        elapsed = time.monotonic() - started
    finally:
        stop(procs)
        if pruner is not None:
            stop([pruner])
        remaining.close()
        if ready is not None:
            ready.close()
    done = first_left - left
    note = "" if left == 0 else f"{n - left:,} of {n:,} in the {cap:.0f}s cap"
    return {"value": done / elapsed if elapsed > 0 else 0.0, "load": load(), "note": note}


# A measurement that takes less than this is run three times and the median
# reported: at 10,000 jobs a fast system drains in about a second, and enqueues
# 20,000 in about two, where one run is noisy. Slower systems run once.
REPEAT_UNDER_SECONDS = 5.0


def median_of_three(measure: Callable[[], Result], jobs: int) -> Result:
    """``measure()``; run twice more and the median taken when it took under
    REPEAT_UNDER_SECONDS for ``jobs`` jobs (capped runs are never repeated)."""
    first = measure()
    if first["note"] or not first["value"] or jobs / first["value"] > REPEAT_UNDER_SECONDS:
        return first
    runs = sorted([first, measure(), measure()], key=lambda run: float(run["value"]))
    spread = f"{runs[0]['value']:,.0f}-{runs[-1]['value']:,.0f}"
    values = [float(run["value"]) for run in runs]
    return {**runs[1], "note": f"median of 3 runs, {spread}", "runs": values}


def drain_median(system: System, workers: int, n: int, cap: float, **options: bool) -> Result:
    """:func:`drain`, median of three when short."""
    return median_of_three(lambda: drain(system, workers, n, cap, **options), n)


def enqueue_one_median(system: System, n: int) -> Result:
    """:func:`enqueue_one`, median of three when short."""
    return median_of_three(lambda: enqueue_one(system, n), n)


def latency(system: System, n: int = 300, interval: float = 0.02) -> Result:
    """Enqueue-to-start latency: ``n`` jobs one by one to an idle worker."""
    reset(system)
    path = OUT / f"latency-{system.key}.txt"
    env = system.env(BENCH_WORKERS="1")
    procs = [spawn(cmd, env, f"worker-{system.key}.log", system.root) for cmd in system.workers(1)]
    remaining = Counter(system.db, system.remaining_sql)
    ready = Counter(system.db, system.ready_sql) if system.ready_sql else None
    try:
        _wait_ready(system, ready, 1, 30)
        # One job first: the worker is up and has run a job when it finishes.
        run_json(system.client_cmd("latency", "--n", "1", "--interval", "0"), env, cwd=system.root)
        _wait_zero(remaining, 60)
        time.sleep(1.0)  # idle again
        path.unlink(missing_ok=True)
        run_json(
            system.client_cmd("latency", "--n", str(n), "--interval", str(interval)),
            env,
            cwd=system.root,
        )
        _wait_zero(remaining, 60)
        time.sleep(0.2)
    finally:
        stop(procs)
        remaining.close()
        if ready is not None:
            ready.close()
    samples = sorted(float(x) * 1000 for x in path.read_text().split())
    if not samples:
        raise RuntimeError(f"{system.label}: no latency samples recorded")
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return {
        "value": statistics.median(samples),
        "p95": p95,
        "max": samples[-1],
        "count": len(samples),
        "load": load(),
    }


def _wait_zero(counter: Counter, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while counter() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("jobs still unfinished after the timeout")
        time.sleep(0.05)


def history(system: System, rows: int) -> Result | None:
    """Insert ``rows`` finished jobs (not measured); None if the system has no such hook."""
    reset(system)
    out = run_json(
        system.client_cmd("prefill-finished", "--n", str(rows)), system.env(), 1800, cwd=system.root
    )
    if not out["ok"]:
        log(f"  {rows:,} finished jobs of history: n/a")
        return None
    log(f"  inserted {rows:,} finished jobs of history in {out['seconds']:.0f}s (not measured)")
    return {"seconds": out["seconds"]}
