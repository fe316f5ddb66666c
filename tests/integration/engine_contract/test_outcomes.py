"""What a worker writes after a claim: complete, fail (retry or dead letter),
release, heartbeat; every one fenced on id AND claim token AND RUNNING."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.context import current_job, running
from django_jobs.models import DeadLetter, Job
from django_jobs.rows import Completion, Failure
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER, STALE, FRESH = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
FIELDS = (
    "status",
    "attempts",
    "errors",
    "result",
    "progress",
    "worker_id",
    "claim_token",
    "run_after",
    "lease_expires_at",
    "finished_at",
)


def claim(engine, limit=10, queues=None, worker=WORKER):
    return engine.claim_jobs(worker, queues, limit, 30)


def expire_all() -> None:
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


# Every write a worker makes after a claim, and what it returns when its claim
# still holds (the "lost" answer is the falsy one).
LATE_WRITES = {
    "complete": lambda engine, job: engine.complete_jobs([Completion(job, '"late"')]) == {job.id},
    "complete_and_claim": lambda engine, job: (
        engine.complete_and_claim([Completion(job, '"late"')], WORKER, None, 1, 30)[0] == {job.id}
    ),
    "fail-retry": lambda engine, job: engine.fail_job(
        Failure(job, {"message": "late"}, timezone.now())
    ),
    "fail-dead-letter": lambda engine, job: engine.fail_job(
        Failure(job, {"message": "late"}, None, "late give-up")
    ),
    "release": lambda engine, job: engine.release_jobs([job]) == 1,
    "heartbeat": lambda engine, job: engine.heartbeat([job], 30) == 1,
}


@pytest.mark.parametrize("write", LATE_WRITES.values(), ids=LATE_WRITES.keys())
def test_a_write_with_a_stale_claim_token_changes_nothing_and_reports_the_loss(engine, write):
    tasks.add.enqueue(1, 1)
    (stale,) = claim(engine, worker=STALE)
    # The lease "expires" and another worker re-claims the job.
    Job.objects.filter(pk=stale.id).update(status=JobStatus.READY)
    (fresh,) = claim(engine, worker=FRESH)
    assert fresh.id == stale.id and fresh.claim_token != stale.claim_token
    before = Job.objects.values(*FIELDS).get()

    assert write(engine, stale) is False

    assert Job.objects.values(*FIELDS).get() == before
    assert not DeadLetter.objects.exists()
    assert write(engine, fresh) is True  # the control: the same write with the live claim


@pytest.mark.parametrize("write", LATE_WRITES.values(), ids=LATE_WRITES.keys())
def test_a_write_after_the_job_finished_changes_nothing_and_reports_the_loss(engine, write):
    tasks.add.enqueue(1, 1)
    (job,) = claim(engine)
    assert engine.complete_jobs([Completion(job, '"done"')]) == {job.id}
    before = Job.objects.values(*FIELDS).get()

    assert write(engine, job) is False  # same token, but no longer RUNNING

    assert Job.objects.values(*FIELDS).get() == before
    assert not DeadLetter.objects.exists()


def test_complete_is_fenced_by_claim_token(engine):
    tasks.add.enqueue(1, 1)
    (claimed,) = claim(engine)
    # The lease "expires" and another worker re-claims the job.
    Job.objects.filter(pk=claimed.id).update(status=JobStatus.READY)
    (reclaimed,) = claim(engine, worker=uuid.uuid4())
    assert reclaimed.claim_token != claimed.claim_token
    assert engine.complete_jobs([Completion(claimed, '"stale"')]) == set()
    assert not engine.fail_job(Failure(claimed, {"message": "stale"}, None, "stale"))
    assert engine.complete_jobs([Completion(reclaimed, '"fresh"')]) == {reclaimed.id}
    stored = Job.objects.get(pk=claimed.id)
    assert (stored.status, stored.result, stored.errors) == (JobStatus.SUCCESSFUL, "fresh", [])
    assert not DeadLetter.objects.exists()


def test_a_recovered_jobs_old_owner_can_write_nothing(engine):
    tasks.add.enqueue(1, 2)
    (stale,) = engine.claim_jobs(STALE, None, 1, 30)
    expire_all()
    assert engine.recover_expired().retried == 1
    (fresh,) = engine.claim_jobs(FRESH, None, 1, 30)
    assert fresh.id == stale.id and fresh.claim_token != stale.claim_token
    fields = ("status", "attempts", "errors", "result", "progress", "worker_id", "claim_token")
    before = Job.objects.values(*fields).get()

    assert engine.complete_jobs([Completion(stale, "3")]) == set()
    assert not engine.fail_job(Failure(stale, {"message": "late"}, timezone.now()))
    assert not engine.fail_job(Failure(stale, {"message": "late"}, None, "late give-up"))
    assert engine.release_jobs([stale]) == 0
    assert engine.heartbeat([stale], 30) == 0
    with running(stale):
        assert current_job().set_progress({"late": True}) is False
    assert Job.objects.values(*fields).get() == before
    assert not DeadLetter.objects.exists()

    assert engine.complete_jobs([Completion(fresh, "3")]) == {fresh.id}
    assert Job.objects.get().result == 3


def test_complete_stores_the_result_and_ends_the_lease(engine):
    jobs = tasks.add.enqueue_many([(1, 1), (2, 2)])
    claimed = claim(engine)
    done = engine.complete_jobs(
        [Completion(claimed[0], '{"sum": 2}'), Completion(claimed[1], "null")]
    )
    assert done == {jobs[0].pk, jobs[1].pk}
    stored = {job.pk: job for job in Job.objects.all()}
    assert stored[jobs[0].pk].result == {"sum": 2} and stored[jobs[1].pk].result is None
    for job in stored.values():
        assert job.status == JobStatus.SUCCESSFUL and job.lease_expires_at is None
        assert job.finished_at is not None and job.attempts == 1
    assert engine.complete_jobs([]) == set()


def test_fail_with_retry_then_give_up_writes_dead_letter_in_same_step(engine):
    tasks.add.using(priority=3).enqueue(1, 1)
    (claimed,) = claim(engine)
    retry_at = timezone.now() + timedelta(seconds=60)
    assert engine.fail_job(Failure(claimed, {"message": "first"}, retry_at))
    stored = Job.objects.get(pk=claimed.id)
    assert stored.status == JobStatus.READY and stored.run_after == retry_at
    assert stored.lease_expires_at is None and stored.finished_at is None
    assert claim(engine) == [], "a retry due in a minute was claimed now"
    Job.objects.filter(pk=claimed.id).update(run_after=timezone.now())
    (again,) = claim(engine)
    assert again.attempts == 2
    assert engine.fail_job(Failure(again, {"message": "second"}, None, "gave up"))
    stored.refresh_from_db()
    assert stored.status == JobStatus.FAILED and stored.finished_at is not None
    assert [e["message"] for e in stored.errors] == ["first", "second"]
    letter = DeadLetter.objects.get()
    assert (letter.job_id, letter.reason, letter.priority) == (claimed.id, "gave up", 3)
    assert letter.errors == stored.errors
    assert (letter.attempts, letter.max_attempts, letter.args) == (2, 3, [1, 1])


def test_release_hands_back_without_counting_the_attempt(engine):
    tasks.add.enqueue(1, 1)
    (claimed,) = claim(engine)
    assert engine.release_jobs([claimed]) == 1
    stored = Job.objects.get(pk=claimed.id)
    assert (stored.status, stored.attempts, stored.claim_token) == (JobStatus.READY, 0, None)
    assert (stored.worker_id, stored.lease_expires_at) == (None, None)
    assert (stored.started_at, stored.last_attempted_at) == (None, None)
    assert engine.release_jobs([]) == 0
    (again,) = claim(engine)  # READY at once, for any worker
    assert again.id == claimed.id and again.attempts == 1


def test_release_of_a_later_attempt_keeps_the_runs_start(engine):
    tasks.add.enqueue(1, 1)
    (first,) = claim(engine)
    assert engine.fail_job(Failure(first, {"message": "first"}, timezone.now()))
    (second,) = claim(engine)
    started = Job.objects.get().started_at
    assert engine.release_jobs([second]) == 1
    stored = Job.objects.get()
    assert (stored.status, stored.attempts, stored.started_at) == (JobStatus.READY, 1, started)
    assert stored.last_attempted_at is not None


def test_heartbeat_renews_only_the_claims_it_names(engine):
    tasks.noop.enqueue_many([(), (), ()])
    mine = claim(engine, limit=1)
    claim(engine, limit=1)  # ours too, but its answer was "lost": the worker does not know it
    other = claim(engine, limit=1, worker=uuid.uuid4())
    past = timezone.now() - timedelta(seconds=5)
    Job.objects.update(lease_expires_at=past)
    assert engine.heartbeat(mine, 30) == 1
    assert engine.heartbeat([], 30) == 0
    assert Job.objects.get(pk=mine[0].id).lease_expires_at > timezone.now()
    assert Job.objects.filter(lease_expires_at=past).count() == 2
    # Someone else's claim named with a stale token is not renewed either.
    stale = dataclasses.replace(other[0], claim_token=uuid.uuid4())
    assert engine.heartbeat([stale], 30) == 0
