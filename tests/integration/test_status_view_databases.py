"""The job status view reads the database the job was enqueued in, and its
token expires; tokens stay out of Django's request log lines.

Two real databases: ``default`` and ``jobs`` (tests/settings.py), on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.tasks import task_backends
from django.test import Client, RequestFactory, override_settings

from django_jobs.http import accepted
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import TEST_DB
from tests.testapp import dtasks, tasks

pytestmark = pytest.mark.django_db(databases=["default", "jobs"])

WEEK = 7 * 24 * 3600


def twin_jobs() -> tuple[Job, Job]:
    """A finished job in ``jobs`` and one with the same id in ``default``."""
    mine = tasks.add.using(database="jobs").enqueue(1, 2)
    assert mine._state.db == "jobs"
    other = tasks.add.enqueue(40, 2)
    Job.objects.using("default").filter(pk=other.pk).update(id=mine.pk)
    Job.objects.using("default").filter(pk=mine.pk).update(
        status=JobStatus.SUCCESSFUL, result="result of another job"
    )
    Job.objects.using("jobs").filter(pk=mine.pk).update(status=JobStatus.SUCCESSFUL, result=3)
    return mine, Job.objects.using("default").get(pk=mine.pk)


def location_of(job_or_result: object) -> str:
    request = RequestFactory().post("/start/")
    response = accepted(request, job_or_result)
    assert response.status_code == 202
    return str(response["Location"])


def test_the_two_aliases_are_two_databases_of_this_run():
    default, jobs = connections["default"], connections["jobs"]
    assert default.vendor == jobs.vendor == TEST_DB.replace("postgres", "postgresql")
    assert default.settings_dict["NAME"] != jobs.settings_dict["NAME"]
    tasks.add.using(database="jobs").enqueue(1, 1)
    assert not Job.objects.using("default").exists()


def test_status_of_a_job_in_another_database_is_read_there():
    mine, other = twin_jobs()
    state = Client().get(location_of(mine)).json()
    assert (state["id"], state["status"], state["result"]) == (mine.pk, "SUCCESSFUL", 3)
    # The job of "default" with the same id is still reachable through its own token.
    assert Client().get(location_of(other)).json()["result"] == "result of another job"


def test_django_tasks_result_of_a_backend_on_another_database():
    backends = {
        "default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": ["default"]},
        "side": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"DATABASE": "jobs"},
        },
    }
    with override_settings(TASKS=backends):
        result = dtasks.add.using(backend="side").enqueue(2, 3)
        assert task_backends["side"].database == "jobs"
        assert Job.objects.using("jobs").filter(pk=int(result.id)).exists()
        Job.objects.using("default").filter(pk=tasks.add.enqueue(0, 0).pk).update(
            id=int(result.id), status=JobStatus.SUCCESSFUL, result="not yours"
        )
        Job.objects.using("jobs").filter(pk=int(result.id)).update(
            status=JobStatus.SUCCESSFUL, result=5
        )
        state = Client().get(location_of(result)).json()
    assert (state["id"], state["result"]) == (int(result.id), 5)


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_token_for_a_database_no_longer_configured_is_not_found(settings):
    mine, _ = twin_jobs()
    location = location_of(mine)
    with override_settings(DATABASES={"default": settings.DATABASES["default"]}):
        response = Client().get(location)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown job"}


def test_old_format_tokens_are_not_found_without_a_traceback():
    mine, _ = twin_jobs()
    # The format before tokens named their database and expired: same salt.
    old = signing.Signer(salt="django_jobs.status").sign_object([mine.pk, None])
    response = Client().get(f"/jobs/{old}/")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown job"}


def test_tokens_expire_after_the_configured_lifetime(monkeypatch, settings):
    mine, _ = twin_jobs()
    issued = int(time.time())
    location = location_of(mine)
    assert Client().get(location).status_code == 200
    # A token issued 7 days and a minute ago, under the default lifetime (7 days).
    monkeypatch.setattr(
        signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued - WEEK - 60)
    )
    stale = location_of(mine)
    monkeypatch.undo()
    response = Client().get(stale)
    assert response.status_code == 410
    assert response.json() == {"error": "this status link has expired"}
    # A longer lifetime (seconds) keeps it valid; a shorter one expires today's.
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "STATUS_TOKEN_MAX_AGE": 2 * WEEK}
    assert Client().get(stale).status_code == 200
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "STATUS_TOKEN_MAX_AGE": 0.001}
    monkeypatch.setattr(
        signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued - 5)
    )
    assert Client().get(location_of(mine)).status_code == 410


def test_bad_lifetime_setting_is_a_clear_error(settings):
    mine, _ = twin_jobs()
    location = location_of(mine)
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "STATUS_TOKEN_MAX_AGE": "7d"}
    with pytest.raises(ImproperlyConfigured, match=r"TOKEN_MAX_AGE'\] must be a positive number"):
        Client(raise_request_exception=True).get(location)
    with pytest.raises(ImproperlyConfigured, match=r"TOKEN_MAX_AGE'\] must be a positive number"):
        location_of(mine)


def test_a_result_of_another_backend_is_refused():
    class Foreign:
        id = "12"
        backend = "not-a-backend"

    with pytest.raises(TypeError, match="expected a django_jobs Job or a JobsBackend TaskResult"):
        location_of(Foreign())


def test_tokens_stay_out_of_request_log_lines(caplog, django_user_model):
    mine, _ = twin_jobs()
    anonymous = location_of(mine)
    bound = location_of_user(mine, django_user_model.objects.create_user("alice"))
    caplog.set_level(logging.INFO)
    tampered = anonymous[:-3] + "xx/"
    assert Client().get(tampered).status_code == 404
    assert Client().get(bound).status_code == 403
    assert Client().post(anonymous).status_code == 405
    assert Client().get(anonymous).status_code == 200
    lines = [record.getMessage() for record in caplog.records]
    secrets = [part.rstrip("/").rsplit("/", 1)[1] for part in (anonymous, bound, tampered)]
    for secret in secrets:
        for line in lines:
            assert secret not in line, line
        for record in caplog.records:
            request = getattr(record, "request", None)
            assert request is None or secret not in request.get_full_path(), record
    assert sum("/jobs/<token>/" in line for line in lines) == 3, lines


def location_of_user(job: Job, user: object) -> str:
    request = RequestFactory().post("/start/")
    request.user = user  # type: ignore[assignment]
    return str(accepted(request, job)["Location"])
