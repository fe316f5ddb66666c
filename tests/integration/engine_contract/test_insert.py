"""insert_jobs: input order, what ``created`` means, idempotency keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.integration.engine_contract.conftest import new_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_insert_saves_ready_jobs_in_input_order(engine):
    later = timezone.now() + timedelta(hours=1)
    rows = [new_job(1, 1, priority=5), new_job(2, 2, queue_name="mail"), new_job(3, 3)]
    rows.append(new_job(4, 4, run_after=later, max_attempts=7))
    inserted = engine.insert_jobs(rows)
    assert [i.created for i in inserted] == [True] * 4
    ids = [i.job.pk for i in inserted]
    assert ids == sorted(ids) and len(set(ids)) == 4
    stored = {job.pk: job for job in Job.objects.all()}
    assert [stored[pk].args for pk in ids] == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert [stored[pk].status for pk in ids] == [JobStatus.READY] * 4
    assert [stored[pk].attempts for pk in ids] == [0] * 4
    assert (stored[ids[0]].priority, stored[ids[1]].queue_name) == (5, "mail")
    assert stored[ids[3]].max_attempts == 7
    assert stored[ids[3]].run_after == later == stored[ids[3]].requested_run_after
    assert stored[ids[0]].run_after <= timezone.now() and stored[ids[0]].requested_run_after is None
    for inserted_row in inserted:  # the returned instances are the stored rows
        job = inserted_row.job
        assert (job.run_after, job.enqueued_at) == (
            stored[job.pk].run_after,
            stored[job.pk].enqueued_at,
        )


def test_single_row_insert(engine):
    (inserted,) = engine.insert_jobs([new_job(1, 2)])
    assert inserted.created
    assert Job.objects.get().pk == inserted.job.pk
    assert Job.objects.get().args == [1, 2]


def test_insert_joins_the_callers_transaction(engine):
    with pytest.raises(RuntimeError), transaction.atomic():
        engine.insert_jobs([new_job(1, 1), new_job(2, 2, key="k")])
        assert Job.objects.count() == 2
        raise RuntimeError("roll back")
    assert not Job.objects.exists()


def test_insert_reports_which_rows_it_created(engine):
    [held] = engine.insert_jobs([new_job(1, 2, key="held")])
    assert held.created
    inserted = engine.insert_jobs(
        [new_job(1, 2, key="held"), new_job(1, 2, key="new"), new_job(1, 2, key="new"), new_job()]
    )
    assert [i.created for i in inserted] == [False, True, False, True]
    assert inserted[0].job.pk == held.job.pk
    assert inserted[1].job.pk == inserted[2].job.pk
    assert Job.objects.count() == 3


@pytest.mark.parametrize("status", [JobStatus.READY, JobStatus.RUNNING])
def test_a_key_held_by_an_active_job_returns_that_job(engine, status):
    [first] = engine.insert_jobs([new_job(1, 2, key="k")])
    Job.objects.filter(pk=first.job.pk).update(status=status)
    [again] = engine.insert_jobs([new_job(9, 9, key="k")])
    assert (again.created, again.job.pk) == (False, first.job.pk)
    assert again.job.args == [1, 2]  # the existing job, not the new row
    assert list(Job.objects.values_list("pk", "args")) == [(first.job.pk, [1, 2])]


@pytest.mark.parametrize("status", [JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELLED])
def test_the_key_of_a_finished_job_inserts_anew(engine, status):
    [first] = engine.insert_jobs([new_job(1, 2, key="k")])
    Job.objects.filter(pk=first.job.pk).update(status=status, finished_at=timezone.now())
    [again, twice] = engine.insert_jobs([new_job(3, 4, key="k"), new_job(5, 6, key="k")])
    assert again.created and again.job.pk != first.job.pk
    assert (twice.created, twice.job.pk) == (False, again.job.pk)
    assert Job.objects.filter(idempotency_key="k").count() == 2
    assert Job.objects.get(pk=again.job.pk).args == [3, 4]
