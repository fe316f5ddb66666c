"""Operating workflows with real workers, on SQLite and PostgreSQL: cancel a
saga while a step runs, retry a FAILED saga from the admin, deep nesting."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_jobs import chain, chord, group, saga
from django_jobs.models import Job, WorkflowStep
from django_jobs.status import JobStatus, StepStatus, WorkflowStatus
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def effects() -> list[str]:
    return list(
        Event.objects.filter(name__contains=":").order_by("id").values_list("name", flat=True)
    )


def test_cancelling_a_saga_mid_step_stops_it_and_compensates_the_completed_steps(start_worker):
    workflow = saga(
        (tasks.saga_do.s("a"), tasks.saga_undo.s("a")),
        (tasks.loops_until_cancelled.s(60), tasks.saga_undo.s("b")),
        (tasks.saga_do.s("c"), tasks.saga_undo.s("c")),
    ).enqueue()
    worker = start_worker("--concurrency", "2", env={"DJANGO_JOBS_TEST_HEARTBEAT": "0.5"})
    wait_until(lambda: Event.objects.filter(name="started").exists(), 60, 0.1, "step b to run")
    assert workflow.cancel() is True
    workflow.wait(30)
    assert worker.terminate() == 0
    assert workflow.status == WorkflowStatus.CANCELLED
    # The running step was stopped by its worker (cancel_requested seen), never
    # completed, so only step a is compensated; step c never ran.
    (stopping,) = Event.objects.filter(name="stopping")
    assert stopping.value == {"cancel_requested": True}
    assert effects() == ["do:a", "undo:a"]
    steps = {s.path: s for s in WorkflowStep.objects.filter(workflow=workflow)}
    assert Job.objects.get(pk=steps["1"].job_id).status == JobStatus.CANCELLED
    assert steps["1.undo"].job_id is None and steps["2"].job_id is None
    assert steps["2"].status == StepStatus.CANCELLED
    assert steps["0.undo"].status == StepStatus.SUCCESSFUL


def test_a_failed_saga_retried_from_the_admin_finishes_its_compensations(
    start_worker, admin_client
):
    workflow = saga(
        (tasks.saga_do.s("a"), tasks.saga_undo_until_fixed.s("a")),
        (tasks.saga_do.s("b"), tasks.saga_undo_until_fixed.s("b")),
        (tasks.saga_do.s("c", fail=True), None),
    ).enqueue()
    worker = start_worker("--concurrency", "2")
    workflow.wait(60)
    # b's compensation gave up (2 attempts): FAILED, a's compensation not started.
    assert workflow.status == WorkflowStatus.FAILED and workflow.compensating
    assert workflow.failed_step.path == "1.undo" and "refund service is down" in workflow.failure
    undo_a = WorkflowStep.objects.get(workflow=workflow, path="0.undo")
    assert undo_a.status == StepStatus.PENDING
    Event.objects.create(name="fixed")  # the operator fixes the cause, then retries
    changelist = reverse("admin:django_jobs_workflow_changelist")
    response = admin_client.post(
        changelist, {"action": "retry_workflows", "_selected_action": [workflow.pk]}, follow=True
    )
    assert "1 workflow retried" in response.content.decode()
    workflow.wait(60)
    assert worker.terminate() == 0
    assert workflow.status == WorkflowStatus.COMPENSATED, workflow.failure
    assert effects() == ["do:a", "do:b", "undo:b", "undo:a"]
    # Each compensation job once; b's has a second job, made by the retry.
    undo_b = WorkflowStep.objects.get(workflow=workflow, path="1.undo")
    undo_jobs = Job.objects.filter(workflow=workflow, task_name=tasks.saga_undo_until_fixed.name)
    assert sorted(undo_jobs.values_list("workflow_position", "status")) == [
        (undo_a.position, JobStatus.SUCCESSFUL),
        (undo_b.position, JobStatus.FAILED),
        (undo_b.position, JobStatus.SUCCESSFUL),
    ]


def test_deep_nesting_chords_groups_and_chains_inside_each_other(run_burst):
    # chain(a, group(chain(b, chord(group(x, y), collect)), group(c, d)),
    #       chord(group(collect), chain(collect, add))): group in chain, chain in
    # group, chord in chain, group in group, and a chord whose callback is a chain.
    inner_chord = chord(group(tasks.wf_add.s(1), tasks.wf_add.s(2)), tasks.wf_collect.s())
    workflow = chain(
        tasks.wf_add.s(1, 2),  # 3
        group(
            chain(tasks.wf_add.s(10), inner_chord),  # 13 -> [14, 15] -> collect: 2
            group(tasks.wf_add.s(100), tasks.wf_add.s(200)),  # [103, 203]
        ),  # [2, [103, 203]]
        chord(
            group(tasks.wf_collect.s()),  # collect([2, [103, 203]]) -> 2; the group: [2]
            chain(tasks.wf_collect.s(), tasks.wf_add.s(1000)),  # collect([2]) -> 1 -> 1001
        ),
    ).enqueue()
    run_burst("--concurrency", "3")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.SUCCESSFUL, workflow.failure
    collected = [e.value["results"] for e in Event.objects.filter(name="wf_collect").order_by("id")]
    assert collected == [[14, 15], [2, [103, 203]], [2]]
    assert workflow.result == 1001
    assert set(WorkflowStep.objects.filter(workflow=workflow).values_list("status", flat=True)) == {
        StepStatus.SUCCESSFUL
    }
