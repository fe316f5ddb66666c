"""Client side of the django.tasks benchmark, run under the backend's own Python.

    python -m bench.django_tasks.client setup|enqueue-one|prefill|latency|crash-task [--n N]

Prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import metadata
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_tasks.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.django_tasks import tasks  # noqa: E402


def setup() -> dict[str, Any]:
    call_command("migrate", verbosity=0)
    package = "django-dbjobs" if os.environ["BENCH_DT_BACKEND"] == "jobs" else "django-tasks-db"
    return {"versions": {"django": django.get_version(), package: metadata.version(package)}}


def enqueue_one(n: int) -> dict[str, Any]:
    tasks.noop.enqueue()  # warm up: connection, imports
    started = time.perf_counter()
    for _ in range(n):
        tasks.noop.enqueue()  # autocommit: one transaction each
    return {"count": n, "seconds": time.perf_counter() - started}


def prefill(n: int) -> dict[str, Any]:
    started = time.perf_counter()
    with transaction.atomic():  # not measured: one transaction to save time
        for _ in range(n):
            tasks.noop.enqueue()
    return {"count": n, "seconds": time.perf_counter() - started}


def latency(n: int, interval: float) -> dict[str, Any]:
    for _ in range(n):
        tasks.latency.enqueue(time.time())
        time.sleep(interval)
    return {"count": n}


def crash_task(seconds: float) -> dict[str, Any]:
    return {"id": tasks.sleep_for.enqueue(seconds).id}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    commands = {
        "setup": setup,
        "enqueue-one": lambda: enqueue_one(args.n),
        "prefill": lambda: prefill(args.n),
        "latency": lambda: latency(args.n, args.interval),
        "crash-task": lambda: crash_task(args.seconds),
    }
    if args.command not in commands:
        parser.error(f"unknown command {args.command!r}")
    print(json.dumps(commands[args.command]()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
