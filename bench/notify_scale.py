#!/usr/bin/env python
"""NOTIFY at scale: enqueue one job per transaction from 8 concurrent clients
with USE_NOTIFY on and off, interleaved, medians; and the enqueue-to-start
latency (idle worker) with NOTIFY on, the setting that latency depends on.

    python bench/notify_scale.py [--clients 8] [--n 8000] [--rounds 3]

NOTIFY takes a database-wide lock at commit (PreCommit_Notify), which
serialises committing transactions that notify. Writes the section "NOTIFY at
scale" of bench/RESULTS.md. Database: BENCH_DB (default wt_bulk_bench).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workloads
from bench.harness import load, log, write_results_section
from bench.systems import DJANGO_JOBS, PGQUEUER, ensure_peers_venv

DB = os.environ.get("BENCH_DB", "wt_bulk_bench")
TITLE = "## NOTIFY at scale"
Result = workloads.Result
LABELS = {
    "before": "in the enqueue transaction (before)",
    "on": "after the commit, own transaction, synchronous_commit off (after)",
    "off": "off (USE_NOTIFY False)",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--n", type=int, default=8_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-n", type=int, default=200)
    args = parser.parse_args()
    ensure_peers_venv()
    on = dataclasses.replace(DJANGO_JOBS, db=DB)
    off = dataclasses.replace(
        on, extra_env={**on.extra_env, "BENCH_DJANGO_JOBS": json.dumps({"USE_NOTIFY": False})}
    )
    before = dataclasses.replace(on, extra_env={**on.extra_env, "BENCH_NOTIFY_IN_STATEMENT": "1"})
    pgq = dataclasses.replace(PGQUEUER, db=DB + "_pgq")
    workloads.setup(on)
    workloads.setup(pgq)
    runs: dict[str, list[float]] = {"before": [], "on": [], "off": []}
    for round_ in range(args.rounds):
        for name, system in (("before", before), ("on", on), ("off", off)):
            result = workloads.enqueue_one(system, args.n, clients=args.clients)
            runs[name].append(float(result["value"]))
            log(f"round {round_ + 1} NOTIFY {name}: {result['value']:,.0f}/s {result['note']}")
    lats: dict[str, list[Result]] = {"before": [], "on": [], "pgqueuer": []}
    for _ in range(args.rounds):
        for name, system in (("before", before), ("on", on), ("pgqueuer", pgq)):
            lats[name].append(workloads.latency(system, n=args.latency_n))
    lat = {
        k: (
            sorted(float(r["value"]) for r in v),
            statistics.median(float(r["p95"]) for r in v),
        )
        for k, v in lats.items()
    }
    med = {k: statistics.median(v) for k, v in runs.items()}
    section = "\n".join(
        [
            TITLE,
            "",
            f"`python bench/notify_scale.py --clients {args.clients} --n {args.n} "
            f"--rounds {args.rounds}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{args.n:,} no-op jobs enqueued one per transaction by {args.clients} client "
            "processes started together (bench.workloads.enqueue_one), NOTIFY on and off "
            f"interleaved, {args.rounds} rounds, medians. Load average at the end {load()} "
            "on 2 cores, other benchmarks and tests alongside.",
            "",
            "| NOTIFY | jobs/s (median) | runs | vs NOTIFY off | latency p50 / p95 (ms) |",
            "|---|---|---|---|---|",
            *(
                f"| {LABELS[k]} | {med[k]:,.0f} | "
                + ", ".join(f"{v:,.0f}" for v in runs[k])
                + f" | {med[k] / med['off']:.2f}x | "
                + (
                    f"{statistics.median(lat[k][0]):.1f} / {lat[k][1]:.1f} "
                    f"(p50 runs {', '.join(f'{v:.1f}' for v in lat[k][0])})"
                    if k in lat
                    else "(1 s poll)"
                )
                + " |"
                for k in ("before", "on", "off")
            ),
            "",
            f"Latency: enqueue-to-start to an idle worker, {args.latency_n} jobs 20 ms apart, "
            f"{args.rounds} runs each, interleaved; medians. pgqueuer (its defaults, "
            f"LISTEN/NOTIFY) in the same rounds: p50 {statistics.median(lat['pgqueuer'][0]):.1f} "
            f"ms (runs {', '.join(f'{v:.1f}' for v in lat['pgqueuer'][0])}), "
            f"p95 {lat['pgqueuer'][1]:.1f} ms.",
            "",
        ]
    )
    print(section)
    write_results_section(TITLE, section)


if __name__ == "__main__":
    main()
