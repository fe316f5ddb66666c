#!/usr/bin/env python
"""The same ``django.tasks`` task through two backends, in one run on this machine:
django_jobs.backend.JobsBackend and django-tasks-db (from PyPI, in its own venv
under bench/peers/). Same API, same task module (bench/django_tasks/tasks.py),
each backend with its own PostgreSQL database and its own worker on defaults.

Workloads: enqueue one job per transaction; drain 10,000 no-op jobs with one
worker process; enqueue-to-start latency on an idle worker; and a crash check
(SIGKILL the worker mid-task, start another, see whether the task runs again).

    python bench/django_tasks_bench.py [--quick] [--skip-crash]

Writes its own section of bench/RESULTS.md (and of docs/howto/django-tasks.md, between its
markers) on a full run; bench/out/django_tasks.md on --quick runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
PEER_VENV = BENCH / "peers" / "django-tasks-db"
PEER_REQUIREMENTS = ["Django==6.1.3", "psycopg[binary]==3.3.9", "django-tasks-db==0.13.0"]
PG = {
    "host": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
    "user": os.environ.get("BENCH_PGUSER", "root"),
    "port": os.environ.get("BENCH_PGPORT", "5432"),
}
# The section's heading comes first, then the markers: bench/report.py (make bench)
# keeps every "## " section it does not own, heading and all.
HEADING = "## django.tasks: JobsBackend vs django-tasks-db"
START, END = "<!-- django-tasks-bench:start -->", "<!-- django-tasks-bench:end -->"
SUMMARY = (
    "<!-- django-tasks-bench-summary:start -->",
    "<!-- django-tasks-bench-summary:end -->",
)
# One task every 50 ms on a started, idle worker: a worker slower than 20 tasks/s
# queues them, and its latency then includes the wait in the queue.
LATENCY_INTERVAL = 0.05
LATENCY_TITLE = "enqueue-to-start latency p50, one task every 50 ms"
_t0 = time.monotonic()


def log(message: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - _t0:6.1f}s] {message}\n")
    sys.stderr.flush()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def dsn(db: str) -> str:
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


@dataclasses.dataclass(frozen=True)
class Backend:
    key: str
    label: str
    python: Path
    worker: tuple[str, ...]
    table: str
    conn_max_age: str = ""
    crash_check: bool = True

    @property
    def db(self) -> str:
        return f"bench_dt_{self.key}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="bench.django_tasks.settings",
            BENCH_DT_BACKEND="jobs" if self.key == "jobs" else "tasksdb",
            BENCH_DB=self.db,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.pop("BENCH_CONN_MAX_AGE", None)
        if self.conn_max_age:
            env["BENCH_CONN_MAX_AGE"] = self.conn_max_age
        env.update(extra)
        return env


def backends() -> list[Backend]:
    peer = PEER_VENV / "bin" / "python"
    return [
        Backend("jobs", "django_jobs JobsBackend", Path(sys.executable), ("runworker",),
                "django_jobs_job"),
        Backend("tasksdb", "django-tasks-db", peer, ("db_worker",),
                "django_tasks_database_dbtaskresult"),
        Backend("tasksdb_conn", "django-tasks-db, CONN_MAX_AGE=600", peer, ("db_worker",),
                "django_tasks_database_dbtaskresult", conn_max_age="600", crash_check=False),
    ]  # fmt: skip


def ensure_peer_venv() -> None:
    stamp = PEER_VENV / "requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating {PEER_VENV.relative_to(ROOT)} with {', '.join(PEER_REQUIREMENTS)}")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", *PEER_REQUIREMENTS], check=True)
    stamp.write_text(wanted)


def sql(db: str, statement: str, params: tuple[Any, ...] = ()) -> Any:
    # Table names below are constants of this script; values are always bound.
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def client(backend: Backend, *args: str, timeout: float = 900, **env: str) -> dict[str, Any]:
    cmd = [str(backend.python), "-m", "bench.django_tasks.client", *args]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=backend.env(**env), capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def start_worker(backend: Backend, name: str, **env: str) -> subprocess.Popen[bytes]:
    OUT.mkdir(exist_ok=True)
    handle = (OUT / f"django_tasks-{backend.key}-{name}.log").open("ab")
    return subprocess.Popen(
        [str(backend.python), "-m", "django", *backend.worker],
        cwd=ROOT,
        env=backend.env(**env),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes], kill: bool = False) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def unfinished(backend: Backend) -> int:
    statement = f"SELECT count(*) FROM {backend.table} WHERE status IN ('READY', 'RUNNING')"
    row = sql(backend.db, statement)
    return int(row[0])


def truncate(backend: Backend) -> None:
    extra = ", django_jobs_deadletter" if backend.key == "jobs" else ""
    sql(backend.db, f"TRUNCATE {backend.table}{extra}")


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- workloads ------------------------------------------------------------------


def enqueue_one(backend: Backend, n: int) -> dict[str, Any]:
    result = client(backend, "enqueue-one", "--n", str(n))
    truncate(backend)
    return {"value": n / result["seconds"], "load": load()}


def drain(backend: Backend, n: int, cap: float) -> dict[str, Any]:
    client(backend, "prefill", "--n", str(n))
    worker = start_worker(backend, "drain")
    started = time.monotonic()
    try:
        done = wait_for(lambda: unfinished(backend) == 0, cap, interval=0.2)
    finally:
        stop(worker)
    wall = time.monotonic() - started
    count, first, last = sql(
        backend.db,
        f"SELECT count(*), min(started_at), max(finished_at) FROM {backend.table} "
        "WHERE status = 'SUCCESSFUL'",
    )
    truncate(backend)
    seconds = (last - first).total_seconds() if count else 0.0
    return {
        "value": count / seconds if seconds else 0.0,
        "count": count,
        "note": "" if done else f"capped at {cap:.0f}s: {count:,} of {n:,} done",
        "wall": wall,
        "load": load(),
    }


def latency(backend: Backend, n: int) -> dict[str, Any]:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"django_tasks-latency-{backend.key}.txt"
    path.unlink(missing_ok=True)
    env = {"BENCH_LATENCY_FILE": str(path)}
    worker = start_worker(backend, "latency", **env)
    try:
        time.sleep(3.0)  # started and idle
        client(backend, "latency", "--n", str(n), "--interval", str(LATENCY_INTERVAL), **env)
        wait_for(lambda: path.exists() and len(path.read_text().split()) >= n, 120)
    finally:
        stop(worker)
    samples = sorted(float(x) * 1000 for x in path.read_text().split())
    truncate(backend)
    return {
        "value": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95) - 1],
        "max": samples[-1],
        "load": load(),
    }


def crash(backend: Backend, observe: float) -> dict[str, Any]:
    """SIGKILL the worker in the middle of a 5 s task; does another worker run it again?"""
    first = start_worker(backend, "crash-1")
    try:
        task_id = client(backend, "crash-task", "--seconds", "5")["id"]
        status = f"SELECT status FROM {backend.table} WHERE id = %s"
        wait_for(lambda: sql(backend.db, status, (task_id,))[0] == "RUNNING", 30)
        time.sleep(0.5)
    finally:
        stop(first, kill=True)
    killed = time.monotonic()
    second = start_worker(backend, "crash-2")
    try:
        recovered = wait_for(
            lambda: sql(backend.db, status, (task_id,))[0] == "SUCCESSFUL", observe, 0.5
        )
    finally:
        stop(second)
    final = sql(backend.db, status, (task_id,))[0]
    truncate(backend)
    after = time.monotonic() - killed
    return {
        "recovered": recovered,
        "seconds": after if recovered else None,
        "status": final,
        "observed": observe,
    }


# -- report ---------------------------------------------------------------------


def _rate(result: dict[str, Any] | None) -> str:
    if not result:
        return "n/a"
    note = f" ({result['note']})" if result.get("note") else ""
    return f"{result['value']:,.0f}/s{note}"


def _latency(result: dict[str, Any] | None) -> str:
    if not result:
        return "n/a"
    return f"{result['value']:.1f} ms (p95 {result['p95']:.0f} ms)"


def _crash(result: dict[str, Any] | None) -> str:
    if not result:
        return "not checked"
    if result["recovered"]:
        return f"ran again, SUCCESSFUL {result['seconds']:.0f}s after the SIGKILL"
    return f"still {result['status']} {result['observed']:.0f}s after the SIGKILL"


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, invert: bool) -> str:
    if not ours or not theirs or not ours["value"] or not theirs["value"]:
        return "n/a"
    ratio = theirs["value"] / ours["value"] if invert else ours["value"] / theirs["value"]
    return f"{ratio:.1f}x"


def markdown(run: dict[str, Any]) -> str:
    res = {k: v["results"] for k, v in run["backends"].items()}
    labels = {k: v["label"] for k, v in run["backends"].items()}
    keys = list(res)
    names = " | ".join(labels[k] for k in keys)
    head = f"| workload | {names} | JobsBackend vs django-tasks-db |"
    rows = [head, "|---" * (len(keys) + 2) + "|"]
    spec = [
        ("enqueue, one per transaction", "enqueue_one", _rate, False),
        (f"drain {run['jobs']:,} no-op tasks, 1 worker process", "drain", _rate, False),
        (LATENCY_TITLE, "latency", _latency, True),
        ("worker SIGKILLed mid-task, another worker started", "crash", _crash, None),
    ]
    for title, key, fmt, invert in spec:
        cells = [fmt(res[k].get(key)) for k in keys]
        ratio = (
            ""
            if invert is None
            else _ratio(res.get("jobs", {}).get(key), res.get("tasksdb", {}).get(key), invert)
        )
        rows.append(f"| {title} | " + " | ".join(cells) + f" | {ratio} |")
    versions = "; ".join(
        f"{v['label']}: " + ", ".join(f"{p} {ver}" for p, ver in v["versions"].items())
        for v in run["backends"].values()
    )
    loads = ", ".join(
        f"{k}: " + " / ".join(str(r.get(w, {}).get("load", "-")) for w in ("enqueue_one", "drain"))
        for k, r in res.items()
    )
    return "\n".join(
        [
            START,
            "The same `django.tasks` task module (`bench/django_tasks/tasks.py`), the same API "
            "(`task.enqueue()`), two backends, one run: "
            "`python bench/django_tasks_bench.py`. Each backend has its own PostgreSQL "
            "database and one worker process on its defaults (`runworker`: 10 threads; "
            "`db_worker`: one task at a time, 1 s poll). Drain rate = tasks / (last "
            "finished_at - first started_at). Ratios: JobsBackend's rate divided by "
            "django-tasks-db's (on its defaults); for latency, theirs divided by ours.",
            "",
            *rows,
            "",
            f"Run {run['date']} on {run['machine']}, {run['postgres']}, Python {run['python']}, "
            f"{run['duration']:.0f}s. Versions: {versions}.",
            f"Load average (1/5/15 min) at start {run['load_start']}, at end {run['load_end']}; "
            f"after enqueue / drain: {loads}. The 2 cores are shared with other engineers' "
            "test runs: absolute numbers move with the load, the ratio (same run) less so.",
            END,
        ]
    )


def summary(run: dict[str, Any]) -> str:
    """The README's short version: JobsBackend vs django-tasks-db on its defaults."""
    ours = run["backends"]["jobs"]["results"]
    theirs = run["backends"]["tasksdb"]["results"]
    tuned = run["backends"].get("tasksdb_conn", {}).get("results", {})
    rows = [
        SUMMARY[0],
        "| same task, same run | JobsBackend | django-tasks-db | ratio |",
        "|---|---|---|---|",
    ]
    for title, key, fmt, invert in [
        ("enqueue, one per transaction", "enqueue_one", _rate, False),
        (f"drain {run['jobs']:,} tasks, 1 worker process", "drain", _rate, False),
        (LATENCY_TITLE, "latency", _latency, True),
    ]:
        ratio = _ratio(ours.get(key), theirs.get(key), invert)
        rows.append(f"| {title} | {fmt(ours.get(key))} | {fmt(theirs.get(key))} | {ratio} |")
    rows.append(
        f"| worker SIGKILLed mid-task | {_crash(ours.get('crash'))} | "
        f"{_crash(theirs.get('crash'))} | |"
    )
    note = f"Run {run['date']}, load average {run['load_start']} at start on 2 shared cores."
    if tuned.get("drain"):
        note += (
            f" django-tasks-db with persistent connections (CONN_MAX_AGE=600): drain "
            f"{_rate(tuned['drain'])}, enqueue {_rate(tuned.get('enqueue_one'))}."
        )
    return "\n".join([*rows, "", note, SUMMARY[1]])


