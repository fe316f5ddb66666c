"""Leases and recovery with real processes: killed workers' jobs come back,
paused workers' late writes change nothing, live long jobs are left alone."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from django_jobs.models import DeadLetter, Job, Worker
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.e2e.crash_support import FAST_LEASES, LEASE, count, ids, wait_for, worker_id
from tests.testapp import tasks
from tests.testapp.models import Event, Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_sigkill_mid_50_jobs_they_complete_elsewhere_with_attempts_counted(start_worker):
    jobs = tasks.slow_first_attempt.enqueue_many([(20,)] * 50)
    victim = start_worker("--concurrency", "50", env=FAST_LEASES)
    wait_for(ids(jobs), JobStatus.RUNNING, 30, "50 jobs running on the victim")
    victim_id = worker_id(victim)
    # 25 threads, 25 connections at most: the test server is shared.
    rescuer = start_worker("--concurrency", "25", env=FAST_LEASES)
    rescuer_id = worker_id(rescuer)
    killed = time.monotonic()
    victim.kill()
    # As if its Worker row were pruned already: recovery must not depend on it.
    Worker.objects.filter(id=victim_id).delete()
    wait_until(
        lambda: Job.objects.filter(pk__in=ids(jobs), worker_id=rescuer_id).count() >= 25,
        LEASE + 8,
        message="recovered jobs running on the rescuer",
    )
    latency = time.monotonic() - killed
    wait_for(ids(jobs), JobStatus.SUCCESSFUL, 30, "50 recovered jobs done")
    sys.stderr.write(f"recovery latency (SIGKILL -> 25 jobs running elsewhere): {latency:.1f}s\n")
    for job in Job.objects.filter(pk__in=ids(jobs)):
        assert job.attempts == 2 and job.worker_id == rescuer_id
        (lost,) = job.errors
        assert lost["exception_class"] == "django_jobs.exceptions.WorkerLost"
        assert lost["attempt"] == 1 and lost["worker_id"] == str(victim_id)
    assert sorted(Execution.objects.values_list("attempt", flat=True)) == [2] * 50
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()
    assert rescuer.terminate() == 0


def test_paused_worker_cannot_overwrite_an_outcome_after_losing_its_lease(start_worker):
    atomic = tasks.stale_atomic.enqueue(3)  # writes, sleeps, completes in one transaction
    plain = tasks.long_event.enqueue(3)  # completes through the worker's batched write
    both = [atomic.pk, plain.pk]
    paused = start_worker("--concurrency", "2", env=FAST_LEASES)
    wait_until(lambda: Event.objects.filter(job_id__in=both).count() == 1, 20)  # atomic: invisible
    wait_for(both, JobStatus.RUNNING, 10)
    paused.signal(signal.SIGSTOP)
    other = start_worker("--concurrency", "2", env=FAST_LEASES)
    other_id = worker_id(other)
    wait_for(both, JobStatus.SUCCESSFUL, 30, "both jobs recovered and done elsewhere")
    fields = ("status", "result", "attempts", "errors", "worker_id", "finished_at", "claim_token")
    before = list(Job.objects.filter(pk__in=both).order_by("pk").values(*fields))
    assert {row["worker_id"] for row in before} == {other_id}
    paused.signal(signal.SIGCONT)
    # The paused worker wakes up, its sleeps are over, and it tries to write.
    wait_until(
        lambda: (
            "claim lost while running; its writes rolled back" in paused.output()
            and "completion ignored, the claim was lost" in paused.output()
        ),
        20,
        message="the stale worker's two refused writes",
    )
    after = list(Job.objects.filter(pk__in=both).order_by("pk").values(*fields))
    assert after == before
    # The atomic job's stale attempt rolled its own write back with it.
    attempts = Event.objects.filter(job_id=atomic.pk).values_list("value__attempt", flat=True)
    assert list(attempts) == [2]
    # A plain job's body did run twice (at least once); its outcome was written once.
    assert sorted(
        Event.objects.filter(job_id=plain.pk).values_list("value__attempt", flat=True)
    ) == [1, 2]
    assert paused.terminate() == 0 and other.terminate() == 0


def test_long_job_on_a_healthy_worker_is_never_rescued(start_worker):
    job = tasks.long_event.enqueue(LEASE * 3 + 1)
    owner = start_worker("--concurrency", "1", env=FAST_LEASES)
    owner_id = worker_id(owner)
    wait_for([job.pk], JobStatus.RUNNING, 20)
    # Two idle workers scanning for expired leases twice a second all along.
    idle = [start_worker("--concurrency", "1", env=FAST_LEASES) for _ in range(2)]
    wait_for([job.pk], JobStatus.SUCCESSFUL, 30, "the long job")
    job.refresh_from_db()
    assert (job.attempts, job.errors, job.worker_id) == (1, [], owner_id)
    assert Event.objects.filter(job_id=job.pk).count() == 1, "it ran exactly once"
    assert count([job.pk], JobStatus.SUCCESSFUL) == 1
    assert all(proc.terminate() == 0 for proc in [owner, *idle])


def test_poison_job_in_the_thread_pool_is_dead_lettered_after_its_attempts(start_worker):
    """os._exit takes a thread-pool worker down; a supervisor restarts it; the
    job is recovered with the attempt counted, then dead-lettered: no crash loop."""
    poison = tasks.crash_exit.enqueue()  # max_attempts=2
    good = tasks.add.enqueue_many([(n, n) for n in range(10)])
    worker, crashes = start_worker("--concurrency", "2", env=FAST_LEASES), 0
    deadline = time.monotonic() + 60
    while Job.objects.get(pk=poison.pk).status != JobStatus.FAILED:
        assert time.monotonic() < deadline, f"not dead-lettered after {crashes} crashes"
        if worker.popen.poll() is not None:  # what systemd/Kubernetes would do
            assert worker.popen.returncode == 1
            crashes += 1
            worker = start_worker("--concurrency", "2", env=FAST_LEASES)
        time.sleep(0.1)
    assert crashes == 2
    poison.refresh_from_db()
    assert poison.attempts == 2
    assert [e["exception_class"] for e in poison.errors] == [
        "django_jobs.exceptions.WorkerLost"
    ] * 2
    reason = DeadLetter.objects.get(job_id=poison.pk).reason
    assert reason.startswith("worker lost during attempt 2 of 2")
    wait_for(ids(good), JobStatus.SUCCESSFUL, 30, "the other jobs")
    assert worker.terminate() == 0
