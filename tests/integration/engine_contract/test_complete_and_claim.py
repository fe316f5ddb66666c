"""complete_and_claim, the worker's steady state: acknowledge (fenced) and
claim the next jobs, in one round trip where the database allows."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.rows import Completion
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


def test_complete_and_claim_acknowledges_fenced_and_claims_the_next(engine):
    first, stale, nxt = tasks.add.enqueue_many([(1, 1), (2, 2), (3, 3)])
    mine = engine.claim_jobs(WORKER, None, 2, 30)
    assert [j.id for j in mine] == [first.pk, stale.pk]
    # The second job's lease "expires" and another worker re-claims it.
    Job.objects.filter(pk=stale.pk).update(status=JobStatus.READY, priority=100)
    (theirs,) = engine.claim_jobs(uuid.uuid4(), None, 1, 30)
    assert theirs.id == stale.pk

    done, claimed = engine.complete_and_claim(
        [Completion(mine[0], "2"), Completion(mine[1], '"stale"')], WORKER, None, 5, 30
    )

    assert done == {first.pk}
    assert [j.id for j in claimed] == [nxt.pk]
    assert claimed[0].args == [3, 3] and claimed[0].attempts == 1
    stored = {j.pk: j for j in Job.objects.all()}
    assert (stored[first.pk].status, stored[first.pk].result) == (JobStatus.SUCCESSFUL, 2)
    assert stored[stale.pk].status == JobStatus.RUNNING
    assert stored[stale.pk].claim_token == theirs.claim_token
    assert stored[stale.pk].result is None
    assert (stored[nxt.pk].status, stored[nxt.pk].worker_id) == (JobStatus.RUNNING, WORKER)


def test_complete_and_claim_without_free_slots_only_acknowledges(engine):
    tasks.noop.enqueue_many([(), ()])
    (job,) = engine.claim_jobs(WORKER, None, 1, 30)
    done, claimed = engine.complete_and_claim([Completion(job, "null")], WORKER, None, 0, 30)
    assert (done, claimed) == ({job.id}, [])
    assert Job.objects.filter(status=JobStatus.READY).count() == 1


def test_complete_and_claim_respects_queues(engine):
    tasks.noop.using(queue_name="other").enqueue()
    wanted = tasks.noop.using(queue_name="mine").enqueue()
    done, claimed = engine.complete_and_claim([], WORKER, ["mine"], 5, 30)
    assert done == set() and [j.id for j in claimed] == [wanted.pk]


def test_complete_and_claim_claims_in_claim_order_up_to_the_limit(engine):
    low, first, second, high = (tasks.noop.using(priority=p).enqueue().pk for p in (-1, 0, 0, 7))
    done, claimed = engine.complete_and_claim([], WORKER, None, 3, 30)
    assert done == set()
    assert [j.id for j in claimed] == [high, first, second]
    assert {j.claim_token for j in claimed} <= set(
        Job.objects.filter(status=JobStatus.RUNNING).values_list("claim_token", flat=True)
    )
    assert Job.objects.get(pk=low).status == JobStatus.READY


@pytest.mark.parametrize("queues", [None, ["default"]], ids=["all-queues", "named-queue"])
def test_complete_and_claim_leaves_jobs_due_later_alone(engine, queues):
    running = tasks.noop.enqueue()
    (mine,) = engine.claim_jobs(WORKER, None, 1, 30)
    later = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    due = tasks.noop.enqueue()

    done, claimed = engine.complete_and_claim([Completion(mine, "null")], WORKER, queues, 10, 30)

    assert done == {running.pk}
    assert [j.id for j in claimed] == [due.pk], "a job due in an hour was claimed now"
    stored = Job.objects.get(pk=later.pk)
    assert (stored.status, stored.attempts, stored.worker_id) == (JobStatus.READY, 0, None)
