"""The Workflows admin: list filters, the steps timeline, retry and cancel."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_jobs import chain, saga
from django_jobs.engine import get_engine
from django_jobs.models import Job, Workflow
from django_jobs.status import JobStatus, WorkflowStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

WORKFLOWS = reverse("admin:django_jobs_workflow_changelist")


def test_list_filters_by_kind_and_status(admin_client):
    running = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(3)).enqueue()
    other = saga((tasks.saga_do.s("a"), None)).enqueue()
    other.cancel()
    response = admin_client.get(WORKFLOWS)
    assert response.status_code == 200
    assert [w.pk for w in response.context["cl"].result_list] == [other.pk, running.pk]
    assert '<td class="field-step_count">2</td>' in response.content.decode()
    response = admin_client.get(WORKFLOWS, {"kind": "chain"})
    assert [w.pk for w in response.context["cl"].result_list] == [running.pk]
    response = admin_client.get(WORKFLOWS, {"status": WorkflowStatus.CANCELLED})
    assert [w.pk for w in response.context["cl"].result_list] == [other.pk]


def test_detail_shows_steps_in_order_with_job_links_and_cancel(admin_client):
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(3)).enqueue()
    job = Job.objects.get(workflow=workflow)
    url = reverse("admin:django_jobs_workflow_change", args=[workflow.pk])
    html = admin_client.get(url).content.decode()
    assert html.index('data-path="0"') < html.index('data-path="1"')
    assert reverse("admin:django_jobs_job_change", args=[job.pk]) in html
    assert 'data-action="cancel_workflows"' in html
    assert 'data-action="retry_workflows"' not in html  # only for FAILED workflows
    act = reverse("admin:django_jobs_workflow_act", args=[workflow.pk, "cancel_workflows"])
    assert admin_client.post(act).status_code == 302
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.CANCELLED
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_retry_action_reruns_the_failed_step(admin_client):
    workflow = chain(tasks.wf_add.s(1, 2), tasks.wf_add.s(3)).enqueue()
    engine = get_engine()
    engine.cancel_jobs(list(Job.objects.filter(workflow=workflow).values_list("pk", flat=True)))
    engine.settle_orphans()
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.FAILED
    url = reverse("admin:django_jobs_workflow_change", args=[workflow.pk])
    html = admin_client.get(url).content.decode()
    assert "cancelled by an operator" in html and 'data-action="retry_workflows"' in html
    response = admin_client.post(
        WORKFLOWS, {"action": "retry_workflows", "_selected_action": [workflow.pk]}, follow=True
    )
    assert "1 workflow retried" in response.content.decode()
    assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.RUNNING
    assert Job.objects.filter(workflow=workflow, status=JobStatus.READY).count() == 1
