"""Three worker hosts in network namespaces; one is cut off from PostgreSQL mid-drain.

The test makes three network namespaces joined to this one by veth pairs
(tests/e2e/netns_support.py, names and subnets unique to the run, removed
afterwards even on failure) and starts a private PostgreSQL that listens only
on the three host-side veth addresses. One ``runworker`` per namespace reaches
it over its own link. Mid-drain, host 0's link goes down: its packets are
dropped, so its connections hang as in a real partition (no RST). Then:

- the jobs it held run again on the other hosts once their leases expire;
- every atomic job has exactly one effect (``Execution``, unique per job,
  written in the job's transaction), from the attempt that completed it;
- when the link comes back, host 0's late writes (completions and failures
  with its stale claim tokens) change no row.

The server runs with ``idle_in_transaction_session_timeout``, as a production
server should: the partitioned host's open atomic transaction (and its row
locks) ends on the server instead of blocking the rerun until TCP gives up.

No iptables/nft here (not installed on the test machine), and none needed:
a veth end set down drops its peer's packets silently, which is what a
partition looks like to the worker. Missing root, iproute2 or netns support
fails under ``CI=true`` and skips with the reason elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import ROOT, WorkerProcess, wait_until, worker_env
from tests.e2e.crash_support import FAST_LEASES, worker_id
from tests.e2e.netns_support import Host, Hosts, NetnsUnavailable, PrivateServer
from tests.testapp import tasks
from tests.testapp.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

DATABASE = "jobs_hosts"
HOSTS = 3
# Ends a partitioned client's open transaction on the server (milliseconds).
IDLE_IN_TRANSACTION = 1500


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def hosts() -> Iterator[tuple[Hosts, list[Host]]]:
    network = Hosts(HOSTS)
    try:
        try:
            created = network.create()
        except NetnsUnavailable as exc:
            unavailable(f"cannot simulate hosts with network namespaces: {exc}")
        yield network, created
    finally:
        problems = network.remove()
        assert not problems, problems
        assert not network.leftovers()


@pytest.fixture
def server(hosts: tuple[Hosts, list[Host]]) -> Iterator[PrivateServer]:
    _, created = hosts
    try:
        private = PrivateServer(
            [host.server_ip for host in created],
            options={"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION)},
        )
    except NetnsUnavailable as exc:
        unavailable(str(exc))
    try:
        private.start()
        private.create_database(DATABASE)
        migrate = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
            cwd=ROOT,
            env=host_env(private, created[-1]),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield private
    finally:
        private.stop()


def host_env(server: PrivateServer, host: Host) -> dict[str, str]:
    """tests.settings pointed at the private server over ``host``'s link, short leases."""
    return worker_env(
        DJANGO_JOBS_TEST_DB="postgres",
        DATABASE_URL=server.url(host.server_ip, DATABASE),
        DJANGO_JOBS_TEST_DB_NAME=DATABASE,
        **FAST_LEASES,
    )


@pytest.fixture
def on_server(
    server: PrivateServer, hosts: tuple[Hosts, list[Host]], transactional_db: None
) -> Iterator[None]:
    """This process's ``default`` alias talks to the private server (over the last host's
    link, which is never cut) meanwhile."""
    _, created = hosts
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    conn.close()
    conn.settings_dict.update(
        HOST=created[-1].server_ip,
        PORT=str(server.port),
        NAME=DATABASE,
        USER="postgres",
        PASSWORD="",
    )
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


