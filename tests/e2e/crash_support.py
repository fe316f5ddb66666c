"""Helpers shared by the crash-safety tests (tests/e2e/test_crash_*.py)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until

# Short leases so that recovery happens within seconds (tests/settings.py reads these).
LEASE = 2.0
FAST_LEASES = {
    "DJANGO_JOBS_TEST_LEASE": str(LEASE),
    "DJANGO_JOBS_TEST_HEARTBEAT": "0.4",
    "DJANGO_JOBS_TEST_RECOVERY": "0.5",
}


def ids(jobs: Iterable[Job]) -> list[int]:
    return [job.pk for job in jobs]


def count(job_ids: list[int], status: str) -> int:
    return Job.objects.filter(pk__in=job_ids, status=status).count()


def wait_for(job_ids: list[int], status: str, timeout: float, message: str = "") -> None:
    """Wait until every job in ``job_ids`` has ``status``."""
    wait_until(
        lambda: count(job_ids, status) == len(job_ids),
        timeout,
        interval=0.1,
        message=message or f"{len(job_ids)} job(s) {status}",
    )


def nothing_active() -> bool:
    return not Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING]).exists()


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def worker_id(proc: object) -> object:
    """The Worker row id of a runworker subprocess (waits for its registration)."""
    from django_jobs.models import Worker

    pid = proc.pid  # type: ignore[attr-defined]
    return wait_until(
        lambda: Worker.objects.filter(pid=pid).values_list("id", flat=True).first(),
        20,
        message=f"worker {pid} registered",
    )
