"""recover_expired: RUNNING jobs whose lease ran out go back to READY (the
attempt counted, a WorkerLost entry added) or, exhausted, to FAILED with a
dead letter."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import DeadLetter, Job
from django_jobs.rows import RecoveryReport
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER, STALE = uuid.uuid4(), uuid.uuid4()


def claim(engine, limit=10, worker=WORKER):
    return engine.claim_jobs(worker, None, limit, 30)


def expire_all() -> None:
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_recover_expired_requeues_or_dead_letters(engine):
    retry = tasks.noop.enqueue()
    exhausted = tasks.always_fails.enqueue()  # max_attempts=2
    Job.objects.filter(pk=exhausted.pk).update(attempts=1)
    claim(engine, limit=2)
    expire_all()
    report = engine.recover_expired()
    assert (report.retried, report.dead_lettered) == (1, 1)
    retry.refresh_from_db()
    exhausted.refresh_from_db()
    assert retry.status == JobStatus.READY and retry.attempts == 1
    assert "WorkerLost" in retry.errors[-1]["exception_class"]
    assert exhausted.status == JobStatus.FAILED
    assert "worker lost" in DeadLetter.objects.get(job_id=exhausted.pk).reason


def test_a_recovered_job_is_due_now_with_a_worker_lost_entry(engine):
    tasks.noop.using(run_after=timezone.now() - timedelta(hours=1)).enqueue()
    (claimed,) = claim(engine)
    expire_all()
    before = timezone.now()
    assert engine.recover_expired().retried == 1
    job = Job.objects.get()
    assert (job.status, job.attempts, job.lease_expires_at) == (JobStatus.READY, 1, None)
    assert job.finished_at is None
    assert before - timedelta(seconds=5) <= job.run_after <= timezone.now()
    [entry] = job.errors
    assert entry["exception_class"] == "django_jobs.exceptions.WorkerLost"
    assert (entry["attempt"], entry["worker_id"], entry["traceback"]) == (1, str(WORKER), "")
    assert str(WORKER) in entry["message"] and "stopped renewing its lease" in entry["message"]
    assert entry["at"]
    assert not DeadLetter.objects.exists()
    (again,) = claim(engine)  # claimable at once
    assert again.id == claimed.id and again.attempts == 2


def test_recovery_counts_the_attempt_and_keeps_the_history(engine):
    job = tasks.fail_times.enqueue(0)  # max_attempts=3
    for attempt in (1, 2, 3):
        (claimed,) = engine.claim_jobs(STALE, None, 1, 30)
        assert claimed.attempts == attempt
        expire_all()
        engine.recover_expired()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == 3
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert {e["worker_id"] for e in job.errors} == {str(STALE)}
    letter = DeadLetter.objects.get(job_id=job.pk)
    assert letter.reason.startswith("worker lost during attempt 3 of 3")
    assert letter.errors == job.errors
    assert job.finished_at is not None and job.lease_expires_at is None


def test_live_lease_is_not_recovered(engine):
    tasks.noop.enqueue()
    claim(engine)
    assert engine.recover_expired().retried == 0
    assert Job.objects.get().status == JobStatus.RUNNING


def test_recovery_takes_at_most_limit_jobs_oldest_lease_first(engine):
    tasks.noop.enqueue_many([(), (), ()])
    claimed = claim(engine)
    now = timezone.now()
    for age, job in zip((1, 3, 2), claimed, strict=True):
        Job.objects.filter(pk=job.id).update(lease_expires_at=now - timedelta(minutes=age))
    report = engine.recover_expired(limit=2)
    assert (report.retried, report.dead_lettered) == (2, 0)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {
        claimed[0].id: JobStatus.RUNNING,
        claimed[1].id: JobStatus.READY,
        claimed[2].id: JobStatus.READY,
    }
    assert engine.recover_expired(limit=2).retried == 1


def test_jobs_that_are_not_running_are_never_recovered(engine):
    ready, done = tasks.noop.enqueue_many([(), ()])
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCESSFUL)
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert engine.recover_expired() == RecoveryReport(retried=0, dead_lettered=0)
    assert dict(Job.objects.values_list("pk", "status")) == {
        ready.pk: JobStatus.READY,
        done.pk: JobStatus.SUCCESSFUL,
    }
    assert all(not job.errors for job in Job.objects.all())


def test_release_orphans_hands_back_only_our_unknown_claims_attempt_not_counted(engine):
    # A claim whose answer a lost connection took: the jobs are RUNNING
    # under our id, but the worker never saw them.
    me, other = uuid.uuid4(), uuid.uuid4()
    for n in range(4):
        tasks.add.enqueue(n, n)
    known, *lost = engine.claim_jobs(me, None, 3, 30)
    (theirs,) = engine.claim_jobs(other, None, 1, 30)
    Job.objects.filter(pk=lost[0].id).update(cancel_requested_at=timezone.now())
    assert engine.release_orphans(me, [known.id]) == 2
    rows = {job.pk: job for job in Job.objects.all()}
    assert rows[known.id].status == rows[theirs.id].status == JobStatus.RUNNING
    assert rows[known.id].claim_token == known.claim_token
    cancelled, ready = rows[lost[0].id], rows[lost[1].id]
    assert (cancelled.status, ready.status) == (JobStatus.CANCELLED, JobStatus.READY)
    assert ready.attempts == 0 and ready.claim_token is None and ready.worker_id is None
    assert ready.started_at is None and ready.lease_expires_at is None
    assert engine.release_orphans(me, [known.id]) == 0
