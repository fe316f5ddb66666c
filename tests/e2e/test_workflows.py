"""Workflows run by real runworker subprocesses, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from django_jobs import chain, chord, group, saga
from django_jobs.models import Job, Worker, WorkflowStep
from django_jobs.status import JobStatus, StepStatus, WorkflowStatus
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def test_chain_of_three_passes_results(run_burst):
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(10), tasks.wf_add.s(100)).enqueue()
    assert Job.objects.filter(workflow=workflow).count() == 1  # only the first step is runnable
    run_burst("--concurrency", "2")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCESSFUL and workflow.finished_at is not None
    jobs = list(Job.objects.filter(workflow=workflow).order_by("workflow_position"))
    assert [(j.args, j.result) for j in jobs] == [([1, 2], 3), ([3, 10], 13), ([13, 100], 113)]
    assert {j.status for j in jobs} == {JobStatus.SUCCESSFUL}
    assert workflow.result == 113


def test_si_does_not_get_the_previous_result(run_burst):
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.si(5, 5)).enqueue()
    run_burst()
    assert workflow.wait(5).result == 10


def test_chord_of_200_on_3_workers_calls_back_once_in_order(start_worker):
    # All three are up before the members exist, and none prefetches, so one
    # fast worker cannot take every member before the others poll.
    workers = [start_worker("--concurrency", "4", "--prefetch", "0") for _ in range(3)]
    wait_until(lambda: Worker.objects.count() == 3, 60, message="three live workers")
    members = group(tasks.wf_square.s(n, 0.005) for n in range(200))
    workflow = chord(members, tasks.wf_collect.s()).enqueue()
    workflow.wait(120)
    assert workflow.status == WorkflowStatus.SUCCESSFUL
    (callback,) = Event.objects.filter(name="wf_collect")
    assert callback.value["results"] == [n * n for n in range(200)]
    assert Event.objects.filter(name="wf_square").count() == 200
    members = Job.objects.filter(workflow=workflow, task_name=tasks.wf_square.name)
    assert members.count() == 200
    assert len({j.worker_id for j in members}) >= 2, "the members ran on several workers"
    assert workflow.result == 200
    for worker in workers:
        assert worker.terminate() == 0


def test_saga_third_step_fails_compensations_run_in_reverse_once(start_worker):
    workflow = saga(
        (tasks.saga_do.s("reserve"), tasks.saga_undo.s("reserve")),
        (tasks.saga_do.s("charge"), tasks.saga_undo.s("charge", fail_times=1)),
        (tasks.saga_do.s("ship", fail=True), tasks.saga_undo.s("ship")),
    ).enqueue()
    worker = start_worker("--concurrency", "2")  # not --burst: retries are scheduled
    workflow.wait(60)
    assert worker.terminate() == 0
    assert workflow.status == WorkflowStatus.COMPENSATED, workflow.failure
    names = list(Event.objects.order_by("id").values_list("name", flat=True))
    # The failing step's own writes rolled back with it (atomic); charge's undo
    # failed once and was retried (its own attempts), recorded once.
    assert names == ["do:reserve", "do:charge", "undo:charge", "undo:reserve"]
    failed = workflow.failed_step
    assert failed is not None and failed.path == "2" and "ship" in str(failed.args)
    assert "attempts exhausted" in workflow.failure
    undo_ship = WorkflowStep.objects.get(workflow=workflow, path="2.undo")
    assert undo_ship.status == StepStatus.CANCELLED and undo_ship.job_id is None
    undo_charge = WorkflowStep.objects.get(workflow=workflow, path="1.undo")
    assert Job.objects.get(pk=undo_charge.job_id).attempts == 2


def test_saga_whose_compensation_gives_up_fails_and_can_be_retried(start_worker):
    workflow = saga(
        (tasks.saga_do.s("a"), tasks.saga_undo.s("a", fail_times=3)),
        (tasks.saga_do.s("b", fail=True), None),
    ).enqueue()
    worker = start_worker()
    workflow.wait(60)
    worker.kill()
    assert workflow.status == WorkflowStatus.FAILED and workflow.compensating
    assert workflow.failed_step.path == "0.undo"
    assert names_of_events() == ["do:a"]
    assert workflow.retry() == 1
    assert workflow.status == WorkflowStatus.RUNNING and not workflow.failure
    undo = WorkflowStep.objects.get(workflow=workflow, path="0.undo")
    assert undo.status == StepStatus.RUNNING
    assert Job.objects.filter(workflow=workflow, task_name=tasks.saga_undo.name).count() == 2
    assert Job.objects.get(pk=undo.job_id).status == JobStatus.READY


def names_of_events() -> list[str]:
    return list(Event.objects.order_by("id").values_list("name", flat=True))


def test_chain_step_failing_fails_the_workflow_the_rest_never_runs(start_worker):
    workflow = chain(tasks.wf_add.s(1, 2), tasks.always_fails.si(), tasks.wf_add.s(1)).enqueue()
    worker = start_worker()
    workflow.wait(60)
    worker.kill()
    assert workflow.status == WorkflowStatus.FAILED
    assert workflow.failed_step.path == "1" and "always_fails" in workflow.failure
    assert Job.objects.filter(workflow=workflow).count() == 2
    last = WorkflowStep.objects.get(workflow=workflow, path="2")
    assert last.status == StepStatus.PENDING and last.job_id is None


def test_chord_member_failing_fails_it_naming_the_member_callback_never_runs(start_worker):
    members = [tasks.wf_square.s(1), tasks.always_fails.si(), tasks.wf_square.s(3)]
    workflow = chord(group(*members), tasks.wf_collect.s()).enqueue()
    worker = start_worker()
    workflow.wait(60)
    worker.kill()
    assert workflow.status == WorkflowStatus.FAILED
    assert workflow.failed_step.path == "0.1"
    assert not Event.objects.filter(name="wf_collect").exists()


def test_nesting_chain_in_group_and_group_in_chain(run_burst):
    inner = group(chain(tasks.wf_add.s(1), tasks.wf_add.s(10)), tasks.wf_add.s(100))
    workflow = chain(tasks.wf_add.s(2, 3), inner, tasks.wf_collect.s()).enqueue()
    run_burst("--concurrency", "3")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCESSFUL
    # wf_add(2, 3) = 5 goes to both members: the chain's first step, and wf_add(5, 100).
    (callback,) = Event.objects.filter(name="wf_collect")
    assert callback.value["results"] == [5 + 1 + 10, 5 + 100]


def test_cancelling_a_chain_stops_its_running_step_and_nothing_after_it_runs(start_worker):
    workflow = chain(
        tasks.loops_until_cancelled.si(60), tasks.wf_add.si(1, 2), tasks.wf_add.s(3)
    ).enqueue()
    worker = start_worker("--concurrency", "2", env={"DJANGO_JOBS_TEST_HEARTBEAT": "0.5"})
    wait_until(
        lambda: Event.objects.filter(name="started").exists(), 60, 0.1, "the first step to run"
    )
    (first,) = Job.objects.filter(workflow=workflow)
    assert first.status == JobStatus.RUNNING
    assert workflow.cancel() is True
    wait_until(
        lambda: Job.objects.get(pk=first.pk).status == JobStatus.CANCELLED,
        30,
        0.1,
        "the running step to be cancelled by its worker",
    )
    (stopping,) = Event.objects.filter(name="stopping")
    assert stopping.value == {"cancel_requested": True}
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.CANCELLED
    assert Job.objects.filter(workflow=workflow).count() == 1, "no later step was created"
    assert worker.terminate() == 0
