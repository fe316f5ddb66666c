"""``using(idempotency_key=k, unique_for=timedelta)``: one job per key and period,
whatever its status, under concurrent enqueues (PostgreSQL and SQLite)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.utils import timezone

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import worker_env
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "jobs"])

HOUR = timedelta(hours=1)


def test_returns_the_job_enqueued_within_the_period_in_any_status():
    unique = tasks.add.using(idempotency_key="report:7", unique_for=HOUR)
    first = unique.enqueue(1, 2)
    assert unique.enqueue(1, 2).pk == first.pk  # READY: the active key already did this
    for status in (JobStatus.RUNNING, JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED):
        Job.objects.filter(pk=first.pk).update(status=status)
        again = unique.enqueue(1, 2)
        assert (again.pk, again.status) == (first.pk, status)
    assert Job.objects.count() == 1
    # Without unique_for, only an active job holds the key: a finished one does not.
    plain = tasks.add.using(idempotency_key="report:7").enqueue(1, 2)
    assert plain.pk != first.pk
    assert Job.objects.count() == 2


def test_after_the_period_a_new_job_is_created():
    unique = tasks.add.using(idempotency_key="digest", unique_for=timedelta(minutes=10))
    first = unique.enqueue(1, 1)
    Job.objects.filter(pk=first.pk).update(
        status=JobStatus.SUCCESSFUL, enqueued_at=timezone.now() - timedelta(minutes=11)
    )
    second = unique.enqueue(1, 1)
    assert second.pk != first.pk and second.status == JobStatus.READY
    assert unique.enqueue(1, 1).pk == second.pk
    # A longer period still sees the first one: the period is the caller's.
    longer = tasks.add.using(idempotency_key="digest", unique_for=timedelta(minutes=30))
    assert longer.enqueue(1, 1).pk == second.pk  # the newest holder
    assert Job.objects.count() == 2


def test_enqueue_many_applies_it_per_suffixed_key():
    unique = tasks.add.using(idempotency_key="batch", unique_for=HOUR)
    first = unique.enqueue_many([(1, 1), (2, 2)])
    Job.objects.filter(pk__in=[j.pk for j in first]).update(status=JobStatus.SUCCESSFUL)
    again = unique.enqueue_many([(1, 1), (2, 2), (3, 3)])
    assert [j.pk for j in again[:2]] == [j.pk for j in first]
    assert again[2].idempotency_key == "batch:2" and again[2].status == JobStatus.READY
    assert Job.objects.count() == 3


def test_bad_input_is_refused_and_nothing_is_written():
    with pytest.raises(InvalidJobOptions, match="unique_for needs an idempotency_key"):
        tasks.add.using(unique_for=HOUR)
    for bad in (timedelta(0), timedelta(seconds=-5), 3600, "1h"):
        with pytest.raises(InvalidJobOptions, match="unique_for must be a positive timedelta"):
            tasks.add.using(idempotency_key="k", unique_for=bad)
    with pytest.raises(TypeError, match=r"unknown option\(s\) unique_for"):
        tasks.task(unique_for=HOUR)
    assert not Job.objects.exists()


@pytest.mark.parametrize("holder_finishes", [False, True], ids=["active", "finishing"])
def test_concurrent_enqueuers_make_one_job(holder_finishes):
    """8 threads enqueue the same key at once, 10 rounds each, each in a
    transaction held open a little. With ``finishing``, the job is finished
    (here: cancelled) in the enqueuing transaction itself, before it commits:
    an enqueuer waiting on the active-key unique index then finds no active
    holder and would insert a second job; unique_for's lock (PostgreSQL) or
    SQLite's serialized writers make it wait and return the first one."""
    key, enqueuers, rounds = "nightly", 8, 10
    unique = tasks.add.using(idempotency_key=key, unique_for=HOUR)
    barrier = threading.Barrier(enqueuers)
    seen: list[int] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            barrier.wait(10)
            for _ in range(rounds):
                with transaction.atomic():
                    job = unique.enqueue(1, 2)
                    seen.append(job.pk)
                    if holder_finishes:
                        Job.objects.filter(pk=job.pk, status=JobStatus.READY).update(
                            status=JobStatus.CANCELLED, finished_at=timezone.now()
                        )
                    time.sleep(0.01)  # others queue up behind this transaction
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(enqueuers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(seen) == enqueuers * rounds
    assert Job.objects.filter(idempotency_key=key).count() == 1
    assert set(seen) == {Job.objects.get(idempotency_key=key).pk}


ENQUEUER = """
import sys, time, django
django.setup()
from django.db import transaction
from django.utils import timezone
from datetime import timedelta
from django_jobs.models import Job
from tests.testapp import tasks
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
unique = tasks.add.using(idempotency_key="across-processes", unique_for=timedelta(hours=1))
for _ in range(10):
    with transaction.atomic():
        job = unique.enqueue(1, 2)
        Job.objects.filter(pk=job.pk, status="READY").update(
            status="SUCCESSFUL", finished_at=timezone.now()
        )
        time.sleep(0.01)
    print(job.pk)
"""


def test_concurrent_enqueuer_processes_make_one_job():
    """8 processes, started together, enqueue the same key 10 times each and
    finish the job in the same transaction (the case the active-key index
    alone gets wrong)."""
    start = time.time() + 3  # every interpreter has set Django up by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUER, str(start)],
            env=worker_env(),
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    seen = {int(line) for out, _ in outputs for line in out.split()}
    assert Job.objects.filter(idempotency_key="across-processes").count() == 1
    assert seen == {Job.objects.get(idempotency_key="across-processes").pk}
