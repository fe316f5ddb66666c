"""Every claiming statement skips rows another transaction has locked instead
of waiting for them: a second session holds one due row FOR UPDATE while the
statement under test runs with a one-second lock timeout. Without SKIP LOCKED
the statement waits for that row and the test fails within a second, saying
it waited on a lock (not after the suite's 300 s timeout)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs import outbox
from django_jobs.engine import get_engine
from django_jobs.engine.base import Completion
from django_jobs.engine.outbox import OutboxEngine
from django_jobs.engine.outbox_postgres import PostgresOutboxEngine
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

WORKER = uuid.uuid4()
JOBS = "django_jobs_job"
QUEUES = pytest.mark.parametrize("queues", [None, ["default"]], ids=["all-queues", "named-queue"])


def due_jobs(n: int) -> list[int]:
    return [job.pk for job in tasks.add.enqueue_many([(i, i) for i in range(n)])]


@QUEUES
def test_claim_takes_the_other_due_jobs_at_once_past_a_locked_one(lock_rows, no_lock_waits, queues):
    first, locked, last = due_jobs(3)
    lock_rows(JOBS, [locked])

    claimed = get_engine().claim_jobs(WORKER, queues, 10, 30)

    assert [job.id for job in claimed] == [first, last]
    assert Job.objects.get(pk=locked).status == JobStatus.READY


@QUEUES
def test_complete_and_claim_takes_the_other_due_jobs_at_once_past_a_locked_one(
    lock_rows, no_lock_waits, queues
):
    engine = get_engine()
    running = due_jobs(1)[0]
    (mine,) = engine.claim_jobs(WORKER, None, 1, 30)
    assert mine.id == running
    first, locked, last = due_jobs(3)
    lock_rows(JOBS, [locked])

    done, claimed = engine.complete_and_claim([Completion(mine, "0")], WORKER, queues, 10, 30)

    assert done == {running}
    assert [job.id for job in claimed] == [first, last]
    assert Job.objects.get(pk=running).status == JobStatus.SUCCESSFUL
    assert Job.objects.get(pk=locked).status == JobStatus.READY


def test_recovery_takes_the_other_expired_jobs_at_once_past_a_locked_one(lock_rows, no_lock_waits):
    ids = due_jobs(3)
    engine = get_engine()
    assert len(engine.claim_jobs(WORKER, None, 3, 30)) == 3
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    lock_rows(JOBS, [ids[1]])  # e.g. its completion is committing right now

    report = engine.recover_expired()

    assert (report.retried, report.dead_lettered) == (2, 0)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {ids[0]: JobStatus.READY, ids[1]: JobStatus.RUNNING, ids[2]: JobStatus.READY}


def test_pruning_takes_the_other_finished_jobs_at_once_past_a_locked_one(lock_rows, no_lock_waits):
    ids = due_jobs(3)
    Job.objects.update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=2))
    lock_rows(JOBS, [ids[0]])  # e.g. an operator's retry from the admin

    deleted = get_engine().prune_finished(timezone.now() - timedelta(days=1), 100)

    assert deleted == 2
    assert list(Job.objects.values_list("pk", flat=True)) == [ids[0]]


@pytest.mark.parametrize("engine_class", [PostgresOutboxEngine, OutboxEngine], ids=["sql", "orm"])
def test_outbox_claim_takes_the_other_pending_events_at_once_past_a_locked_one(
    lock_rows, no_lock_waits, engine_class
):
    first, locked, last = (e.pk for e in outbox.publish_many([("a", {}), ("b", {}), ("c", {})]))
    lock_rows("django_jobs_outboxevent", [locked])  # another relay's batch

    with transaction.atomic():
        events, blocked = engine_class("default").claim_events(10)

    assert ([e.id for e in events], blocked) == ([first, last], 0)