def replace_section(path: Path, text: str, markers: tuple[str, str] = (START, END)) -> bool:
    """Replace the marked part of ``path``; without markers, append the RESULTS.md section."""
    if not path.exists():
        return False
    content = path.read_text()
    start, end = markers
    if start in content and end in content:
        before, rest = content.split(start, 1)
        content = before + text + rest.split(end, 1)[1]
    elif markers == (START, END):
        content = content.rstrip("\n") + f"\n\n{HEADING}\n\n{text}\n"
    else:
        return False
    path.write_text(content)
    return True


def write_reports(run: dict[str, Any], full: bool) -> str:
    text = markdown(run)
    if not full:
        (OUT / "django_tasks.md").write_text(text + "\n")
        log("wrote bench/out/django_tasks.md")
        return text
    results = BENCH / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n")
    replace_section(results, text)
    log("wrote the django.tasks section of bench/RESULTS.md")
    if replace_section(ROOT / "docs" / "howto" / "django-tasks.md", summary(run), SUMMARY):
        log("updated the django.tasks summary in docs/howto/django-tasks.md")
    return text


def _postgres() -> str:
    row = sql("postgres", "SELECT version(), current_setting('fsync')")
    return f"{str(row[0]).split(' on ')[0]} (fsync {row[1]})"


