"""Operator actions (admin, CLI) and pruning, on every engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_operator_actions_respect_statuses(engine):
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


def test_prune_finished_deletes_old_finished_jobs_only(engine):
    old = tasks.noop.enqueue()
    recent = tasks.noop.enqueue()
    ready = tasks.noop.enqueue()
    Job.objects.filter(pk=old.pk).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=30)
    )
    Job.objects.filter(pk=recent.pk).update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now())
    deleted = engine.prune_finished(timezone.now() - timedelta(days=7), 100)
    assert deleted == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, ready.pk}


def test_prune_finished_deletes_at_most_a_batch_oldest_first(engine):
    jobs = tasks.noop.enqueue_many([(), (), ()])
    now = timezone.now()
    for age, job in zip((3, 5, 4), jobs, strict=True):
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, finished_at=now - timedelta(days=age)
        )
    assert engine.prune_finished(now - timedelta(days=1), 2) == 2
    assert list(Job.objects.values_list("pk", flat=True)) == [jobs[0].pk]
    assert engine.prune_finished(now - timedelta(days=1), 2) == 1
    assert engine.prune_finished(now - timedelta(days=1), 2) == 0
