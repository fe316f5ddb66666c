"""Bulk actions and one-click detail actions change the database as promised."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from django_jobs.models import DeadLetter, Job, OutboxEvent
from django_jobs.status import JobStatus, OutboxStatus
from tests.admin.factories import make_dead_letter, make_job, make_scheduled

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:django_jobs_job_changelist")
LETTERS = reverse("admin:django_jobs_deadletter_changelist")
OUTBOX = reverse("admin:django_jobs_outboxevent_changelist")


def post_action(client, url, action, objs, **extra):
    data = {"action": action, "_selected_action": [o.pk for o in objs], "index": 0, **extra}
    return client.post(url, data, follow=True)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)] or [
        str(m) for m in response.context["messages"]
    ]


def status_of(job) -> str:
    return Job.objects.get(pk=job.pk).status


def test_retry_failed_and_cancelled_skips_the_rest_with_reasons(admin_client):
    failed = make_job(JobStatus.FAILED)
    cancelled = make_job(JobStatus.CANCELLED)
    running = make_job(JobStatus.RUNNING)
    done = make_job(JobStatus.SUCCESSFUL)
    response = post_action(admin_client, JOBS, "retry_jobs", [failed, cancelled, running, done])
    assert texts(response) == [
        "2 jobs retried; 2 skipped (1 running, 1 successful): "
        "only failed or cancelled jobs are retried."
    ]
    retried = Job.objects.get(pk=failed.pk)
    assert (retried.status, retried.attempts, retried.finished_at) == (JobStatus.READY, 0, None)
    assert len(retried.errors) == 2  # history kept
    assert status_of(cancelled) == JobStatus.READY
    assert status_of(running) == JobStatus.RUNNING and status_of(done) == JobStatus.SUCCESSFUL


def test_cancel_ready_jobs_now_and_asks_running_ones_to_stop(admin_client):
    due, scheduled = make_job(), make_scheduled()
    running = make_job(JobStatus.RUNNING)
    done = make_job(JobStatus.SUCCESSFUL)
    response = post_action(admin_client, JOBS, "cancel_jobs", [due, scheduled, running, done])
    assert texts(response) == [
        "3 jobs cancelled; 1 skipped (1 successful): only ready or running jobs are cancelled.",
        "1 running job will be stopped by its worker within a few seconds and end cancelled.",
    ]
    assert status_of(due) == status_of(scheduled) == JobStatus.CANCELLED
    # The worker writes the end of a running job; the admin only asks.
    running = Job.objects.get(pk=running.pk)
    assert running.status == JobStatus.RUNNING and running.cancel_requested_at is not None
    assert Job.objects.get(pk=done.pk).cancel_requested_at is None


def test_run_now_moves_scheduled_jobs_and_leaves_due_ones_in_place(admin_client):
    scheduled, due = make_scheduled(), make_job()
    due_at = due.run_after
    response = post_action(admin_client, JOBS, "run_jobs_now", [scheduled, due])
    assert texts(response) == [
        "1 job made due now; 1 skipped (1 ready): only scheduled jobs are moved."
    ]
    assert not Job.objects.get(pk=scheduled.pk).is_scheduled
    assert Job.objects.get(pk=due.pk).run_after == due_at  # keeps its place in line


def test_nothing_eligible_is_a_warning(admin_client):
    running = make_job(JobStatus.RUNNING)
    response = post_action(admin_client, JOBS, "retry_jobs", [running])
    (message,) = list(response.context["messages"])
    assert message.level_tag == "warning" and str(message).startswith("0 jobs retried")


@pytest.fixture
def cap_of_two(monkeypatch):
    """Every bulk action handles at most 2 selected rows (one setting for all)."""
    monkeypatch.setattr("django_jobs.admin.actions.MAX_SELECTION", 2)


CAP_MESSAGE = "only the first 2 selected were handled, run it again"


def test_job_actions_handle_at_most_the_cap(admin_client, cap_of_two):
    jobs = [make_job(JobStatus.FAILED) for _ in range(3)]
    response = post_action(
        admin_client, f"{JOBS}?status=FAILED", "retry_jobs", [jobs[0]], select_across=1
    )
    assert texts(response) == [f"2 jobs retried; {CAP_MESSAGE}."]
    # newest first: the two newest were retried, the oldest is left for the next run
    assert [status_of(job) for job in jobs] == [JobStatus.FAILED, JobStatus.READY, JobStatus.READY]


def test_dead_letter_retry_handles_at_most_the_cap(admin_client, cap_of_two):
    letters = [make_dead_letter() for _ in range(3)]
    response = post_action(admin_client, LETTERS, "retry_dead_letters", letters)
    assert texts(response)[0] == f"2 dead letters re-enqueued; {CAP_MESSAGE}."
    retried = DeadLetter.objects.filter(retried_at__isnull=False)
    assert sorted(retried.values_list("pk", flat=True)) == [letters[1].pk, letters[2].pk]
    assert Job.objects.filter(meta__retried_from_dead_letter__isnull=False).count() == 2


def test_outbox_redispatch_handles_at_most_the_cap(admin_client, cap_of_two):
    events = [
        OutboxEvent.objects.create(topic="order.created", status=OutboxStatus.FAILED)
        for _ in range(3)
    ]
    response = post_action(admin_client, OUTBOX, "redispatch_events", events)
    assert texts(response) == [f"2 events re-dispatched; {CAP_MESSAGE}."]
    statuses = [OutboxEvent.objects.get(pk=e.pk).status for e in events]
    assert statuses == [OutboxStatus.FAILED, OutboxStatus.DISPATCHED, OutboxStatus.DISPATCHED]


def test_outbox_redispatch_skips_events_that_did_not_fail(admin_client):
    failed = OutboxEvent.objects.create(topic="order.created", status=OutboxStatus.FAILED)
    pending = OutboxEvent.objects.create(topic="order.created")
    response = post_action(admin_client, OUTBOX, "redispatch_events", [failed, pending])
    assert texts(response) == [
        "1 event re-dispatched; 1 skipped (1 pending): only failed events are re-dispatched."
    ]
    assert OutboxEvent.objects.get(pk=failed.pk).status == OutboxStatus.DISPATCHED
    assert OutboxEvent.objects.get(pk=pending.pk).status == OutboxStatus.PENDING


def test_retry_dead_letters_records_new_job(admin_client):
    letter = make_dead_letter()
    already = make_dead_letter()
    DeadLetter.objects.filter(pk=already.pk).update(retried_job_id=1, retried_at=letter.created_at)
    response = post_action(admin_client, LETTERS, "retry_dead_letters", [letter, already])
    letter.refresh_from_db()
    assert letter.retried_at is not None
    new = Job.objects.get(pk=letter.retried_job_id)
    assert (new.status, new.task_name, new.args) == (JobStatus.READY, letter.task_name, [1, 2])
    assert new.meta["retried_from_dead_letter"] == letter.pk
    messages = texts(response)
    assert messages[0] == "1 dead letter re-enqueued; 1 skipped (1 already retried)."
    assert f"#{letter.pk} →" in messages[1]


def act(client, model, obj, action):
    url = reverse(f"admin:django_jobs_{model}_act", args=[obj.pk, action])
    return client.post(url, follow=True)


def test_one_click_detail_actions(admin_client):
    failed, scheduled, due = make_job(JobStatus.FAILED), make_scheduled(), make_job()
    response = act(admin_client, "job", failed, "retry_jobs")
    assert response.redirect_chain[-1][0] == reverse(
        "admin:django_jobs_job_change", args=[failed.pk]
    )
    assert texts(response) == ["1 job retried."] and status_of(failed) == JobStatus.READY
    act(admin_client, "job", scheduled, "run_jobs_now")
    assert not Job.objects.get(pk=scheduled.pk).is_scheduled
    act(admin_client, "job", due, "cancel_jobs")
    assert status_of(due) == JobStatus.CANCELLED
    letter = make_dead_letter()
    act(admin_client, "deadletter", letter, "retry_dead_letters")
    assert DeadLetter.objects.get(pk=letter.pk).retried_job_id is not None


def test_one_click_needs_post_and_a_known_action(admin_client):
    job = make_job(JobStatus.FAILED)
    url = reverse("admin:django_jobs_job_act", args=[job.pk, "retry_jobs"])
    assert admin_client.get(url).status_code == 405
    bad = reverse("admin:django_jobs_job_act", args=[job.pk, "delete_model"])
    assert admin_client.post(bad).status_code == 403
    missing = reverse("admin:django_jobs_job_act", args=[10**12, "retry_jobs"])
    assert admin_client.post(missing).status_code == 404
    assert status_of(job) == JobStatus.FAILED


def test_one_click_is_csrf_protected(client, django_user_model):
    from tests.admin.factories import make_user

    make_user("boss", superuser=True)
    client = type(client)(enforce_csrf_checks=True)
    client.login(username="boss", password="pw")
    job = make_job(JobStatus.FAILED)
    url = reverse("admin:django_jobs_job_act", args=[job.pk, "retry_jobs"])
    assert client.post(url).status_code == 403
    assert status_of(job) == JobStatus.FAILED
