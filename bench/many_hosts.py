"""Jobs/s with 1, 2 and 3 worker hosts (network namespaces) draining one queue.

    python bench/many_hosts.py [--jobs 20000] [--rounds 3] [--fsync on]

Needs root and iproute2. Makes three network namespaces joined to this one by
veth pairs and a private PostgreSQL listening only on the host-side veth
addresses (tests/e2e/netns_support.py; everything is removed at the end), so
each ``runworker`` (defaults: 10 threads, LISTEN/NOTIFY) reaches the database
over its own link, as a worker on another machine would.

Each round drains ``--jobs`` no-op jobs with, in turn: 1 host, 2 hosts,
3 hosts, and 3 worker processes in one namespace (the control: as many
processes as 3 hosts, without the extra links). The order alternates from
round to round so that a change in the machine's load hits them alike. As in
bench/workloads.py, the workers start and register first, the jobs are
inserted in one statement (the rows ``enqueue_many`` writes), and the rate
is taken from the first job finished to the last (the jobs' ``finished_at``). Meanwhile
``pg_stat_activity`` is sampled to count each worker's connections.

Then one worker at a time, idle and draining 5,000 jobs, with NOTIFY on and
off, the relay/scheduler/alert loops on and off, 10 and 50 threads, and the
process pool: its connections, counted on the server by client address.

Writes the "Many hosts" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import load, log, write_results_section  # noqa: E402
from tests.e2e.netns_support import Host, Hosts, PrivateServer  # noqa: E402

DATABASE = "bench_hosts"
TITLE = "## Many hosts (network namespaces)"


@dataclass(frozen=True)
class Setup:
    label: str
    hosts: tuple[int, ...]  # one worker process per entry, on that host


SETUPS = [
    Setup("1 host", (0,)),
    Setup("2 hosts", (0, 1)),
    Setup("3 hosts", (0, 1, 2)),
    Setup("3 processes on 1 host (control)", (0, 0, 0)),
]
NOOP, QUERY = "bench.clients.jobs_tasks.noop", "bench.clients.jobs_tasks.query"
# (label, runworker options, DJANGO_JOBS overrides, task drained)
CONNECTION_VARIANTS: list[tuple[str, list[str], dict[str, object], str]] = [
    ("defaults (10 threads, NOTIFY, relay, scheduler, alerts), no-op jobs", [], {}, NOOP),
    ("USE_NOTIFY False", [], {"USE_NOTIFY": False}, NOOP),
    (
        "--no-relay --no-scheduler --no-alerts",
        ["--no-relay", "--no-scheduler", "--no-alerts"],
        {},
        NOOP,
    ),
    (
        "USE_NOTIFY False --no-relay --no-scheduler --no-alerts",
        ["--no-relay", "--no-scheduler", "--no-alerts"],
        {"USE_NOTIFY": False},
        NOOP,
    ),
    ("--concurrency 50, no-op jobs", ["--concurrency", "50"], {}, NOOP),
    ("defaults, jobs that run a query", [], {}, QUERY),
    ("--concurrency 50, jobs that run a query", ["--concurrency", "50"], {}, QUERY),
    (
        "--pool process --concurrency 4, jobs that run a query",
        ["--pool", "process", "--concurrency", "4"],
        {},
        QUERY,
    ),
]
# Ready jobs of ``task`` in one statement, as the prefill client's enqueue_many
# would write them (the query task has no client command of its own).
INSERT_READY = """
INSERT INTO django_jobs_job (
    task_name, queue_name, priority, args, kwargs, status, run_after, attempts,
    max_attempts, timeout, errors, meta
)
SELECT %s, 'default', 0, '[]', '{}', 'READY', now(), 0, 3, 300, '[]', '{}'
FROM generate_series(1, %s)
"""


class Bench:
    def __init__(self, hosts: list[Host], server: PrivateServer) -> None:
        self.hosts = hosts
        self.server = server
        self.admin_host = hosts[-1]  # the orchestrator's link (idle during drains)
        self.conn = psycopg.connect(
            server.url(self.admin_host.server_ip, DATABASE), autocommit=True
        )

    def env(self, host: Host, options: dict[str, object] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings_jobs",
            "BENCH_DB": DATABASE,
            "BENCH_PGUSER": "postgres",
            "BENCH_PGHOST": host.server_ip,
            "BENCH_PGPORT": str(self.server.port),
            "BENCH_DJANGO_JOBS": json.dumps(options or {}),
            "PYTHONUNBUFFERED": "1",
            # This checkout's django_jobs and bench, whatever the venv has installed.
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }

    def client(self, *args: str) -> dict[str, object]:
        """Run the bench's django_jobs client; its JSON answer."""
        cmd = [sys.executable, str(ROOT / "bench/clients/django_jobs_client.py"), *args]
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env=self.env(self.admin_host),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr[-2000:]}")
        answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def prune_rate(self, rows: int, seconds: float) -> float:
        """Rows/s the worker's pruner deletes from ``rows`` old finished jobs."""
        self.conn.execute("TRUNCATE django_jobs_job CASCADE")
        self.client("prefill-finished", "--n", str(rows))
        before = self.scalar("SELECT count(*) FROM django_jobs_job")
        started = time.monotonic()
        self.client("prune", "--seconds", str(seconds))
        elapsed = time.monotonic() - started - 1.0  # about the client's start-up
        return (before - self.scalar("SELECT count(*) FROM django_jobs_job")) / elapsed

    def scalar(self, sql: str) -> int:
        row = self.conn.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def workers(
        self, on: tuple[int, ...], args: list[str], options: dict[str, object] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        (ROOT / "bench/out").mkdir(exist_ok=True)
        procs = []
        for index in on:
            host = self.hosts[index]
            command = host.command(sys.executable, str(ROOT / "manage.py"), "runworker", *args)
            with (ROOT / f"bench/out/hosts-{host.netns}.log").open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=self.env(host, options), stdout=out, stderr=out
                    )
                )
        deadline = time.monotonic() + 60
        pids = ",".join(str(proc.pid) for proc in procs)
        while self.scalar(f"SELECT count(*) FROM django_jobs_worker WHERE pid IN ({pids})") < len(
            procs
        ):
            if time.monotonic() > deadline or any(proc.poll() is not None for proc in procs):
                stop(procs)
                raise RuntimeError("workers did not register; see bench/out/hosts-*.log")
            time.sleep(0.1)
        return procs

    def connections(self) -> dict[str, int]:
        """Client backends per client address (the workers' namespace addresses)."""
        rows = self.conn.execute(
            "SELECT host(client_addr), count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND datname = current_database() "
            "AND pid <> pg_backend_pid() GROUP BY 1"
        ).fetchall()
        return {str(addr): int(n) for addr, n in rows}

    def drain(
        self,
        on: tuple[int, ...],
        jobs: int,
        args: list[str],
        options: dict[str, object] | None = None,
        task: str = NOOP,
    ) -> tuple[float, int, int, float, float, float, float]:
        """(jobs/s, idle connections, peak connections, worker CPU s, PostgreSQL CPU s,
        WAL bytes per job, table + index bytes per job) for workers on ``on``."""
        self.conn.execute("TRUNCATE django_jobs_job CASCADE")
        procs = self.workers(on, args, options)
        addresses = {self.hosts[i].ns_ip for i in on}
        peak: dict[str, int] = defaultdict(int)
        done = threading.Event()

        def sample() -> None:
            with psycopg.connect(
                self.server.url(self.admin_host.server_ip, DATABASE), autocommit=True
            ) as own:
                while not done.is_set():
                    for addr, n in own.execute(
                        "SELECT host(client_addr), count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' GROUP BY 1"
                    ).fetchall():
                        peak[str(addr)] = max(peak[str(addr)], int(n))
                    time.sleep(0.05)

        try:
            time.sleep(1.0)  # every loop of the workers has connected and settled
            idle = sum(n for addr, n in self.connections().items() if addr in addresses)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            workers_before = sum(cpu_seconds(proc.pid) for proc in procs)
            server_before = cpu_seconds(self.server.postmaster(), waited=True)
            lsn = self.conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            # The same rows enqueue_many writes, in one statement and transaction.
            self.conn.execute(INSERT_READY, [task, jobs])
            deadline = time.monotonic() + 300
            unfinished = "SELECT count(*) FROM django_jobs_job WHERE status IN ('READY', 'RUNNING')"
            while self.scalar(unfinished) > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("drain did not finish in 300 s")
                time.sleep(0.1)
            workers_cpu = sum(cpu_seconds(proc.pid) for proc in procs) - workers_before
            server_cpu = cpu_seconds(self.server.postmaster(), waited=True) - server_before
            wal = self.conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn[0] if lsn else None]
            ).fetchone()
            size = self.conn.execute("SELECT pg_total_relation_size('django_jobs_job')").fetchone()
            done.set()
            sampler.join(5)
        finally:
            done.set()
            stop(procs)
        row = self.conn.execute(
            "SELECT count(*), extract(epoch FROM max(finished_at) - min(finished_at)) "
            "FROM django_jobs_job WHERE status = 'SUCCESSFUL'"
        ).fetchone()
        if row is None or int(row[0]) != jobs:
            raise RuntimeError(f"expected {jobs} successful jobs, found {row}")
        rate = (jobs - 1) / float(row[1])
        peak_total = sum(n for addr, n in peak.items() if addr in addresses)
        wal_per_job = float(wal[0]) / jobs if wal else 0.0
        size_per_job = float(size[0]) / jobs if size else 0.0
        return rate, idle, peak_total, workers_cpu, server_cpu, wal_per_job, size_per_job


