"""The engine against a real database: claim order, fencing, outcomes."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs.engine import get_engine
from django_jobs.engine.base import Completion, Failure
from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


def claim(limit=10, queues=None, worker=WORKER):
    return get_engine().claim_jobs(worker, queues, limit, 30)


def test_claim_order_is_priority_then_fifo():
    low = tasks.add.using(priority=-5).enqueue(0, 0)
    first = tasks.add.enqueue(1, 1)
    second = tasks.add.enqueue(2, 2)
    high = tasks.add.using(priority=50).enqueue(3, 3)
    assert [j.id for j in claim()] == [high.pk, first.pk, second.pk, low.pk]


def test_claim_skips_future_jobs_and_other_queues():
    tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    other = tasks.add.using(queue_name="other").enqueue(2, 2)
    due = tasks.add.enqueue(3, 3)
    assert [j.id for j in claim(queues=["default"])] == [due.pk]
    assert [j.id for j in claim(queues=["other", "x"])] == [other.pk]
    assert claim() == []


def test_claim_marks_running_with_token_lease_and_attempt():
    job = tasks.add.enqueue(1, 1)
    (claimed,) = claim()
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.RUNNING
    assert stored.attempts == 1 == claimed.attempts
    assert stored.claim_token == claimed.claim_token
    assert stored.worker_id == WORKER
    assert stored.lease_expires_at > timezone.now() + timedelta(seconds=20)
    assert claimed.args == [1, 1]


def test_claim_limit():
    tasks.add.enqueue_many([(n, n) for n in range(7)])
    assert len(claim(limit=5)) == 5
    assert len(claim(limit=5)) == 2


def test_concurrent_claims_never_share_a_job():
    tasks.noop.enqueue_many([() for _ in range(300)])
    seen: list[list[int]] = []
    lock = threading.Lock()

    def claimer() -> None:
        try:
            mine: list[int] = []
            while batch := claim(limit=7, worker=uuid.uuid4()):
                mine.extend(j.id for j in batch)
            with lock:
                seen.append(mine)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_ids = [i for ids in seen for i in ids]
    assert len(all_ids) == 300 == len(set(all_ids))


def test_complete_is_fenced_by_claim_token():
    tasks.add.enqueue(1, 1)
    (claimed,) = claim()
    # The lease "expires" and another worker re-claims the job.
    Job.objects.filter(pk=claimed.id).update(status=JobStatus.READY)
    (reclaimed,) = claim(worker=uuid.uuid4())
    assert reclaimed.claim_token != claimed.claim_token
    engine = get_engine()
    assert engine.complete_jobs([Completion(claimed, '"stale"')]) == set()
    assert not engine.fail_job(Failure(claimed, {"message": "stale"}, None, "stale"))
    assert engine.complete_jobs([Completion(reclaimed, '"fresh"')]) == {reclaimed.id}
    stored = Job.objects.get(pk=claimed.id)
    assert (stored.status, stored.result, stored.errors) == (JobStatus.SUCCESSFUL, "fresh", [])
    assert not DeadLetter.objects.exists()


def test_fail_with_retry_then_give_up_writes_dead_letter_in_same_step():
    tasks.add.using(priority=3).enqueue(1, 1)
    engine = get_engine()
    (claimed,) = claim()
    retry_at = timezone.now() + timedelta(seconds=60)
    assert engine.fail_job(Failure(claimed, {"message": "first"}, retry_at))
    stored = Job.objects.get(pk=claimed.id)
    assert stored.status == JobStatus.READY and stored.run_after == retry_at
    Job.objects.filter(pk=claimed.id).update(run_after=timezone.now())
    (again,) = claim()
    assert again.attempts == 2
    assert engine.fail_job(Failure(again, {"message": "second"}, None, "gave up"))
    stored.refresh_from_db()
    assert stored.status == JobStatus.FAILED and stored.finished_at is not None
    assert [e["message"] for e in stored.errors] == ["first", "second"]
    letter = DeadLetter.objects.get()
    assert (letter.job_id, letter.reason, letter.priority) == (claimed.id, "gave up", 3)
    assert letter.errors == stored.errors


def test_release_hands_back_without_counting_the_attempt():
    tasks.add.enqueue(1, 1)
    (claimed,) = claim()
    assert get_engine().release_jobs([claimed]) == 1
    stored = Job.objects.get(pk=claimed.id)
    assert (stored.status, stored.attempts, stored.claim_token) == (JobStatus.READY, 0, None)


def test_heartbeat_renews_only_the_claims_it_names():
    tasks.noop.enqueue_many([(), (), ()])
    mine = claim(limit=1)
    claim(limit=1)  # ours too, but its answer was "lost": the worker does not know it
    other = claim(limit=1, worker=uuid.uuid4())
    past = timezone.now() - timedelta(seconds=5)
    Job.objects.update(lease_expires_at=past)
    assert get_engine().heartbeat(mine, 30) == 1
    assert get_engine().heartbeat([], 30) == 0
    assert Job.objects.get(pk=mine[0].id).lease_expires_at > timezone.now()
    assert Job.objects.filter(lease_expires_at=past).count() == 2
    # Someone else's claim named with a stale token is not renewed either.
    stale = dataclasses.replace(other[0], claim_token=uuid.uuid4())
    assert get_engine().heartbeat([stale], 30) == 0


def test_recover_expired_requeues_or_dead_letters():
    retry = tasks.noop.enqueue()
    exhausted = tasks.always_fails.enqueue()  # max_attempts=2
    Job.objects.filter(pk=exhausted.pk).update(attempts=1)
    claim(limit=2)
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = get_engine().recover_expired()
    assert (report.retried, report.dead_lettered) == (1, 1)
    retry.refresh_from_db()
    exhausted.refresh_from_db()
    assert retry.status == JobStatus.READY and retry.attempts == 1
    assert "WorkerLost" in retry.errors[-1]["exception_class"]
    assert exhausted.status == JobStatus.FAILED
    assert "worker lost" in DeadLetter.objects.get(job_id=exhausted.pk).reason


def test_live_lease_is_not_recovered():
    tasks.noop.enqueue()
    claim()
    assert get_engine().recover_expired().retried == 0
    assert Job.objects.get().status == JobStatus.RUNNING


def test_operator_actions_respect_statuses():
    engine = get_engine()
    ready = tasks.noop.enqueue()
    scheduled = tasks.noop.using(run_after=timedelta(hours=2)).enqueue()
    failed = tasks.noop.enqueue()
    Job.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED, attempts=3)
    assert engine.retry_jobs([ready.pk, failed.pk]) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (JobStatus.READY, 0)
    assert engine.run_jobs_now([scheduled.pk]) == 1
    assert not Job.objects.get(pk=scheduled.pk).is_scheduled
    assert engine.cancel_jobs([ready.pk, scheduled.pk]) == 2
    assert Job.objects.filter(status=JobStatus.CANCELLED).count() == 2


def test_prune_finished_deletes_old_finished_jobs_only():
    old = tasks.noop.enqueue()
    recent = tasks.noop.enqueue()
    ready = tasks.noop.enqueue()
    Job.objects.filter(pk=old.pk).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=30)
    )
    Job.objects.filter(pk=recent.pk).update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    deleted = get_engine().prune_finished(timezone.now() - timedelta(days=7), 100)
    assert deleted == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, ready.pk}