class HostWorker(WorkerProcess):
    """``runworker`` inside a host's network namespace (``ip netns exec`` execs it: same pid)."""

    def __init__(self, host: Host, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = [host.netns, *args]
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            host.command(sys.executable, str(ROOT / "manage.py"), "runworker", *args),
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def start_host_worker(
    request: pytest.FixtureRequest, tmp_path: Path, server: PrivateServer
) -> Iterator[Any]:
    started: list[HostWorker] = []

    def start(host: Host, *args: str) -> HostWorker:
        proc = HostWorker(host, list(args), host_env(server, host), tmp_path / f"{host.netns}.log")
        started.append(proc)
        return proc

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for proc in started:
        proc.close()
        if failed:
            sys.stderr.write(f"--- {proc.log_path.name} ---\n{proc.output()[-4000:]}\n")
    if failed:
        sys.stderr.write(f"--- server.log ---\n{server.log()[-3000:]}\n")


def outcomes(job_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Every column a late write could change, per job."""
    fields = ["status", "worker_id", "claim_token", "attempts", "result", "errors", "finished_at"]
    return {
        row[0]: row[1:] for row in Job.objects.filter(pk__in=job_ids).values_list("pk", *fields)
    }


def test_a_host_cut_off_mid_drain_its_jobs_run_elsewhere_once_and_its_late_writes_change_nothing(
    hosts, on_server, start_host_worker
):
    network, created = hosts
    atomic, plain = [], []
    for _ in range(8):  # interleaved in claim order: every host holds both kinds
        atomic += tasks.record_atomic_slowly.enqueue_many([(0.1,)] * 25)
        plain += tasks.sleep_for.enqueue_many([(0.4,)] * 3)
    job_ids = [job.pk for job in atomic + plain]
    workers = [start_host_worker(host, "--concurrency", "4") for host in created]
    ids = [worker_id(proc) for proc in workers]
    # Every connection to the server comes over the links: the three hosts' own
    # addresses, and this process's over the last link.
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend'"
        )
        clients = {row[0] for row in cursor.fetchall()}
    assert clients == {host.ns_ip for host in created} | {created[-1].server_ip}, clients
    cut_host, cut_worker = created[0], ids[0]
    wait_until(
        lambda: (
            Execution.objects.count() >= 30
            and Job.objects.filter(worker_id=cut_worker, status=JobStatus.RUNNING).exists()
        ),
        30,
        message="work under way on host 0",
    )
    network.cut(cut_host)
    time.sleep(0.3)  # whatever host 0 had on the wire before the cut has landed
    # Host 0 can renew nothing now: these leases are final.
    held = dict(
        Job.objects.filter(worker_id=cut_worker, status=JobStatus.RUNNING).values_list(
            "pk", "lease_expires_at"
        )
    )
    assert held, "host 0 held running jobs when it was cut off"
    assert workers[0].popen.poll() is None

    wait_until(
        lambda: (
            Job.objects.filter(pk__in=job_ids, status=JobStatus.SUCCESSFUL).count() == len(job_ids)
        ),
        30,
        interval=0.1,
        message="every job done by the two connected hosts",
    )
    before_heal = outcomes(job_ids)
    # Host 0's jobs ran again elsewhere, only after their leases expired, attempt counted.
    for job in Job.objects.filter(pk__in=held):
        assert job.worker_id in ids[1:], job.pk
        assert job.attempts >= 2, job.pk
        assert job.last_attempted_at >= held[job.pk], (job.pk, held[job.pk])
    # Atomic jobs: exactly one effect each, from the attempt that completed the job.
    attempts = dict(Job.objects.filter(pk__in=[j.pk for j in atomic]).values_list("pk", "attempts"))
    effects = dict(Execution.objects.values_list("job_id", "attempt"))
    assert effects == attempts
    assert not DeadLetter.objects.exists()

    network.heal(cut_host)
    healed_at = timezone.now()
    wait_until(
        lambda: Worker.objects.get(id=cut_worker).last_heartbeat_at > healed_at,
        25,
        message="host 0 heartbeats again after the link came back",
    )
    wait_until(lambda: "claim was lost" in workers[0].output(), 15, message="host 0's late writes")
    assert workers[0].terminate() == 0
    # Its late writes were refused by the fence: not one row changed.
    assert outcomes(job_ids) == before_heal
    assert dict(Execution.objects.values_list("job_id", "attempt")) == attempts
    assert workers[1].terminate() == 0 and workers[2].terminate() == 0