def cpu_seconds(pid: int, *, waited: bool = False) -> float:
    """CPU time of ``pid`` and its live children (from /proc); with ``waited``, also
    what its exited children used (``cutime``: the postmaster reaps its backends)."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(of: int) -> list[str]:
        try:
            return Path(f"/proc/{of}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return []

    own = fields(pid)
    if not own:
        return 0.0
    total = int(own[11]) + int(own[12]) + (int(own[13]) + int(own[14]) if waited else 0)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (child := fields(int(entry.name))) and child[1] == str(pid):
            total += int(child[11]) + int(child[12])
    return total / tick


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fsync", choices=["on", "off"], default="on")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args()
    load_start, started = load(), time.monotonic()
    network = Hosts(3)
    try:
        hosts = network.create()
        log(f"hosts: {', '.join(f'{h.netns} {h.ns_ip} -> {h.server_ip}' for h in hosts)}")
        server = PrivateServer(
            [host.server_ip for host in hosts],
            options={"fsync": args.fsync, "max_connections": "200"},
        )
        try:
            server.start()
            server.create_database(DATABASE)
            bench = Bench(hosts, server)
            bench.client("setup")
            version = bench.conn.execute("SHOW server_version").fetchone()
            rates: dict[str, list[float]] = defaultdict(list)
            conns: dict[str, tuple[int, int]] = {}
            cpu: dict[str, list[tuple[float, float]]] = defaultdict(list)
            storage: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for round_no in range(args.rounds):
                order = SETUPS if round_no % 2 == 0 else SETUPS[::-1]
                for setup in order:
                    rate, idle, peak, worker_cpu, server_cpu, wal, size = bench.drain(
                        setup.hosts, args.jobs, []
                    )
                    storage[setup.label].append((wal, size))
                    rates[setup.label].append(rate)
                    conns[setup.label] = (idle, peak)
                    cpu[setup.label].append((worker_cpu, server_cpu))
                    log(
                        f"round {round_no + 1} {setup.label}: {rate:,.0f}/s, "
                        f"connections {idle} idle, {peak} peak, CPU s: workers "
                        f"{worker_cpu:.2f}, PostgreSQL {server_cpu:.2f}"
                    )
            per_worker = []
            for label, extra, options, task in CONNECTION_VARIANTS:
                idle, peak = bench.drain((0,), 5_000, extra, options, task)[1:3]
                per_worker.append((label, idle, peak))
                log(f"connections, {label}: {idle} idle, {peak} peak")
            prune = bench.prune_rate(300_000, 15.0)
            log(f"pruning: {prune:,.0f} rows/s")
        finally:
            server.stop()
    finally:
        problems = network.remove()
        if problems or network.leftovers():
            log(f"cleanup problems: {problems} {network.leftovers()}")
    section = report(
        args,
        rates,
        conns,
        cpu,
        storage,
        prune,
        per_worker,
        load_start,
        time.monotonic() - started,
        version,
    )
    print(section)
    if not args.no_write:
        write_results_section(TITLE, section)


def report(
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    conns: dict[str, tuple[int, int]],
    cpu: dict[str, list[tuple[float, float]]],
    storage: dict[str, list[tuple[float, float]]],
    prune: float,
    per_worker: list[tuple[str, int, int]],
    load_start: str,
    seconds: float,
    version: tuple[object, ...] | None,
) -> str:
    one = statistics.median(rates["1 host"])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    server = version[0] if version else "?"
    lines = [
        TITLE,
        "",
        f"Generated by `bench/many_hosts.py` on {when}: "
        f"{args.jobs:,} no-op jobs per drain, {args.rounds} rounds in alternating order, "
        f"a private PostgreSQL {server} (fsync {args.fsync}) reachable only "
        "over the hosts' veth links; each worker `runworker` on its defaults (10 threads). "
        f"Load average at start {load_start}, at end {load()}; {seconds:.0f} s. "
        f"The machine ({os.cpu_count()} cores) was shared with other work during the run.",
        "",
        "| worker processes | jobs/s (median) | runs | vs 1 host "
        "| connections per process, idle / peak | worker CPU per job | PostgreSQL CPU per job "
        "| jobs per PostgreSQL CPU-second | WAL per job |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in SETUPS:
        runs = rates[setup.label]
        median = statistics.median(runs)
        idle, peak = conns[setup.label]
        count = len(setup.hosts)
        worker_us = statistics.median(w for w, _ in cpu[setup.label]) / args.jobs * 1e6
        server_us = statistics.median(p for _, p in cpu[setup.label]) / args.jobs * 1e6
        lines.append(
            f"| {setup.label} | {median:,.0f}/s | {', '.join(f'{r:,.0f}' for r in runs)} "
            f"| x{median / one:.2f} | {idle / count:.1f} / {peak / count:.1f} "
            f"| {worker_us:.0f} µs | {server_us:.0f} µs | {1e6 / server_us:,.0f} "
            f"| {statistics.median(w for w, _ in storage[setup.label]):,.0f} B |"
        )
    size = statistics.median(b for runs in storage.values() for _, b in runs)
    lines += [
        "",
        "CPU per job: user+system time from /proc over the drain (from the insert of the jobs "
        "to the last one finished), of the worker processes and of every PostgreSQL process "
        "(backends, WAL writer, checkpointer...), divided by the jobs; the PostgreSQL figure "
        "includes the one-statement insert of the jobs. With 2 cores for PostgreSQL and the "
        "workers together, more worker processes compete with PostgreSQL for the same cores: "
        "3 hosts cannot scale linearly here, and the control row shows what the extra links "
        "cost on their own (3 processes either way).",
        "",
        f"Table + indexes right after a drain (finished rows, before any vacuum): {size:,.0f} "
        f"bytes per no-op job. Pruning (the worker's pruner: DELETE batches of "
        f"PRUNE_BATCH_SIZE 1,000 with its 50 ms breather, from 300,000 finished rows, "
        f"15 s, no workers running): {prune:,.0f} rows/s.",
        "",
        "Connections of one worker process (server-side count by client address), idle and at the "
        "peak of a 5,000-job drain:",
        "",
        "| worker | idle | peak |",
        "|---|---|---|",
        *(f"| {label} | {idle} | {peak} |" for label, idle, peak in per_worker),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
