"""Recovery and fencing at the engine level, on a real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.context import current_job, running
from django_jobs.engine import get_engine
from django_jobs.engine.base import Completion, Failure
from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

STALE, FRESH = uuid.uuid4(), uuid.uuid4()


def expire_all() -> None:
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_a_recovered_jobs_old_owner_can_write_nothing():
    tasks.add.enqueue(1, 2)
    engine = get_engine()
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


def test_recovery_counts_the_attempt_and_keeps_the_history():
    job = tasks.fail_times.enqueue(0)  # max_attempts=3
    engine = get_engine()
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


@pytest.mark.postgres
def test_recovery_and_hand_back_notify_the_queue():
    tasks.add.using(queue_name="mail").enqueue(1, 1)
    tasks.add.using(queue_name="sms").enqueue(1, 1)
    engine = get_engine()
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"],
        autocommit=True,
    ) as listener:
        listener.execute("LISTEN django_jobs")
        mail, sms = engine.claim_jobs(STALE, None, 2, 30)
        Job.objects.filter(pk=mail.id).update(lease_expires_at=timezone.now())
        engine.recover_expired()
        engine.release_jobs([sms])
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert sorted(heard) == ["mail", "sms"]
