"""Workers prune old finished jobs themselves, in bounded batches, no cron needed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_prunes_finished_jobs_past_the_retention(start_worker):
    old = [j.pk for j in tasks.noop.using(queue_name="idle").enqueue_many([()] * 350)]
    recent = [j.pk for j in tasks.noop.using(queue_name="idle").enqueue_many([()] * 10)]
    waiting = [j.pk for j in tasks.noop.using(queue_name="idle").enqueue_many([()] * 5)]
    long_ago = timezone.now() - timedelta(days=30)
    Job.objects.filter(pk__in=old).update(status=JobStatus.SUCCESSFUL, finished_at=long_ago)
    Job.objects.filter(pk__in=recent).update(status=JobStatus.FAILED, finished_at=timezone.now())
    Job.objects.filter(pk__in=waiting).update(enqueued_at=long_ago)
    worker = start_worker(
        "--queue",
        "busy",  # takes none of these jobs
        env={"DJANGO_JOBS_TEST_PRUNE_INTERVAL": "0.5", "DJANGO_JOBS_TEST_PRUNE_BATCH": "100"},
    )
    wait_until(lambda: not Job.objects.filter(pk__in=old).exists(), 30, message="old jobs pruned")
    assert set(Job.objects.values_list("pk", flat=True)) == set(recent + waiting)
    assert worker.terminate() == 0
