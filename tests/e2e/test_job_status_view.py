"""Async request-reply: 202 Accepted + Location, the job status view and its
access control, progress while a real worker runs, Job.wait()."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.test import Client, RequestFactory
from django.urls import reverse

from django_jobs.http import accepted, status_token
from django_jobs.models import Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import dtasks, tasks

pytestmark = pytest.mark.django_db(transaction=True)
START = "/report/start/"


@pytest.fixture
def users():
    model = get_user_model()
    return {name: model.objects.create_user(name, password="pw") for name in ("alice", "bob")}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def start_report(client: Client, rows: int = 3):
    response = client.post(START, {"rows": rows})
    assert response.status_code == 202, response.content
    location = response["Location"]
    assert response.json()["status_url"] == location
    return response, location


def test_accepted_helper_builds_202_with_location(users):
    result = dtasks.add.enqueue(1, 2)
    request = RequestFactory().post("/anything/")
    request.user = users["alice"]
    response = accepted(request, result, {"extra": True})
    assert response.status_code == 202
    location = response["Location"]
    assert location.startswith("/jobs/") and result.id not in location.split("/")
    assert json.loads(response.content) == {
        "id": int(result.id),
        "status_url": location,
        "extra": True,
    }
    job = tasks.add.enqueue(1, 1)  # a django_jobs Job works the same way
    assert accepted(request, job)["Location"].startswith("/jobs/")
    with pytest.raises(TypeError, match="expected a django_jobs Job"):
        accepted(request, object())


def test_owner_sees_the_status_others_do_not(users):
    alice = login(users["alice"])
    response, location = start_report(alice)
    job = Job.objects.get(pk=response.json()["id"])
    assert job.task_name == "example_project.demo.tasks.generate_report"

    mine = alice.get(location)
    assert mine.status_code == 200
    assert mine["Cache-Control"].startswith("max-age=0")
    assert mine["Retry-After"] == "1"
    state = mine.json()
    assert (state["id"], state["status"], state["finished"]) == (job.pk, "READY", False)
    assert state["progress"] is None and state["enqueued_at"] and state["started_at"] is None

    assert login(users["bob"]).get(location).status_code == 403
    assert Client().get(location).status_code == 403  # anonymous


def test_bare_ids_and_tampered_tokens_are_not_found(users):
    alice = login(users["alice"])
    response, location = start_report(alice)
    job_id = response.json()["id"]
    url = reverse("django_jobs:job-status", kwargs={"token": str(job_id)})
    assert alice.get(url).status_code == 404
    token = location.rstrip("/").rsplit("/", 1)[1]
    forged = signing.TimestampSigner(salt="django_jobs.status.v2").sign_object(
        [job_id, "default", None]
    )
    assert forged != token
    forged_other_salt = signing.Signer(salt="other").sign_object([job_id, None])
    for bad in [token[:-2] + "xx", forged_other_salt, "abc:def"]:
        assert Client().get(reverse("django_jobs:job-status", args=[bad])).status_code == 404
    # Forging needs SECRET_KEY: with it, an unbound token works for anyone (documented).
    assert Client().get(reverse("django_jobs:job-status", args=[forged])).status_code == 200


def test_anonymous_request_gets_a_bearer_token():
    anonymous = Client()
    _, location = start_report(anonymous)
    assert anonymous.get(location).status_code == 200
    assert Client().get(location).status_code == 200  # the token is the credential


def test_bad_input_is_refused_and_nothing_is_enqueued():
    assert Client().post(START, {"rows": "lots"}).status_code == 400
    assert Client().post(START, {"rows": 0}).status_code == 400
    assert Client().get(START).status_code == 405
    assert not Job.objects.exists()


def test_progress_moves_while_the_task_runs_then_the_result_shows(users, start_worker):
    alice = login(users["alice"])
    response = alice.post(START, {"rows": 8})
    location = response["Location"]
    # Slow enough to observe: 8 rows x 0.4 s.
    Job.objects.filter(pk=response.json()["id"]).update(kwargs={"rows": 8, "pause": 0.4})
    start_worker("--concurrency", "1")
    seen: list[int] = []

    def finished() -> bool:
        state = alice.get(location).json()
        if state["progress"]:
            done = state["progress"]["done"]
            if not seen or seen[-1] != done:
                seen.append(done)
        return bool(state["finished"])

    wait_until(finished, 60, interval=0.1, message="report finished")
    state = alice.get(location).json()
    assert state["status"] == JobStatus.SUCCESSFUL
    assert state["progress"] == {"done": 8, "total": 8}
    assert state["result"] == {"rows": 8, "sum": 36, "attempt": 1}
    assert state["started_at"] <= state["finished_at"]
    assert "Retry-After" not in alice.get(location)
    # Several intermediate values were observed, in increasing order.
    assert len([d for d in seen if d < 8]) >= 2, seen
    assert seen == sorted(seen)


def test_failed_job_shows_an_error_summary_without_traceback(run_burst):
    result = dtasks.raises_system_exit.enqueue()
    token = status_token(result)
    run_burst()
    state = Client().get(reverse("django_jobs:job-status", args=[token])).json()
    assert state["status"] == "FAILED" and state["finished"] is True
    assert state["error"] == {"exception_class": "builtins.SystemExit", "message": "3"}
    assert "result" not in state and "Traceback" not in str(state)


def test_job_wait_blocks_until_finished_or_times_out(start_worker):
    job = tasks.sleep_for.enqueue(0.3)
    with pytest.raises(TimeoutError, match=f"job {job.pk} .* still READY"):
        job.wait(timeout=0.3)
    start_worker("--concurrency", "1")
    assert job.wait(timeout=30) is job
    assert job.status == JobStatus.SUCCESSFUL and job.result == 0.3
