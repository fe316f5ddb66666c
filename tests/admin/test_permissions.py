"""Who sees and who changes: anonymous, staff without permissions, view-only, change."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.admin.factories import make_dead_letter, make_job, make_user, make_worker

pytestmark = pytest.mark.django_db

VIEW_ALL = (
    "django_jobs.view_job",
    "django_jobs.view_deadletter",
    "django_jobs.view_worker",
)


@pytest.fixture
def objects():
    job = make_job(JobStatus.FAILED)
    return {"job": job, "letter": make_dead_letter(job), "worker": make_worker()}


def pages(objects) -> dict[str, str]:
    return {
        "overview": reverse("admin:django_jobs_overview_changelist"),
        "jobs": reverse("admin:django_jobs_job_changelist"),
        "job": reverse("admin:django_jobs_job_change", args=[objects["job"].pk]),
        "letters": reverse("admin:django_jobs_deadletter_changelist"),
        "letter": reverse("admin:django_jobs_deadletter_change", args=[objects["letter"].pk]),
        "workers": reverse("admin:django_jobs_worker_changelist"),
        "worker": reverse("admin:django_jobs_worker_change", args=[objects["worker"].pk]),
    }


def login(username: str, *perms: str) -> Client:
    make_user(username, *perms)
    client = Client()
    assert client.login(username=username, password="pw")
    return client


def retry_posts(client: Client, objects) -> None:
    job, letter = objects["job"], objects["letter"]
    client.post(
        reverse("admin:django_jobs_job_changelist"),
        {"action": "retry_jobs", "_selected_action": [job.pk], "index": 0},
    )
    client.post(reverse("admin:django_jobs_job_act", args=[job.pk, "retry_jobs"]))
    client.post(reverse("admin:django_jobs_deadletter_act", args=[letter.pk, "retry_dead_letters"]))
    client.post(
        reverse("admin:django_jobs_deadletter_changelist"),
        {"action": "retry_dead_letters", "_selected_action": [letter.pk], "index": 0},
    )


def assert_unchanged(objects) -> None:
    assert Job.objects.get(pk=objects["job"].pk).status == JobStatus.FAILED
    assert DeadLetter.objects.get(pk=objects["letter"].pk).retried_at is None
    assert Job.objects.count() == 1


def test_anonymous_is_sent_to_login(client, objects):
    for url in pages(objects).values():
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    response = client.post(
        reverse("admin:django_jobs_job_act", args=[objects["job"].pk, "retry_jobs"])
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    retry_posts(client, objects)
    assert_unchanged(objects)


def test_staff_without_permissions_sees_nothing(objects):
    client = login("plain")
    index = client.get(reverse("admin:index")).content.decode()
    assert "django_jobs" not in index and "Overview" not in index
    for name, url in pages(objects).items():
        assert client.get(url).status_code == 403, name
    retry_posts(client, objects)
    assert_unchanged(objects)


def test_view_only_user_sees_everything_but_cannot_act(objects):
    client = login("viewer", *VIEW_ALL)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_jobs_overview_changelist") in index
    for name, url in pages(objects).items():
        assert client.get(url).status_code == 200, name
    jobs = client.get(reverse("admin:django_jobs_job_changelist"))
    assert jobs.context["action_form"] is None  # no action dropdown, no checkboxes
    detail = client.get(pages(objects)["job"]).content.decode()
    assert "data-action=" not in detail and "deletelink" not in detail
    letter = client.get(pages(objects)["letter"]).content.decode()
    assert "data-action=" not in letter
    response = client.post(
        reverse("admin:django_jobs_job_act", args=[objects["job"].pk, "retry_jobs"])
    )
    assert response.status_code == 403
    retry_posts(client, objects)
    assert_unchanged(objects)


def test_overview_needs_the_job_view_permission(objects):
    client = login("letters-only", "django_jobs.view_deadletter")
    assert client.get(reverse("admin:django_jobs_overview_changelist")).status_code == 403
    assert client.get(pages(objects)["letters"]).status_code == 200
    client = login("jobs-only", "django_jobs.view_job")
    overview = client.get(reverse("admin:django_jobs_overview_changelist"))
    assert overview.status_code == 200
    assert overview.context["dead_letters_url"] is None  # no link to what it cannot open


def test_change_permission_allows_actions_but_not_deletes(objects):
    client = login("operator", *VIEW_ALL, "django_jobs.change_job", "django_jobs.change_deadletter")
    detail = client.get(pages(objects)["job"]).content.decode()
    assert 'data-action="retry_jobs"' in detail and "deletelink" not in detail
    actions = client.get(reverse("admin:django_jobs_job_changelist")).context["action_form"]
    names = [value for value, _ in actions.fields["action"].choices]
    assert "retry_jobs" in names and "delete_selected" not in names
    client.post(reverse("admin:django_jobs_job_act", args=[objects["job"].pk, "retry_jobs"]))
    assert Job.objects.get(pk=objects["job"].pk).status == JobStatus.READY
