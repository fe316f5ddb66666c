"""Benchmark (not a test): admin page times with 1,000,000 jobs on PostgreSQL.

    .venv/bin/python bench/admin_pages.py [--jobs 1000000] [--runs 7] [--reuse] [--write]

Loads the jobs into a database of its own (default ``admin_bench``, dropped and
re-created unless ``--reuse``) with one server-side ``INSERT ... SELECT FROM
generate_series``: ~95% SUCCESSFUL, 2% FAILED (three tracebacks each, a dead
letter each), 1% READY due, 1% scheduled, 0.7% CANCELLED, 40 RUNNING on four
workers; four queues and twelve tasks (one of each rare); finished times
spread over the last 7 days; 10% with an idempotency key. Then VACUUM
ANALYZE, and every admin page is requested through the Django test client as
a logged-in superuser: one warm-up, then ``--runs`` timed requests. The
overview is also timed cold (its throughput cache emptied).

Prints a Markdown table; ``--write`` also puts it in bench/RESULTS.md under
"Admin pages at 1,000,000 jobs", with the machine load (uptime) at the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Admin pages at 1,000,000 jobs"

# Tasks and queues with a skewed distribution; the last of each is rare.
TASKS = [f"shop.tasks.{name}" for name in (
    "send_email", "sync_inventory", "charge_card", "render_invoice", "resize_image",
    "notify_slack", "rebuild_index", "export_csv", "refresh_cache", "score_lead",
    "archive_order", "rare_audit",
)]  # fmt: skip

# The whole table in one statement, computed server-side per row number i.
# Status by i % 1000: 0-952 SUCCESSFUL, 953-972 FAILED, 973-982 READY due,
# 983-992 READY scheduled, 993-999 CANCELLED. Times: job i finished
# (n - i) * 7 days / n ago, so the newest ids are the most recent.
LOAD_JOBS = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, attempts, max_attempts,
    timeout, idempotency_key, result, errors, progress, meta, enqueued_at, started_at,
    finished_at, worker_id, lease_expires_at, claim_token
)
SELECT
    CASE WHEN i %% 10007 = 0 THEN %(rare_task)s::text
         ELSE (%(tasks)s::text[])[
             1 + floor(11 * power((i::bigint * 7919 %% 1000) / 1000.0, 2))::int]
    END,
    CASE WHEN i %% 20 = 0 THEN 'webhooks' WHEN i %% 10 < 1 THEN 'reports'
         WHEN i %% 4 = 1 THEN 'emails' ELSE 'default' END,
    (i %% 3) - 1,
    jsonb_build_array(i, 'order-' || i),
    jsonb_build_object('dry_run', i %% 2 = 0),
    s.status,
    CASE WHEN s.status = 'READY' AND m >= 983 THEN now() + (i %% 720) * interval '1 minute'
         ELSE t.at - interval '3 seconds' END,
    CASE s.status WHEN 'FAILED' THEN 3 WHEN 'READY' THEN 0 WHEN 'CANCELLED' THEN 0 ELSE 1 END,
    3,
    300,
    CASE WHEN i %% 10 = 3 THEN 'key-' || i END,
    CASE WHEN s.status = 'SUCCESSFUL' THEN jsonb_build_object('ok', true, 'n', i) END,
    CASE WHEN s.status = 'FAILED' THEN (
        SELECT jsonb_agg(jsonb_build_object(
            'attempt', a, 'exception_class', 'builtins.ConnectionError',
            'message', 'upstream timed out after 30s', 'at', t.at - (3 - a) * interval '1 minute',
            'worker_id', '00000000-0000-0000-0000-000000000001',
            'traceback', %(traceback)s::text))
        FROM generate_series(1, 3) AS a)
    ELSE '[]'::jsonb END,
    NULL,
    '{}'::jsonb,
    t.at - interval '10 seconds',
    CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED') THEN t.at - interval '2 seconds' END,
    CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED') THEN t.at END,
    NULL, NULL, NULL
FROM generate_series(1, %(n)s) AS i,
LATERAL (SELECT i %% 1000 AS m) AS mm,
LATERAL (SELECT now() - (%(n)s - i) * (interval '7 days' / %(n)s) AS at) AS t,
LATERAL (SELECT CASE WHEN m <= 952 THEN 'SUCCESSFUL' WHEN m <= 972 THEN 'FAILED'
                     WHEN m <= 992 THEN 'READY' ELSE 'CANCELLED' END AS status) AS s
"""

