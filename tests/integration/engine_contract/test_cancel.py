"""Cancelling through the engine: READY at once, RUNNING by request; the
worker's CANCELLED write fenced like every write after a claim; a job whose
cancel was requested is never run again, whoever ends it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import DeadLetter, Job
from django_jobs.rows import Cancellation, CancelReport, Completion, Failure
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()
ERROR = {"exception_class": "django_jobs.exceptions.JobCancelled", "message": "stopped"}


def claim_one(engine):
    (job,) = engine.claim_jobs(WORKER, None, 1, 30)
    return job


def test_cancel_ends_ready_jobs_and_requests_running_ones(engine):
    running = tasks.noop.enqueue()
    job = claim_one(engine)
    ready = tasks.noop.enqueue()
    done = tasks.noop.enqueue()
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCESSFUL)
    report = engine.cancel([running.pk, ready.pk, done.pk, 999999])
    assert report == CancelReport(cancelled=(ready.pk,), requested=(running.pk,))
    assert Job.objects.get(pk=ready.pk).status == JobStatus.CANCELLED
    row = Job.objects.get(pk=running.pk)
    assert row.status == JobStatus.RUNNING and row.cancel_requested_at is not None
    assert Job.objects.get(pk=done.pk).status == JobStatus.SUCCESSFUL
    first = row.cancel_requested_at
    assert engine.cancel([running.pk]).requested == (running.pk,)  # asked again: same time
    assert Job.objects.get(pk=running.pk).cancel_requested_at == first
    # The heartbeat's renewal reports it, in the same statement.
    renewal = engine.renew_leases([job], 30)
    assert (renewal.renewed, renewal.cancel_requested) == (1, frozenset({running.pk}))
    assert engine.heartbeat([job], 30) == 1
    assert engine.cancel_jobs([]) == 0


def test_cancelled_write_is_fenced_and_loses_to_a_completion_that_came_first(engine):
    tasks.noop.enqueue()
    job = claim_one(engine)
    engine.cancel([job.id])
    assert engine.complete_jobs([Completion(job, '"done"')]) == {job.id}
    assert engine.cancel_running(Cancellation(job, ERROR)) is False  # one outcome: SUCCESSFUL
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.errors, row.result) == (JobStatus.SUCCESSFUL, [], "done")

    tasks.noop.enqueue()
    job = claim_one(engine)
    engine.cancel([job.id])
    assert engine.cancel_running(Cancellation(job, ERROR)) is True
    assert engine.complete_jobs([Completion(job, '"late"')]) == set()  # one outcome: CANCELLED
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.errors, row.result) == (JobStatus.CANCELLED, [ERROR], None)
    assert row.finished_at is not None and row.lease_expires_at is None
    assert engine.cancel_running(Cancellation(job, ERROR)) is False  # finished: nothing more


def test_a_cancel_requested_job_is_never_run_again(engine):
    # A failed attempt (retry due) ends CANCELLED, without a dead letter.
    tasks.noop.enqueue()
    job = claim_one(engine)
    engine.cancel([job.id])
    assert engine.fail_job(Failure(job, {"message": "boom"}, timezone.now()))
    row = Job.objects.get(pk=job.id)
    assert row.status == JobStatus.CANCELLED and row.errors == [{"message": "boom"}]
    # Its worker lost: recovery ends it CANCELLED instead of READY.
    tasks.noop.enqueue()
    job = claim_one(engine)
    engine.cancel([job.id])
    Job.objects.filter(pk=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = engine.recover_expired()
    assert (report.cancelled, report.retried, report.dead_lettered) == (1, 0, 0)
    row = Job.objects.get(pk=job.id)
    assert row.status == JobStatus.CANCELLED and row.finished_at is not None
    assert row.errors[-1]["exception_class"] == "django_jobs.exceptions.WorkerLost"
    # Handed back unstarted (prefetch, shutdown): CANCELLED, not READY.
    tasks.noop.enqueue()
    job = claim_one(engine)
    engine.cancel([job.id])
    assert engine.release_jobs([job]) == 1
    assert Job.objects.get(pk=job.id).status == JobStatus.CANCELLED
    assert not DeadLetter.objects.exists()
    assert not Job.objects.filter(status=JobStatus.READY).exists()
    # An operator's retry starts afresh, without the old request.
    assert engine.retry_jobs([job.id]) == 1
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.cancel_requested_at) == (JobStatus.READY, None)