def run_backend(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    log(f"== {backend.label}: database {backend.db}, load {load()}")
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{backend.db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{backend.db}"')
    versions = client(backend, "setup")["versions"]
    results: dict[str, Any] = {}
    try:
        results["enqueue_one"] = enqueue_one(backend, args.enqueue)
        log(f"  enqueue one per transaction: {_rate(results['enqueue_one'])}")
        results["drain"] = drain(backend, args.jobs, args.cap)
        log(f"  drain: {_rate(results['drain'])} (wall {results['drain']['wall']:.0f}s)")
        results["latency"] = latency(backend, args.latency)
        log(f"  latency: {_latency(results['latency'])}")
        if backend.crash_check and not args.skip_crash:
            results["crash"] = crash(backend, args.observe)
            log(f"  crash: {_crash(results['crash'])}")
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{backend.db}" WITH (FORCE)')
    return {"label": backend.label, "versions": versions, "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes to check the script")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--backends", default="jobs,tasksdb,tasksdb_conn")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the reports from the last full run's bench/out/django_tasks.json",
    )
    args = parser.parse_args()
    if args.report_only:
        run = json.loads((OUT / "django_tasks.json").read_text())
        print(write_reports(run, full=True))
        return 0
    args.jobs = 1_000 if args.quick else 10_000
    args.cap = 60.0 if args.quick else 600.0
    args.enqueue = 300 if args.quick else 2_000
    args.latency = 30 if args.quick else 100
    args.observe = 60.0 if args.quick else 90.0
    chosen = [b for b in backends() if b.key in args.backends.split(",")]
    if any(b.key != "jobs" for b in chosen):
        ensure_peer_venv()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    run: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()}",
        "postgres": _postgres(),
        "python": platform.python_version(),
        "jobs": args.jobs,
        "load_start": load(),
        "backends": {},
    }
    for backend in chosen:
        run["backends"][backend.key] = run_backend(backend, args)
    run["load_end"] = load()
    run["duration"] = time.monotonic() - _t0
    OUT.mkdir(exist_ok=True)
    (OUT / "django_tasks.json").write_text(json.dumps(run, indent=2, default=str))
    full = not args.quick and {"jobs", "tasksdb"} <= {b.key for b in chosen}
    print(write_reports(run, full))
    return 0


if __name__ == "__main__":
    sys.exit(main())
