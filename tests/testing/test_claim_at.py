"""Engine.claim_jobs_at: the in-process claim with the caller's time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from django_jobs.engine import get_engine
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def test_due_at_the_given_time_and_only_among_ids() -> None:
    engine = get_engine()
    now = timezone.now()
    soon = tasks.add.using(run_after=now + timedelta(minutes=5)).enqueue(1, 1)
    first = tasks.add.enqueue(2, 2)
    second = tasks.add.enqueue(3, 3)
    worker = uuid.uuid4()
    claimed = engine.claim_jobs_at(worker, None, 10, 30, now=now, ids=[second.pk, soon.pk])
    assert [job.id for job in claimed] == [second.pk]
    assert claimed[0].last_attempted_at == now
    # Immediate jobs are due even at a time before their enqueue.
    past = datetime(2001, 1, 1, tzinfo=UTC)
    assert [j.id for j in engine.claim_jobs_at(worker, None, 10, 30, now=past)] == [first.pk]
    later = engine.claim_jobs_at(worker, None, 10, 30, now=now + timedelta(minutes=5))
    assert [j.id for j in later] == [soon.pk]
    assert engine.claim_jobs_at(worker, None, 10, 30, now=now + timedelta(days=1)) == []


def test_queues_filter_and_lease_from_real_time() -> None:
    engine = get_engine()
    other = tasks.in_other_queue.enqueue()
    tasks.add.enqueue(1, 1)
    past = datetime(2001, 1, 1, tzinfo=UTC)
    (job,) = engine.claim_jobs_at(uuid.uuid4(), ["other"], 10, 30, now=past)
    assert job.id == other.pk
    from django_jobs.models import Job

    lease = Job.objects.get(pk=other.pk).lease_expires_at
    assert lease > timezone.now()  # recovery compares leases with the real clock
