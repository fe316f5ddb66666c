"""Shared plumbing for the benchmark: databases, subprocesses, progress, load.

Runs in the project's venv (the orchestrator side). Peer libraries are never
imported here: they run in their own venv, in client and worker subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
PG_HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PG_USER = os.environ.get("BENCH_PGUSER", "root")
PG_PORT = os.environ.get("BENCH_PGPORT", "5432")

_started = time.monotonic()


def log(message: str) -> None:
    """Progress line on stderr with the elapsed time of the whole run."""
    elapsed = time.monotonic() - _started
    sys.stderr.write(f"[{elapsed:6.1f}s] {message}\n")
    sys.stderr.flush()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


def recreate_database(name: str) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_json(
    cmd: Sequence[str], env: dict[str, str], timeout: float = 600, cwd: Path = ROOT
) -> dict[str, Any]:
    """Run a client command in ``cwd``; its last stdout line is a JSON object."""
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}{proc.stdout[-1000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{proc.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def spawn(
    cmd: Sequence[str], env: dict[str, str], log_name: str, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    OUT.mkdir(exist_ok=True)
    handle = (OUT / log_name).open("ab")
    return subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Counter:
    """A scalar query polled on its own connection (e.g. unfinished jobs)."""

    def __init__(self, db: str, sql: str) -> None:
        self.conn = psycopg.connect(dsn(db), autocommit=True)
        self.sql = sql

    def __call__(self) -> int:
        row = self.conn.execute(self.sql).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def write_results_section(title: str, section: str) -> None:
    """Put ``section`` (starting with the ``title`` heading) into bench/RESULTS.md,
    replacing that section if it is there (up to the next ``## ``), else appending it."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    if title in text:
        before, _, rest = text.partition(title)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)
