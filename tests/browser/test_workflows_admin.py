"""Workflows in a real browser: an operator filters the list, reads a failed
workflow's timeline, retries it, and cancels a saga, which compensates; the
database is checked after each click. Jobs run in-process (run_jobs)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from django_jobs import chain, saga
from django_jobs.engine import get_engine
from django_jobs.models import Job, Workflow, WorkflowStep
from django_jobs.rows import Completion
from django_jobs.status import JobStatus, StepStatus, WorkflowStatus
from django_jobs.testing import run_jobs
from tests.testapp import tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOT = "/tmp/wf_admin.png"


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser("ops", "ops@example.com", "s3cret-pw")


def failed_chain() -> Workflow:
    """A chain whose first step's job an operator cancelled: FAILED at step 0."""
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(10), tasks.wf_add.s(100)).enqueue()
    engine = get_engine()
    engine.cancel_jobs(list(Job.objects.filter(workflow=workflow).values_list("pk", flat=True)))
    engine.settle_orphans()
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.FAILED
    return workflow


def rows(page):
    return page.locator("#result_list tbody tr")


def test_operator_filters_reads_the_timeline_and_retries_a_failed_chain(
    page, login, screenshot, operator
):
    done = chain(tasks.wf_add.s(1, 1), tasks.wf_add.s(1)).enqueue()
    run_jobs()
    failed = failed_chain()
    running = saga((tasks.saga_do.s("a"), tasks.saga_undo.s("a"))).enqueue()
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/workflow/")
    expect(rows(page)).to_have_count(3)
    expect(rows(page).first).to_contain_text(str(running.pk))

    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name="Saga").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Running")
    assert "kind__exact=saga" in page.url
    page.goto("/admin/django_jobs/workflow/")
    filters.get_by_role("link", name="Failed").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Failed")
    screenshot(page, "workflows-list-failed")

    rows(page).first.get_by_role("link", name=str(failed.pk)).click()
    expect(page).to_have_url(re.compile(rf"/admin/django_jobs/workflow/{failed.pk}/change/"))
    expect(page.locator("h1")).to_contain_text(f"Workflow #{failed.pk} (chain)")
    expect(page.locator(".jobs-workflow-failure")).to_contain_text("cancelled by an operator")
    steps = page.locator(".jobs-workflow-steps tbody tr")
    expect(steps).to_have_count(4)  # the chain and its three tasks, in canvas order
    assert [steps.nth(i).get_attribute("data-path") for i in range(4)] == ["", "0", "1", "2"]
    expect(steps.nth(1)).to_contain_text("Failed")
    expect(steps.nth(2)).to_contain_text("Pending")
    expect(steps.nth(0)).to_contain_text("Failed")  # the chain failed with its step
    expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)
    first_job = WorkflowStep.objects.get(workflow=failed, path="0").job_id
    link = steps.nth(1).get_by_role("link", name=f"#{first_job}")
    expect(link).to_be_visible()

    page.get_by_role("button", name="Retry failed steps").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("1 workflow retried")
    failed.refresh_from_db()
    assert failed.status == WorkflowStatus.RUNNING and not failed.failure
    retried = WorkflowStep.objects.get(workflow=failed, path="0")
    assert retried.status == StepStatus.RUNNING and retried.job_id != first_job
    assert Job.objects.get(pk=retried.job_id).status == JobStatus.READY
    run_jobs()
    assert failed.wait(1).status == WorkflowStatus.SUCCESSFUL and failed.result == 113
    page.reload()
    expect(page.locator("h1")).to_contain_text("Successful")
    expect(page.locator(".jobs-workflow-steps tbody tr").nth(3)).to_contain_text("Successful")
    expect(page.get_by_role("button", name="Retry failed steps")).to_have_count(0)
    assert done.pk != failed.pk

    page.locator(".jobs-workflow-steps tbody tr").nth(1).get_by_role("link").click()
    expect(page).to_have_url(f"/admin/django_jobs/job/{retried.job_id}/change/")


def test_operator_cancels_a_saga_which_compensates(page, login, screenshot, operator):
    workflow = saga(
        (tasks.saga_do.s("reserve"), tasks.saga_undo.s("reserve")),
        (tasks.saga_do.s("charge"), tasks.saga_undo.s("charge")),
        (tasks.saga_do.s("ship"), None),
    ).enqueue()
    engine = get_engine()
    (first,) = engine.claim_jobs(uuid.uuid4(), None, 10, 30)
    assert engine.complete_jobs([Completion(first, '"reserve"')]) == {first.id}
    login("ops", "s3cret-pw")
    page.goto(f"/admin/django_jobs/workflow/{workflow.pk}/change/")
    expect(page.get_by_role("button", name="Retry failed steps")).to_have_count(0)

    page.get_by_role("button", name="Cancel workflow").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("1 workflow cancelled")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.RUNNING and workflow.compensating
    steps = {s.path: s for s in WorkflowStep.objects.filter(workflow=workflow)}
    assert Job.objects.get(pk=steps["1"].job_id).status == JobStatus.CANCELLED
    assert steps["1"].status == StepStatus.CANCELLED and steps["2"].status == StepStatus.CANCELLED
    assert steps["0.undo"].status == StepStatus.RUNNING
    assert Job.objects.get(pk=steps["0.undo"].job_id).status == JobStatus.READY
    page.goto(f"/admin/django_jobs/workflow/{workflow.pk}/change/")
    expect(page.locator(".jobs-facts").first).to_contain_text("(compensating)")

    run_jobs()  # the compensation runs
    assert workflow.wait(1).status == WorkflowStatus.CANCELLED
    assert Job.objects.filter(workflow=workflow, task_name=tasks.saga_undo.name).count() == 1
    page.reload()
    expect(page.locator("h1")).to_contain_text("Cancelled")
    undo = page.locator('.jobs-workflow-steps tbody tr[data-path="0.undo"]')
    expect(undo).to_contain_text("Successful")
    expect(undo).to_contain_text("Compensation")
    root = page.locator('.jobs-workflow-steps tbody tr[data-path=""]')
    expect(root).to_contain_text("Cancelled")  # the saga's chain ended with it
    assert WorkflowStep.objects.get(workflow=workflow, path="").status == StepStatus.CANCELLED
    expect(page.locator(".jobs-facts").first).not_to_contain_text("compensating")
    expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)
    screenshot(page, "workflow-cancelled-saga")
    page.screenshot(path=SHOT, full_page=True)
