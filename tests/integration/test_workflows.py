"""Workflows without workers: bad input is refused with nothing written, a
rollback leaves nothing, cancel / retry / settle_orphans through the engine."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from django_jobs import chain, chord, group, saga
from django_jobs.engine import get_engine
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Job, Workflow, WorkflowStep
from django_jobs.rows import Completion
from django_jobs.status import JobStatus, StepStatus, WorkflowStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def nothing_written() -> bool:
    return not (Workflow.objects.exists() or WorkflowStep.objects.exists() or Job.objects.exists())


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: chain(), ValueError, "chain() needs at least one member"),
        (lambda: group([]), ValueError, "group() needs at least one member"),
        (lambda: chain(tasks.wf_add.s(1, 2), tasks.wf_add), TypeError, "call task.s(...)"),
        (lambda: chain(tasks.wf_add.s(1, 2), 42), TypeError, "member 1 must be a signature"),
        (lambda: group(tasks.noop.si(), "x"), TypeError, "member 1 must be a signature"),
        (lambda: chord(tasks.noop.si(), tasks.noop.si()), TypeError, "header must be a group"),
        (lambda: saga(), ValueError, "saga() needs at least one"),
        (lambda: saga(tasks.noop.si()), TypeError, "must be a (step, compensation) pair"),
        (
            lambda: saga((tasks.noop.si(), "undo")),
            TypeError,
            "the compensation must be a signature or None",
        ),
        (
            lambda: saga((tasks.noop.si(), tasks.noop)),
            TypeError,
            "the compensation must be a signature or None",
        ),
        (lambda: chain(saga((tasks.noop.si(), None))), TypeError, "a saga cannot be nested"),
        (lambda: tasks.wf_add.s(1, 2, 3), TypeError, "the arguments do not match wf_add"),
        (lambda: tasks.wf_add.si(1), TypeError, "the arguments do not match wf_add"),
        (lambda: tasks.wf_add.s(object()), TypeError, "positional argument 0 (object)"),
        (
            lambda: tasks.wf_add.using(idempotency_key="k").s(1, 2),
            InvalidJobOptions,
            "cannot have an idempotency_key",
        ),
    ],
)
def test_bad_canvas_is_refused_when_made(make, error, message):
    with pytest.raises(error) as caught:
        make().enqueue()
    assert message in str(caught.value)
    assert nothing_written()


def test_arguments_that_do_not_bind_where_the_step_stands_are_refused_at_enqueue():
    # wf_add.s(1, 2) binds alone, not after a previous result (3 arguments).
    bad = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(1, 2))
    with pytest.raises(TypeError) as caught:
        bad.enqueue()
    assert "step 1: tests.testapp.tasks.wf_add.s(1, 2): the arguments do not match" in str(
        caught.value
    )
    assert "use .si() to not receive it" in str(caught.value)
    # A first step gets no previous result: wf_add.s(1) is one argument short.
    with pytest.raises(TypeError, match="it gets no previous result here"):
        chain(tasks.wf_add.s(1), tasks.wf_add.s(2)).enqueue()
    # Saga steps never get one.
    with pytest.raises(TypeError, match="saga step 0"):
        saga((tasks.wf_add.s(1), None)).enqueue()
    assert nothing_written()


def test_a_cycle_and_a_canvas_used_twice_are_refused():
    inner = chain(tasks.noop.si())
    inner.members.append(inner)
    with pytest.raises(ValueError, match="contains itself"):
        group(inner).enqueue()
    shared = group(tasks.noop.si(), tasks.noop.si())
    with pytest.raises(ValueError, match="already used at 0"):
        chain(shared, shared).enqueue()
    assert nothing_written()


def test_a_rolled_back_enqueue_never_existed():
    with pytest.raises(RuntimeError), transaction.atomic():
        chord(group(tasks.wf_square.s(n) for n in range(5)), tasks.wf_collect.s()).enqueue()
        assert Job.objects.count() == 5
        raise RuntimeError("the caller's transaction fails")
    assert nothing_written()


def test_enqueue_writes_steps_and_only_the_first_runnable_jobs():
    workflow = chain(tasks.wf_add.s(1, 2), group(tasks.wf_add.s(1), tasks.wf_add.s(2))).enqueue()
    assert workflow.kind == "chain" and workflow.status == WorkflowStatus.RUNNING
    steps = list(WorkflowStep.objects.filter(workflow=workflow).values_list("path", "kind"))
    assert steps == [("", "chain"), ("0", "task"), ("1", "group"), ("1.0", "task"), ("1.1", "task")]
    (job,) = Job.objects.filter(workflow=workflow)
    assert (job.args, job.workflow_position, job.status) == ([1, 2], 1, JobStatus.READY)


def _run_ready(engine, workflow, results):
    """Claim the workflow's READY jobs and complete them with ``results(job)``."""
    claimed = engine.claim_jobs(uuid.uuid4(), None, 500, 30)
    assert claimed and all(c.workflow_id == workflow.pk for c in claimed)
    done = engine.complete_jobs([Completion(c, str(results(c))) for c in claimed])
    assert done == {c.id for c in claimed}
    return claimed


