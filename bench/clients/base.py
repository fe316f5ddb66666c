"""Client side of the benchmark: the same measurement loops for every system.

A system module (``bench.clients.<name>``) implements :class:`System` and
calls :func:`main`; the orchestrator runs it under the system's own Python
(``python -m bench.clients.<name> <command> ...``) and reads the JSON object
printed on the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def record_latency(t0: float) -> None:
    """Task body of the latency workload: append enqueue-to-start seconds to a file."""
    elapsed = time.time() - t0
    with open(os.environ["BENCH_LATENCY_FILE"], "a") as handle:
        handle.write(f"{elapsed:.6f}\n")


class System:
    """Hooks a system implements; ``None`` from a hook means "not applicable"."""

    def setup(self) -> None:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def enqueue_one(self) -> None:
        """Enqueue one no-op job in its own transaction."""
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> bool:
        """Enqueue ``n`` no-op jobs with the library's bulk API; False if it has none."""
        return False

    def enqueue_latency(self, t0: float) -> None:
        raise NotImplementedError

    def prefill(self, n: int) -> None:
        """Insert ``n`` ready no-op jobs as fast as possible (not measured)."""
        raise NotImplementedError

    def prefill_finished(self, n: int) -> bool:
        """Insert ``n`` finished jobs (history); False if not applicable."""
        return False

    def prune(self, seconds: float) -> int | None:
        """Prune finished jobs for ``seconds`` the library's way; None if n/a."""
        return None


def _enqueue_one(system: System, args: argparse.Namespace) -> dict[str, Any]:
    system.enqueue_one()  # warm up: connection, imports, caches
    print("ready", flush=True)
    sys.stdin.readline()  # the orchestrator starts every client at once
    deadline = time.time() + args.deadline
    count = 0
    while count < args.n and time.time() < deadline:
        system.enqueue_one()
        count += 1
    return {"count": count, "end": time.time()}


def _enqueue_bulk(system: System, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    if not system.enqueue_bulk(args.n):
        return {"count": 0, "seconds": None}
    return {"count": args.n, "seconds": time.perf_counter() - started}


def _latency(system: System, args: argparse.Namespace) -> dict[str, Any]:
    for _ in range(args.n):
        system.enqueue_latency(time.time())
        time.sleep(args.interval)
    return {"count": args.n}


def main(system: System) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    result: dict[str, Any]
    if args.command == "setup":
        system.setup()
        result = {"versions": system.versions()}
    elif args.command == "enqueue-one":
        result = _enqueue_one(system, args)
    elif args.command == "enqueue-bulk":
        result = _enqueue_bulk(system, args)
    elif args.command == "latency":
        result = _latency(system, args)
    elif args.command == "prefill":
        started = time.perf_counter()
        system.prefill(args.n)
        result = {"seconds": time.perf_counter() - started}
    elif args.command == "prefill-finished":
        started = time.perf_counter()
        result = {"ok": system.prefill_finished(args.n), "seconds": time.perf_counter() - started}
    elif args.command == "prune":
        result = {"deleted": system.prune(args.seconds)}
    else:
        parser.error(f"unknown command {args.command!r}")
    print(json.dumps(result), flush=True)


def noop() -> None:
    """Task body of the drain workloads for peers that take a dotted path."""
