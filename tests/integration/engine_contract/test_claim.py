"""claim_jobs: claim order, queue filter, due jobs only, limit, what a claim writes."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.integration.engine_contract.conftest import new_job
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()


def claim(engine, limit=10, queues=None, worker=WORKER):
    return engine.claim_jobs(worker, queues, limit, 30)


def test_claim_order_is_priority_then_fifo(engine):
    low = tasks.add.using(priority=-5).enqueue(0, 0)
    first = tasks.add.enqueue(1, 1)
    second = tasks.add.enqueue(2, 2)
    high = tasks.add.using(priority=50).enqueue(3, 3)
    assert [j.id for j in claim(engine)] == [high.pk, first.pk, second.pk, low.pk]


def test_claim_order_is_priority_desc_then_run_after_then_id(engine):
    now = timezone.now()
    old, older = now - timedelta(minutes=1), now - timedelta(minutes=2)
    rows = [
        new_job(0, priority=0, run_after=old),  # 0
        new_job(1, priority=0, run_after=older),  # 1
        new_job(2, priority=0, run_after=old),  # 2: same run_after as 0, later id
        new_job(3, priority=9, run_after=old),  # 3
        new_job(4, priority=-1, run_after=older),  # 4
        new_job(5, priority=9, run_after=older),  # 5
    ]
    ids = [i.job.pk for i in engine.insert_jobs(rows)]
    expected = [ids[5], ids[3], ids[1], ids[0], ids[2], ids[4]]
    assert [j.id for j in claim(engine)] == expected
    # Claimed in batches, the order holds across them.
    Job.objects.update(status=JobStatus.READY, attempts=0)
    batches = [claim(engine, limit=4), claim(engine, limit=4)]
    assert [j.id for batch in batches for j in batch] == expected


def test_claim_skips_future_jobs_and_other_queues(engine):
    tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    other = tasks.add.using(queue_name="other").enqueue(2, 2)
    due = tasks.add.enqueue(3, 3)
    assert [j.id for j in claim(engine, queues=["default"])] == [due.pk]
    assert [j.id for j in claim(engine, queues=["other", "x"])] == [other.pk]
    assert claim(engine) == []


def test_a_job_becomes_claimable_when_its_run_after_passes(engine):
    [job] = engine.insert_jobs([new_job(1, run_after=timezone.now() + timedelta(hours=1))])
    assert claim(engine) == []
    stored = Job.objects.get()
    assert (stored.status, stored.attempts, stored.worker_id) == (JobStatus.READY, 0, None)
    Job.objects.update(run_after=timezone.now() - timedelta(seconds=1))
    assert [j.id for j in claim(engine)] == [job.job.pk]


def test_no_queues_or_an_empty_list_means_every_queue(engine):
    ids = [i.job.pk for i in engine.insert_jobs([new_job(queue_name=q) for q in "abc"])]
    assert sorted(j.id for j in claim(engine, queues=None, limit=2)) == ids[:2]
    assert [j.id for j in claim(engine, queues=[])] == ids[2:]


def test_claim_marks_running_with_token_lease_and_attempt(engine):
    job = tasks.add.enqueue(1, 1)
    (claimed,) = claim(engine)
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.RUNNING
    assert stored.attempts == 1 == claimed.attempts
    assert stored.claim_token == claimed.claim_token
    assert stored.worker_id == WORKER
    assert stored.lease_expires_at > timezone.now() + timedelta(seconds=20)
    assert claimed.args == [1, 1]


def test_claimed_job_carries_the_rows_fields(engine):
    when = timezone.now() - timedelta(minutes=5)
    [inserted] = engine.insert_jobs(
        [new_job(7, 8, queue_name="mail", priority=3, max_attempts=4, run_after=when, key="k")]
    )
    (claimed,) = claim(engine)
    stored = Job.objects.get()
    assert (claimed.id, claimed.task_name, claimed.queue_name) == (
        inserted.job.pk,
        "tests.testapp.tasks.add",
        "mail",
    )
    assert (claimed.priority, claimed.args, claimed.kwargs) == (3, [7, 8], {})
    assert (claimed.max_attempts, claimed.timeout, claimed.idempotency_key) == (4, 300.0, "k")
    assert (claimed.worker_id, claimed.database) == (WORKER, "default")
    assert claimed.run_after == when == claimed.requested_run_after
    assert claimed.enqueued_at == stored.enqueued_at
    assert claimed.started_at == stored.started_at == stored.last_attempted_at
    assert claimed.last_attempted_at == stored.last_attempted_at
    assert claimed.meta == {}


def test_two_claims_get_distinct_tokens(engine):
    tasks.noop.enqueue_many([(), ()])
    (first,) = claim(engine, limit=1)
    (second,) = claim(engine, limit=1)
    assert first.id != second.id and first.claim_token != second.claim_token


def test_claim_limit(engine):
    tasks.add.enqueue_many([(n, n) for n in range(7)])
    assert len(claim(engine, limit=5)) == 5
    assert len(claim(engine, limit=5)) == 2
    assert claim(engine, limit=5) == []


def test_concurrent_claims_never_share_a_job(engine):
    tasks.noop.enqueue_many([() for _ in range(300)])
    seen: list[list[int]] = []
    lock = threading.Lock()

    def claimer() -> None:
        try:
            mine: list[int] = []
            while batch := claim(engine, limit=7, worker=uuid.uuid4()):
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
