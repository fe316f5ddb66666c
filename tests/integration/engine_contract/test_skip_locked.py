"""Every claiming statement of every engine skips rows another transaction
has locked instead of waiting for them: a second session holds one row FOR
UPDATE while the call under test runs with a one-second lock timeout. Without
SKIP LOCKED the call waits for that row and the test fails within a second,
saying it waited on a lock (not after the suite's 300 s timeout).

PostgreSQL pairs only (marked ``postgres``): SQLite has no row locks, its
writers are serialized by the IMMEDIATE transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs import outbox
from django_jobs.models import Job, OutboxEvent
from django_jobs.outbox.delivery import plan_jobs
from django_jobs.rows import Completion
from django_jobs.status import JobStatus, OutboxStatus
from tests.testapp import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

WORKER = uuid.uuid4()
JOBS = "django_jobs_job"
EVENTS = "django_jobs_outboxevent"
QUEUES = pytest.mark.parametrize("queues", [None, ["default"]], ids=["all-queues", "named-queue"])


def due_jobs(n: int) -> list[int]:
    return [job.pk for job in tasks.add.enqueue_many([(i, i) for i in range(n)])]


@QUEUES
def test_claim_takes_the_other_due_jobs_at_once_past_a_locked_one(
    engine, lock_rows, no_lock_waits, queues
):
    first, locked, last = due_jobs(3)
    lock_rows(JOBS, [locked])

    claimed = engine.claim_jobs(WORKER, queues, 10, 30)

    assert [job.id for job in claimed] == [first, last]
    assert Job.objects.get(pk=locked).status == JobStatus.READY


@QUEUES
def test_complete_and_claim_takes_the_other_due_jobs_at_once_past_a_locked_one(
    engine, lock_rows, no_lock_waits, queues
):
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


def test_heartbeat_skips_rows_locked_by_a_completion_instead_of_waiting(
    engine, rival, lock_rows, no_lock_waits
):
    tasks.noop.enqueue_many([(), ()])
    held = engine.claim_jobs(WORKER, None, 2, 30)
    lock_rows(JOBS, [held[0].id])
    assert engine.heartbeat(held, 30) == 1  # the idle job only, without waiting
    rival.rollback()
    assert engine.heartbeat(held, 30) == 2


def test_recovery_takes_the_other_expired_jobs_at_once_past_a_locked_one(
    engine, lock_rows, no_lock_waits
):
    ids = due_jobs(3)
    assert len(engine.claim_jobs(WORKER, None, 3, 30)) == 3
    Job.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    lock_rows(JOBS, [ids[1]])  # e.g. its completion is committing right now

    report = engine.recover_expired()

    assert (report.retried, report.dead_lettered) == (2, 0)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {ids[0]: JobStatus.READY, ids[1]: JobStatus.RUNNING, ids[2]: JobStatus.READY}


def test_pruning_takes_the_other_finished_jobs_at_once_past_a_locked_one(
    engine, lock_rows, no_lock_waits
):
    ids = due_jobs(3)
    Job.objects.update(status=JobStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(days=2))
    lock_rows(JOBS, [ids[0]])  # e.g. an operator's retry from the admin

    deleted = engine.prune_finished(timezone.now() - timedelta(days=1), 100)

    assert deleted == 2
    assert list(Job.objects.values_list("pk", flat=True)) == [ids[0]]


def test_outbox_claim_takes_the_other_pending_events_at_once_past_a_locked_one(
    outbox_engine, lock_rows, no_lock_waits
):
    first, locked, last = (e.pk for e in outbox.publish_many([("a", {}), ("b", {}), ("c", {})]))
    lock_rows(EVENTS, [locked])  # another relay's batch

    with transaction.atomic():
        events, blocked = outbox_engine.claim_events(10)

    assert ([e.id for e in events], blocked) == ([first, last], 0)


def test_event_behind_a_locked_earlier_event_of_its_key_waits(
    outbox_engine, rival, lock_rows, no_lock_waits
):
    """What keeps per-key order across relays: another relay holds event 1 of
    key k mid-batch; we dispatch other keys, never event 2 of k. Both the SQL
    and the portable ORM claim (as used on MySQL) keep the rule, without
    waiting for the locked event."""
    first, second = outbox.publish_many([("seq.step", {"n": 1}, "k"), ("seq.step", {"n": 2}, "k")])
    other = outbox.publish("seq.step", {"n": 1}, key="other")
    lock_rows(EVENTS, [first.pk])
    report = outbox_engine.dispatch_batch(10, plan_jobs)
    assert (report.dispatched, report.blocked) == (1, 1)
    assert OutboxEvent.objects.get(pk=other.pk).status == OutboxStatus.DISPATCHED
    assert OutboxEvent.objects.get(pk=second.pk).status == OutboxStatus.PENDING
    rival.rollback()
    report = outbox_engine.dispatch_batch(10, plan_jobs)
    assert (report.dispatched, report.blocked) == (2, 0)
    order = [
        j.args[0]["payload"]["n"] for j in Job.objects.order_by("id") if j.args[0]["key"] == "k"
    ]
    assert order == [1, 2]
