"""bench/soak.py in its tiny mode, so the soak harness cannot rot.

The soak itself (30 minutes, 3 with --quick) is a benchmark, not a test; this
runs the whole harness (capacity drain, paced enqueue, per-window latency and
sizes, verdict) for a few seconds against real runworker processes and checks
the shape of what it reports, never the numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from bench.soak import MODES, verdict

ROOT = Path(__file__).resolve().parents[2]


def window(index: int, p99: float | None, size: int) -> dict[str, object]:
    return {"window": index, "p99_ms": p99, "table": size, "indexes": size}


def test_verdict_compares_the_first_steady_window_with_the_last() -> None:
    mode = MODES["tiny"]  # warm-up: 1.5 s retention + 0.75 s prune interval
    flat = [window(0, 90.0, 10), window(1, 20.0, 100), window(2, 30.0, 110), window(3, 35.0, 120)]
    assert verdict(flat, mode)["flat"] is True
    slow = [*flat[:3], window(3, 200.0, 120)]
    assert verdict(slow, mode) | {"why": ""} == {
        "flat": False, "p99_ok": False, "size_ok": True, "why": ""
    }  # fmt: skip
    bloated = [*flat[:3], window(3, 30.0, 1000)]
    assert verdict(bloated, mode)["size_ok"] is False
    assert verdict([window(0, None, 1)], mode)["flat"] is False


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_tiny_soak_runs_the_whole_harness() -> None:
    # About 20 s: migrate, three real workers, a capacity drain, then 6 s of
    # paced load; the one e2e test of the soak harness.
    url = urlparse(os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/test"))
    db = f"{url.path.lstrip('/') or 'test'}_soak"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        BENCH_PGHOST=url.hostname or "127.0.0.1",
        BENCH_PGPORT=str(url.port or 5432),
        BENCH_PGUSER=url.username or "root",
    )
    try:
        done = subprocess.run(
            [sys.executable, "bench/soak.py", "--tiny", "--db", db],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=110,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        # Its own database, dropped whatever happened.
        with psycopg.connect(url.geturl(), dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    assert result["mode"] == "tiny"
    assert result["capacity"] > 0 and result["rate"] == pytest.approx(result["capacity"] / 2)
    windows = result["windows"]
    assert [w["window"] for w in windows] == [0, 1, 2, 3]
    for w in windows:
        assert w["started"] > 0 and w["enqueued"] > 0, w
        assert 0 <= w["p50_ms"] <= w["p99_ms"], w
        assert w["table"] > 0 and w["indexes"] > 0 and w["dead"] >= 0, w
    assert set(result["verdict"]) >= {"flat", "why"}
    # Pruning was on: what is left of the mix is far less than was enqueued.
    enqueued = 300 + sum(w["started"] for w in windows)
    assert windows[-1]["live"] < enqueued