def test_group_fan_in_through_the_engine_calls_back_once_with_results_in_order():
    engine = get_engine()
    workflow = chord(group(tasks.wf_square.s(n) for n in range(20)), tasks.wf_collect.s()).enqueue()
    members = _run_ready(engine, workflow, lambda c: c.args[0] * 10)
    assert len(members) == 20
    (callback,) = _run_ready(engine, workflow, lambda c: len(c.args[0]))
    assert callback.args == [[n * 10 for n in range(20)]]
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCESSFUL and workflow.result == 20


def test_cancel_a_chain_cancels_its_ready_job_and_pending_steps():
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(3)).enqueue()
    assert workflow.cancel() is True
    assert workflow.status == WorkflowStatus.CANCELLED and workflow.finished_at is not None
    assert set(WorkflowStep.objects.filter(workflow=workflow).values_list("status", flat=True)) == {
        StepStatus.CANCELLED
    }
    assert Job.objects.get(workflow=workflow).status == JobStatus.CANCELLED
    assert workflow.cancel() is False  # already finished


def test_cancel_a_saga_compensates_the_completed_steps():
    engine = get_engine()
    workflow = saga(
        (tasks.saga_do.s("a"), tasks.saga_undo.s("a")),
        (tasks.saga_do.s("b"), tasks.saga_undo.s("b")),
    ).enqueue()
    _run_ready(engine, workflow, lambda c: '"a"')  # step a done, step b's job READY
    assert workflow.cancel() is True
    assert workflow.status == WorkflowStatus.RUNNING and workflow.compensating
    (undo,) = Job.objects.filter(workflow=workflow, status=JobStatus.READY)
    assert undo.task_name == tasks.saga_undo.name and undo.args == ["a"]
    _run_ready(engine, workflow, lambda c: '"a"')
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.CANCELLED
    step_b = WorkflowStep.objects.get(workflow=workflow, path="1")
    assert step_b.status == StepStatus.CANCELLED


def test_settle_orphans_advances_a_step_whose_job_an_operator_cancelled():
    engine = get_engine()
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(3)).enqueue()
    job = Job.objects.get(workflow=workflow)
    assert engine.cancel_jobs([job.pk]) == 1
    assert engine.settle_orphans() == 1
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.FAILED
    assert "cancelled by an operator" in workflow.failure
    assert engine.settle_orphans() == 0
    # The operator retries the failed step: a new job, the workflow runs again.
    assert workflow.retry() == 1
    assert workflow.status == WorkflowStatus.RUNNING
    _run_ready(engine, workflow, lambda c: 3)
    _run_ready(engine, workflow, lambda c: 6)
    assert workflow.wait(1).result == 6


def test_cancel_a_saga_while_its_step_runs_compensates_that_step_first():
    engine = get_engine()
    workflow = saga(
        (tasks.saga_do.s("a"), tasks.saga_undo.s("a")),
        (tasks.saga_do.s("b"), tasks.saga_undo.s("b")),
        (tasks.saga_do.s("c"), tasks.saga_undo.s("c")),
    ).enqueue()
    _run_ready(engine, workflow, lambda c: '"a"')
    (running,) = engine.claim_jobs(uuid.uuid4(), None, 10, 30)  # step b is running
    assert workflow.cancel() is True
    assert workflow.status == WorkflowStatus.RUNNING and workflow.cancel_requested
    assert not workflow.compensating  # waits for the running step's outcome
    assert not Job.objects.filter(workflow=workflow, status=JobStatus.READY).exists()
    assert engine.complete_jobs([Completion(running, '"b"')]) == {running.id}
    undone = []
    for _ in range(2):
        (undo,) = _run_ready(engine, workflow, lambda c: '"ok"')
        undone.append(undo.args)
    assert undone == [["b"], ["a"]]
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.CANCELLED
    step_c = WorkflowStep.objects.get(workflow=workflow, path="2")
    assert step_c.status == StepStatus.CANCELLED and step_c.job_id is None
