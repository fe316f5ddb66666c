"""What an advance costs: a step reads the same in a chain of 3 or of 60
(never the chain's other members), and on PostgreSQL a batch of completions
advances any number of workflows in the same statements as one."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs import chain
from django_jobs.engine import get_engine
from django_jobs.models import Workflow
from django_jobs.rows import Completion
from django_jobs.status import WorkflowStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

# The query the advance makes to read every member of a container.
READS_MEMBERS = '"django_jobs_workflowstep"."parent_position" = '


def complete_ready() -> list[str]:
    """Claim every READY job and complete it; the SQL of the completion."""
    engine = get_engine()
    claimed = engine.claim_jobs(uuid.uuid4(), None, 500, 30)
    assert claimed
    with CaptureQueriesContext(connection) as queries:
        done = engine.complete_jobs([Completion(job, "null") for job in claimed])
    assert done == {job.id for job in claimed}
    return [query["sql"] for query in queries.captured_queries]


def test_a_chain_step_costs_the_same_in_a_chain_of_3_or_of_60():
    short = chain(*[tasks.noop.si() for _ in range(3)]).enqueue()
    in_short = complete_ready()
    short.cancel()
    long = chain(*[tasks.noop.si() for _ in range(60)]).enqueue()
    in_long = [complete_ready() for _ in range(5)]
    assert all(len(sql) == len(in_short) for sql in in_long), (len(in_short), in_long)
    for sql in [in_short, *in_long]:
        assert not [q for q in sql if READS_MEMBERS in q], "a step read its chain's members"
    for _ in range(55):
        complete_ready()
    assert long.wait(1).status == WorkflowStatus.SUCCESSFUL


@pytest.mark.postgres
def test_a_batch_advances_ten_workflows_in_the_statements_of_one():
    chain(tasks.noop.si(), tasks.noop.si(), tasks.noop.si()).enqueue()
    one = complete_ready()
    Workflow.objects.all().delete()
    for _ in range(10):
        chain(tasks.noop.si(), tasks.noop.si(), tasks.noop.si()).enqueue()
    ten = complete_ready()
    assert len(ten) == len(one), (one, ten)
