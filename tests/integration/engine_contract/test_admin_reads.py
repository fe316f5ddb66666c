"""The admin's read-only queries (filter lists, row estimates), on every engine."""

from __future__ import annotations

import pytest

from django_jobs.engine.postgres import PostgresEngine
from django_jobs.models import DeadLetter, Job
from tests.integration.engine_contract.conftest import new_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_distinct_names_of_jobs_and_dead_letters(engine):
    rows = [("b.t", "q2"), ("a.t", "q1"), ("b.t", "q1"), ("c.t", "q3")]
    engine.insert_jobs([new_job(task_name=task, queue_name=queue) for task, queue in rows])
    DeadLetter.objects.create(job_id=1, task_name="z.t", queue_name="dq", reason="x")
    assert engine.distinct_names("job", "task_name", 500) == ["a.t", "b.t", "c.t"]
    assert engine.distinct_names("job", "queue_name", 500) == ["q1", "q2", "q3"]
    assert engine.distinct_names("job", "task_name", 2) == ["a.t", "b.t"]
    assert engine.distinct_names("dead_letter", "task_name", 500) == ["z.t"]
    assert engine.distinct_names("dead_letter", "queue_name", 500) == ["dq"]


def test_row_estimates_only_where_promised(engine):
    engine.insert_jobs([new_job() for _ in range(3)])
    if not engine.estimates_rows:
        assert not isinstance(engine, PostgresEngine)
        with pytest.raises(NotImplementedError, match="no row estimates"):
            engine.estimate_rows(Job.objects.all())
        return
    assert isinstance(engine.estimate_rows(Job.objects.all()), int)
    assert engine.estimate_rows(Job.objects.filter(pk__in=[-1])) >= 0