# 40 of the newest READY-due jobs become RUNNING on four workers.
LOAD_WORKERS = """
INSERT INTO django_jobs_worker (id, hostname, pid, queues, concurrency, pool, started_at,
                                last_heartbeat_at)
SELECT ('00000000-0000-0000-0000-00000000000' || w)::uuid, 'worker-' || w, 1000 + w, '[]',
       10, 'thread', now() - interval '2 hours', now() - w * interval '2 seconds'
FROM generate_series(1, 4) AS w
"""
LOAD_RUNNING = """
UPDATE django_jobs_job SET status = 'RUNNING', attempts = 1, started_at = now(),
    worker_id = ('00000000-0000-0000-0000-00000000000' || (1 + id % 4))::uuid,
    claim_token = gen_random_uuid(), lease_expires_at = now() + interval '30 seconds'
WHERE id IN (SELECT id FROM django_jobs_job WHERE status = 'READY' AND run_after <= now()
             ORDER BY id DESC LIMIT 40)
"""
LOAD_DEAD_LETTERS = """
INSERT INTO django_jobs_deadletter (job_id, task_name, queue_name, priority, args, kwargs,
    reason, errors, attempts, max_attempts, created_at)
SELECT id, task_name, queue_name, priority, args, kwargs,
       'attempts exhausted (3/3): ConnectionError: upstream timed out after 30s',
       errors, attempts, max_attempts, finished_at
FROM django_jobs_job WHERE status = 'FAILED' ORDER BY id
"""
TRACEBACK = "".join(
    f'  File "/srv/shop/shop/{name}.py", line {40 + n}, in {name}\n    {name}(order)\n'
    for n, name in enumerate(("tasks", "services", "clients", "http", "retry", "transport"))
)
TRACEBACK = f"Traceback (most recent call last):\n{TRACEBACK}ConnectionError: upstream timed out\n"


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def ensure_database(url: str, reuse: bool) -> None:
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reuse:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def load(url: str, n: int) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM django_jobs_job").fetchone()[0]
        if have == n:
            log(f"reusing {have:,} jobs")
            return
        started = time.perf_counter()
        conn.execute(
            "TRUNCATE django_jobs_job, django_jobs_deadletter, django_jobs_worker RESTART IDENTITY"
        )
        with conn.transaction():
            conn.execute(
                LOAD_JOBS,
                {"n": n, "tasks": TASKS[:-1], "rare_task": TASKS[-1], "traceback": TRACEBACK},
            )
            conn.execute(LOAD_WORKERS)
            conn.execute(LOAD_RUNNING)
            conn.execute(LOAD_DEAD_LETTERS)
        log(f"loaded {n:,} jobs in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE django_jobs_job")
        conn.execute("VACUUM ANALYZE django_jobs_deadletter")
        conn.execute("VACUUM ANALYZE django_jobs_worker")
        size = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('django_jobs_job'))"
        ).fetchone()[0]
        log(f"jobs table with indexes: {size}")


