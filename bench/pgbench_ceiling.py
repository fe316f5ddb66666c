"""The raw PostgreSQL ceiling, measured with pgbench on a minimal queue table.

- insert: one single-row INSERT per transaction;
- claim1: claim one row with FOR UPDATE SKIP LOCKED (one transaction), then
  mark it done (a second transaction): what a job queue must do at least;
- claim50: the same with 50 rows per transaction.
All with 2 clients (the machine has 2 cores), fsync on, for a fixed time.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import PG_HOST, PG_PORT, PG_USER, dsn, load, log, recreate_database

DB = "bench_pgbench"
PGBENCH = "/usr/bin/pgbench"

SCHEMA = """
CREATE TABLE queue (
    id bigserial PRIMARY KEY,
    queue_name text NOT NULL DEFAULT 'default',
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'ready',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_ready ON queue (id) WHERE status = 'ready';
"""

INSERT = "INSERT INTO queue (payload) VALUES ('{}');\n"

CLAIM_1 = """\
UPDATE queue SET status = 'running'
WHERE id = (SELECT id FROM queue WHERE status = 'ready' ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED)
RETURNING id \\gset
UPDATE queue SET status = 'done' WHERE id = :id;
"""

CLAIM_50 = """\
WITH c AS (SELECT id FROM queue WHERE status = 'ready' ORDER BY id LIMIT 50
           FOR UPDATE SKIP LOCKED),
     u AS (UPDATE queue q SET status = 'running' FROM c WHERE q.id = c.id RETURNING q.id)
SELECT string_agg(id::text, ',') AS ids FROM u \\gset
UPDATE queue SET status = 'done' WHERE id IN (:ids);
"""


def _prepare(rows: int) -> None:
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS queue")
        conn.execute(SCHEMA)
        if rows:
            conn.execute(
                "INSERT INTO queue (payload) SELECT '{}' FROM generate_series(1, %s)", [rows]
            )
        conn.execute("VACUUM ANALYZE queue")


def _pgbench(script: str, seconds: int, clients: int = 2) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    cmd = [
        PGBENCH, "-n", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER,
        "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", handle.name, DB,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    finally:
        Path(handle.name).unlink()
    match = re.search(r"tps = ([\d.]+)", proc.stdout)
    if not match:
        raise RuntimeError(f"pgbench printed no tps:\n{proc.stdout}\n{proc.stderr}")
    return float(match.group(1))


# Rows ready before each claim script, enough for 10 s on an idle machine with
# room to spare (claim50 reached 62,000 rows/s here): a run that empties the
# table would end in `id IN ()` and abort.
PREFILL = {"claim1": 400_000, "claim50": 2_000_000}


def run(seconds: int = 10) -> dict[str, dict[str, Any]]:
    """Measure the three ceilings; results in jobs (rows) per second."""
    recreate_database(DB)
    results: dict[str, dict[str, Any]] = {}
    try:
        _prepare(0)
        log(f"pgbench: single-row INSERT per transaction, 2 clients, {seconds}s")
        results["insert"] = {"value": _pgbench(INSERT, seconds), "load": load()}
        for name, script, batch in (("claim1", CLAIM_1, 1), ("claim50", CLAIM_50, 50)):
            _prepare(PREFILL[name] * seconds // 10)
            log(f"pgbench: SKIP LOCKED claim+complete, {batch} per transaction, {seconds}s")
            results[name] = {"value": _pgbench(script, seconds) * batch, "load": load()}
    finally:
        from bench.harness import drop_database

        drop_database(DB)
    for name, result in results.items():
        log(f"  {name}: {result['value']:,.0f} rows/s")
    return results
