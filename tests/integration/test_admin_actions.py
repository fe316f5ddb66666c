"""Admin actions through the test client: permission-checked POSTs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def staff_client(*perms: str) -> Client:
    user = User.objects.create_user(
        "op-" + "-".join(perms or ("none",)), password="pw", is_staff=True
    )
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def post_action(client: Client, model: str, action: str, ids: list[int]):
    return client.post(
        reverse(f"admin:django_jobs_{model}_changelist"),
        {"action": action, "_selected_action": [str(i) for i in ids]},
    )


def failed_job() -> Job:
    job = tasks.add.enqueue(20, 22)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, attempts=3, errors=[{"message": "x"}]
    )
    DeadLetter.objects.create(
        job_id=job.pk, task_name=job.task_name, queue_name="default", args=[20, 22], reason="test"
    )
    return job


def test_retry_action_puts_a_failed_job_back_and_it_then_succeeds(run_burst):
    job = failed_job()
    client = staff_client("view_job", "change_job")
    response = post_action(client, "job", "retry_jobs", [job.pk])
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.READY, 0)
    assert job.errors == [{"message": "x"}]  # history kept
    run_burst()
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.SUCCESSFUL, 42)


def test_retry_action_is_refused_without_change_permission():
    job = failed_job()
    response = post_action(staff_client("view_job"), "job", "retry_jobs", [job.pk])
    assert response.status_code in (200, 403)  # unknown action for this user: nothing done
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_staff_without_any_permission_gets_403():
    job = failed_job()
    response = post_action(staff_client(), "job", "retry_jobs", [job.pk])
    assert response.status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_anonymous_is_sent_to_login():
    job = failed_job()
    response = post_action(Client(), "job", "retry_jobs", [job.pk])
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_dead_letter_retry_enqueues_a_new_job_once(run_burst):
    failed_job()
    letter = DeadLetter.objects.get()
    client = staff_client("view_deadletter", "change_deadletter")
    post_action(client, "deadletter", "retry_dead_letters", [letter.pk])
    post_action(client, "deadletter", "retry_dead_letters", [letter.pk])  # second time: skipped
    letter.refresh_from_db()
    assert letter.retried_at is not None
    new_job = Job.objects.get(pk=letter.retried_job_id)
    assert Job.objects.count() == 2
    run_burst()
    new_job.refresh_from_db()
    assert (new_job.status, new_job.result) == (JobStatus.SUCCESSFUL, 42)