def pages(n: int) -> list[tuple[str, str]]:
    from django.urls import reverse

    from django_jobs.models import DeadLetter, Job

    jobs = reverse("admin:django_jobs_job_changelist")
    letters = reverse("admin:django_jobs_deadletter_changelist")
    failed = Job.objects.filter(status="FAILED").order_by("-id").values_list("pk", flat=True)[0]
    done = Job.objects.filter(status="SUCCESSFUL").order_by("id").values_list("pk", flat=True)[0]
    keyed = Job.objects.filter(idempotency_key="key-13").values_list("pk", flat=True)[0]
    letter = DeadLetter.objects.order_by("-id").values_list("pk", flat=True)[0]
    overview = reverse("admin:django_jobs_overview_changelist")
    deep = min(1000, n // 100)  # 50 rows a page: the middle of the list at most
    detail = reverse("admin:django_jobs_job_change", args=[failed])
    return [
        ("overview", overview),
        ("overview, auto-refresh fragment", f"{overview}?fragment=1"),
        ("job list", jobs),
        ("job list, page 2", f"{jobs}?p=2"),
        (f"job list, page {deep:,}", f"{jobs}?p={deep}"),
        ("status = FAILED", f"{jobs}?status=FAILED"),
        ("status = READY", f"{jobs}?status=READY"),
        ("status = scheduled", f"{jobs}?status=SCHEDULED"),
        ("status = RUNNING", f"{jobs}?status=RUNNING"),
        ("status = SUCCESSFUL", f"{jobs}?status=SUCCESSFUL"),
        ("queue = emails", f"{jobs}?queue=emails"),
        ("task = send_email", f"{jobs}?task={TASKS[0]}"),
        ("task = rare_audit (~100 rows)", f"{jobs}?task={TASKS[-1]}"),
        ("FAILED + queue = reports", f"{jobs}?status=FAILED&queue=reports"),
        ("search by id", f"{jobs}?q={done}"),
        ("search by idempotency key (finished job)", f"{jobs}?q=key-13"),
        ("search, no match", f"{jobs}?q=no-such-key"),
        ("job detail (FAILED, 3 tracebacks)", detail),
        ("job detail (SUCCESSFUL)", reverse("admin:django_jobs_job_change", args=[keyed])),
        ("dead letters", letters),
        ("dead letters, not retried", f"{letters}?retried=no"),
        ("dead letter detail", reverse("admin:django_jobs_deadletter_change", args=[letter])),
        ("workers", reverse("admin:django_jobs_worker_changelist")),
    ]  # fmt: skip


@dataclasses.dataclass
class Timing:
    name: str
    wall: list[float]  # ms per request
    cpu: list[float]  # ms of this process's CPU per request (less sensitive to load)
    sql: list[float]  # ms waiting for PostgreSQL per request
    queries: int

    def row(self) -> str:
        med = statistics.median
        return (
            f"| {self.name} | {min(self.wall):.1f} | {med(self.wall):.1f} | {max(self.wall):.1f} "
            f"| {med(self.cpu):.1f} | {med(self.sql):.1f} | {self.queries or '-'} |"
        )


def measure(name: str, fetch: Callable[[], int], runs: int, before: Callable[[], None]) -> Timing:
    """One warm-up request, then ``runs`` timed ones."""
    from django.db import connection

    sql_time = [0.0]
    statements: list[str] = []

    def timed(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_time[0] += time.perf_counter() - started
            statements.append(sql)

    timing = Timing(name, [], [], [], 0)
    with connection.execute_wrapper(timed):
        before()
        if fetch() != 200:
            raise SystemExit(f"{name}: page did not answer HTTP 200")
        # Not counted: the session and user lookups every admin request makes.
        timing.queries = len(
            [q for q in statements if "django_session" not in q and "auth_user" not in q]
        )
        for _ in range(runs):
            before()
            sql_time[0] = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            fetch()
            timing.wall.append((time.perf_counter() - wall) * 1000)
            timing.cpu.append((time.process_time() - cpu) * 1000)
            timing.sql.append(sql_time[0] * 1000)
    return timing


def run(n: int, runs: int) -> list[Timing]:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    listed = pages(n)
    overview = listed[0][1]
    timings = [
        measure(
            "overview, cold (throughput cache emptied)",
            lambda: client.get(overview).status_code,
            runs,
            cache.clear,
        )
    ]
    for name, url in listed:
        timing = measure(name, lambda url=url: client.get(url).status_code, runs, lambda: None)
        timings.append(timing)
        log(f"{name}: median {statistics.median(timing.wall):.1f} ms")
    return timings


def table(timings: list[Timing], runs: int) -> str:
    lines = [
        f"| page (Django test client, {runs} runs after a warm-up) | min ms | median ms "
        "| max ms | CPU ms (median) | SQL ms (median) | SQL queries |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    return "\n".join(lines + [t.row() for t in timings])


def context(url: str) -> str:
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    load_avg = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    import django

    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores shared with other "
        f"engineers' runs, PostgreSQL {version}, Django {django.get_version()}, Python "
        f"{platform.python_version()}, DEBUG=False, persistent connection.\n"
        f"Load when the timing started: `{re.sub(r'.*load average', 'load average', load_avg)}`"
    )


def write_results(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _: text + "\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(current)


# The full (non-partial) indexes migration 0002 adds to the jobs table: every
# row version (enqueue, claim, completion) writes an entry into each.
ADMIN_INDEXES = {
    "jobs_job_task_id": "CREATE INDEX jobs_job_task_id ON django_jobs_job (task_name, id DESC)",
    "jobs_job_queue_id": "CREATE INDEX jobs_job_queue_id ON django_jobs_job (queue_name, id DESC)",
}


def index_cost(rounds: int) -> str:
    """Enqueue and claim+complete rates with and without the admin's full indexes."""
    import uuid

    from django.db import connection, transaction

    from django_jobs.engine import get_engine
    from django_jobs.rows import Completion
    from example_project.demo.tasks import send_welcome

    engine, worker = get_engine(), uuid.uuid4()

    def cycle(n: int = 5000, batch: int = 50) -> tuple[float, float]:
        started = time.perf_counter()
        with transaction.atomic():
            send_welcome.using(queue_name="bench").enqueue_many([(i,) for i in range(n)])
        enqueue = n / (time.perf_counter() - started)
        started, done = time.perf_counter(), 0
        while done < n:
            with transaction.atomic():
                jobs = engine.claim_jobs(worker, ["bench"], batch, 30)
            with transaction.atomic():
                done += len(engine.complete_jobs([Completion(j, "null") for j in jobs]))
        return enqueue, n / (time.perf_counter() - started)

    rates: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    with connection.cursor() as cursor:
        try:
            for _ in range(rounds):
                for mode in ("with", "without"):  # alternate: the machine is shared
                    if mode == "without":
                        for name in ADMIN_INDEXES:
                            cursor.execute(f"DROP INDEX {name}")
                    try:
                        rates[mode].append(cycle())
                    finally:
                        if mode == "without":
                            for statement in ADMIN_INDEXES.values():
                                cursor.execute(statement)
        finally:
            cursor.execute("DELETE FROM django_jobs_job WHERE queue_name = 'bench'")
    lines = [
        f"Write cost of the admin's task and queue indexes (median of {rounds} alternating "
        "rounds on the same 1,000,000-job table; 5,000 jobs a round, `enqueue_many` in one "
        "transaction, then claim 50 + complete per transaction):",
        "",
        "| | enqueue_many jobs/s | claim+complete jobs/s |",
        "|---|---:|---:|",
    ]
    for mode, label in (("with", "with the indexes"), ("without", "without them")):
        lines.append(
            f"| {label} | {statistics.median(r[0] for r in rates[mode]):,.0f} "
            f"| {statistics.median(r[1] for r in rates[mode]):,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--database-url", default="postgres://root@127.0.0.1:5432/admin_bench",
        help="a database of its own: it is dropped and re-created",
    )  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--index-cost", type=int, default=0, metavar="ROUNDS",
        help="also measure enqueue/claim rates with and without the admin indexes",
    )  # fmt: skip
    args = parser.parse_args()

    ensure_database(args.database_url, args.reuse)
    os.environ.update(DATABASE_URL=args.database_url, DEBUG="false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 600  # persistent, as in production
    load(args.database_url, args.jobs)
    header = context(args.database_url)
    log("timing pages")
    rows = run(args.jobs, args.runs)
    text = f"{SECTION}\n\n{header}\n\n{table(rows, args.runs)}\n"
    text += (
        "\nWall times include Django rendering the page; *CPU* is this process's CPU per "
        "request (what the page costs without the other runs on the machine), *SQL* the time "
        "spent waiting for PostgreSQL. Counts above `ADMIN_EXACT_COUNT_LIMIT` (10,000) are "
        "planner estimates; the *cold* overview recounts the last 24 hours of finished jobs "
        "(about 143,000 rows here), later loads only the current minute.\n"
    )
    if args.index_cost:
        log("measuring the write cost of the admin indexes")
        text += "\n" + index_cost(args.index_cost) + "\n"
    text += (
        "\nReproduce: `.venv/bin/python bench/admin_pages.py --write --index-cost 5` "
        "(loads its own database).\n"
    )
    print("\n" + text)
    if args.write:
        write_results(text)
        log(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
