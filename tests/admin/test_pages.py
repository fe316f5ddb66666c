"""Admin pages render what operators need, from real rows, with the Django test client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_jobs.models import Job, Worker
from django_jobs.status import JobStatus
from tests.admin.factories import (
    make_dead_letter,
    make_job,
    make_scheduled,
    make_worker,
)

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:django_jobs_job_changelist")


def listed_ids(response) -> list[int]:
    return [job.pk for job in response.context["cl"].result_list]


def test_job_list_columns_and_default_order(admin_client, frozen_now):
    old = make_job(JobStatus.FAILED, queue_name="emails", priority=7)
    new = make_scheduled(task_name="tests.testapp.tasks.noop")
    response = admin_client.get(JOBS)
    assert response.status_code == 200
    assert listed_ids(response) == [new.pk, old.pk]  # newest first
    html = response.content.decode()
    assert 'class="jobs-status jobs-status-scheduled">Scheduled<' in html
    assert 'class="jobs-status jobs-status-failed">Failed<' in html
    assert '<td class="field-attempts_display">2/2</td>' in html
    assert '<span class="jobs-module">tests.testapp.tasks.</span><wbr><b>noop</b>' in html
    # human times with the exact value on hover
    assert ">in 1 h</time>" in html and 'title="runs at 20' in html
    assert ">20 s ago</time>" in html and 'title="finished 20' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=FAILED", {"failed"}),
        ("status=READY", {"due", "scheduled"}),
        ("status=SCHEDULED", {"scheduled"}),
        ("status=RUNNING", {"running"}),
        ("queue=emails", {"emails"}),
        ("task=tests.testapp.tasks.noop", {"noop"}),
        ("status=FAILED&queue=emails", set()),
    ],
)
def test_job_filters(admin_client, query, expected):
    jobs = {
        "failed": make_job(JobStatus.FAILED),
        "due": make_job(JobStatus.READY),
        "scheduled": make_scheduled(),
        "running": make_job(JobStatus.RUNNING),
        "emails": make_job(JobStatus.SUCCESSFUL, queue_name="emails"),
        "noop": make_job(JobStatus.CANCELLED, task_name="tests.testapp.tasks.noop"),
    }
    response = admin_client.get(f"{JOBS}?{query}")
    assert response.status_code == 200
    assert set(listed_ids(response)) == {jobs[name].pk for name in expected}


def test_filter_choices_list_every_task_and_queue(admin_client):
    make_job(queue_name="emails", task_name="a.tasks.one")
    make_job(queue_name="bulk", task_name="b.tasks.two")
    make_job(queue_name="emails", task_name="a.tasks.one")
    response = admin_client.get(JOBS)
    specs = {spec.title: spec for spec in response.context["cl"].filter_specs}
    assert [v for v, _ in specs["queue"].lookup_choices] == ["bulk", "emails"]
    assert [v for v, _ in specs["task"].lookup_choices] == ["a.tasks.one", "b.tasks.two"]
    assert [v for v, _ in specs["status"].lookup_choices][:3] == ["READY", "SCHEDULED", "RUNNING"]


def test_search_by_id_and_idempotency_key(admin_client):
    keyed = make_job(JobStatus.SUCCESSFUL, idempotency_key="invoice-42")
    other = make_job(JobStatus.SUCCESSFUL)
    assert listed_ids(admin_client.get(JOBS, {"q": "invoice-42"})) == [keyed.pk]
    assert listed_ids(admin_client.get(JOBS, {"q": str(other.pk)})) == [other.pk]
    assert listed_ids(admin_client.get(JOBS, {"q": f"#{other.pk}"})) == [other.pk]
    assert listed_ids(admin_client.get(JOBS, {"q": "INVOICE-42"})) == []  # exact: indexed
    assert listed_ids(admin_client.get(JOBS, {"q": "nope"})) == []


def test_only_id_sorts(admin_client):
    first = make_job(queue_name="b")
    second = make_job(queue_name="a")
    response = admin_client.get(JOBS, {"o": "3"})  # a hand-written sort by queue_name
    assert response.status_code == 200
    assert listed_ids(response) == [second.pk, first.pk]
    assert response.context["cl"].queryset.query.order_by == ("-id",)
    assert listed_ids(admin_client.get(JOBS, {"o": "1"})) == [first.pk, second.pk]


def test_job_detail_shows_json_tracebacks_timeline_and_links(admin_client):
    worker = make_worker(hostname="box-7")
    job = make_job(
        JobStatus.FAILED,
        args=[{"user": 42, "tags": ["a", "b"]}],
        kwargs={"dry_run": True},
        progress={"step": 3, "of": 5},
        worker_id=worker.pk,
        idempotency_key="key-1",
    )
    letter = make_dead_letter(job)
    response = admin_client.get(reverse("admin:django_jobs_job_change", args=[job.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<h1>Job {job.pk} " in html
    # pretty JSON, indented
    assert '<pre class="jobs-json">[\n  {\n    &quot;' in html and "&quot;user&quot;: 42" in html
    assert "<title>Error" not in html
    assert "&quot;dry_run&quot;: true" in html and "&quot;step&quot;: 3" in html
    # every attempt's traceback, newest first and open
    assert html.count('<pre class="jobs-traceback">') == 2
    assert html.index("ValueError: boom (attempt 2)") < html.index("ValueError: boom (attempt 1)")
    assert '<details class="jobs-error" open>' in html
    # timeline
    for label in ("Enqueued", "Attempt 1 failed", "Attempt 2 failed", "Dead-lettered", ">Failed<"):
        assert label in html
    # links
    assert reverse("admin:django_jobs_deadletter_change", args=[letter.pk]) in html
    assert reverse("admin:django_jobs_worker_change", args=[worker.pk]) in html
    # actions that apply to a failed job, and no save button
    assert 'data-action="retry_jobs"' in html
    assert 'data-action="cancel_jobs"' not in html and 'data-action="run_jobs_now"' not in html
    assert 'name="_save"' not in html


def test_detail_of_scheduled_job_offers_run_now_and_cancel(admin_client):
    job = make_scheduled(worker_id=None)
    html = admin_client.get(reverse("admin:django_jobs_job_change", args=[job.pk])).content.decode()
    assert 'data-action="run_jobs_now"' in html and 'data-action="cancel_jobs"' in html
    assert 'data-action="retry_jobs"' not in html
    assert "Scheduled to run" in html and "No attempt has failed." in html


def test_detail_of_running_job_offers_cancel_and_shows_the_request(admin_client):
    job = make_job(JobStatus.RUNNING)
    url = reverse("admin:django_jobs_job_change", args=[job.pk])
    html = admin_client.get(url).content.decode()
    assert 'data-action="cancel_jobs"' in html and "Cancel requested" not in html
    admin_client.post(reverse("admin:django_jobs_job_act", args=[job.pk, "cancel_jobs"]))
    html = admin_client.get(url).content.decode()
    assert "Cancel requested" in html


def test_detail_page_refuses_form_posts(admin_client):
    job = make_job(JobStatus.RUNNING)
    url = reverse("admin:django_jobs_job_change", args=[job.pk])
    response = admin_client.post(url, {"status": "SUCCESSFUL"})
    assert response.status_code == 405
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_dead_letter_list_and_detail(admin_client):
    letter = make_dead_letter()
    retried = make_dead_letter(retried_at=timezone.now(), retried_job_id=999_999)
    response = admin_client.get(reverse("admin:django_jobs_deadletter_changelist"))
    assert [obj.pk for obj in response.context["cl"].result_list] == [retried.pk, letter.pk]
    response = admin_client.get(
        reverse("admin:django_jobs_deadletter_changelist"), {"retried": "no"}
    )
    assert [obj.pk for obj in response.context["cl"].result_list] == [letter.pk]
    response = admin_client.get(
        reverse("admin:django_jobs_deadletter_changelist"), {"q": str(letter.job_id)}
    )
    assert [obj.pk for obj in response.context["cl"].result_list] == [letter.pk]
    html = admin_client.get(
        reverse("admin:django_jobs_deadletter_change", args=[letter.pk])
    ).content.decode()
    assert "attempts exhausted (2/2)" in html and html.count('class="jobs-traceback"') == 2
    assert reverse("admin:django_jobs_job_change", args=[letter.job_id]) in html
    assert 'data-action="retry_dead_letters"' in html
    html = admin_client.get(
        reverse("admin:django_jobs_deadletter_change", args=[retried.pk])
    ).content.decode()
    assert 'data-action="retry_dead_letters"' not in html
    assert "#999999 (pruned)" in html


def test_worker_list_shows_heartbeat_age_and_running_jobs(admin_client):
    fresh = make_worker(hostname="fresh-host", concurrency=8)
    stale = make_worker(hostname="stale-host")
    Worker.objects.filter(pk=stale.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    for _ in range(3):
        make_job(JobStatus.RUNNING, worker_id=fresh.pk)
    response = admin_client.get(reverse("admin:django_jobs_worker_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    assert ">3 / 8</a>" in html and ">0 / 4</a>" in html
    assert "jobs-heartbeat-stale" in html and "10 min ago" in html
    assert f"worker_id__exact={fresh.pk}" in html
    # the link filters the job list to that worker's running jobs
    jobs = admin_client.get(f"{JOBS}?status=RUNNING&worker_id__exact={fresh.pk}")
    assert len(jobs.context["cl"].result_list) == 3
    detail = admin_client.get(reverse("admin:django_jobs_worker_change", args=[fresh.pk]))
    assert "Running jobs (3)" in detail.content.decode()


def test_overview_counts_per_queue_charts_and_links(admin_client):
    make_job(JobStatus.READY, queue_name="emails", run_after=timezone.now() - timedelta(minutes=7))
    make_scheduled(queue_name="emails")
    make_job(JobStatus.RUNNING, queue_name="emails")
    make_job(JobStatus.FAILED, queue_name="bulk")
    make_job(JobStatus.SUCCESSFUL, finished_at=timezone.now() - timedelta(minutes=3))
    make_dead_letter()
    make_worker()
    response = admin_client.get(reverse("admin:django_jobs_overview_changelist"))
    assert response.status_code == 200
    queues = {q["stats"].name: q["stats"] for q in response.context["queues"]}
    emails = queues["emails"]
    assert (emails.ready.value, emails.scheduled.value, emails.running.value) == (1, 1, 1)
    assert queues["bulk"].failed.value == 1
    assert response.context["oldest_ready"] == "7 min"
    assert response.context["dead_letters_open"].value == 1
    assert response.context["workers_active"] == 1
    minute = response.context["minute_chart"]
    assert len(minute.bars) == 60 and minute.succeeded == 1
    assert minute.failed == 2  # the failed job above and the dead letter's job
    assert len(response.context["hour_chart"].bars) == 24
    html = response.content.decode()
    assert "<svg" in html and 'id="jobs-overview" data-refresh="10"' in html
    assert "overview.js" in html and "http" not in html.split("overview.js")[0][-40:]
    assert f"{JOBS}?queue=emails&amp;status=FAILED" in html
    # the auto-refresh fragment is just the body
    fragment = admin_client.get(
        reverse("admin:django_jobs_overview_changelist"), {"fragment": "1"}
    ).content.decode()
    assert "<svg" in fragment and "<html" not in fragment


def test_overview_shows_outbox_only_when_used(admin_client):
    from django_jobs.models import OutboxEvent
    from django_jobs.status import OutboxStatus

    url = reverse("admin:django_jobs_overview_changelist")
    assert admin_client.get(url).context["outbox"] is None
    OutboxEvent.objects.create(topic="order.created")
    OutboxEvent.objects.create(topic="order.created", status=OutboxStatus.FAILED)
    outbox = admin_client.get(url).context["outbox"]
    assert (outbox["pending"].value, outbox["failed"].value) == (1, 1)


def test_overview_is_linked_from_the_admin_index(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_jobs_overview_changelist") in html


def test_overview_links_url_encode_queue_names(admin_client):
    name = "a&b c/ü"
    job = make_job(JobStatus.FAILED, queue_name=name)
    html = admin_client.get(reverse("admin:django_jobs_overview_changelist")).content.decode()
    encoded = "queue=a%26b+c%2F%C3%BC"
    assert f'href="{JOBS}?{encoded}"' in html
    assert f'href="{JOBS}?{encoded}&amp;status=FAILED"' in html
    assert "?queue=a&b" not in html and "?queue=a&amp;b" not in html
    listed = admin_client.get(f"{JOBS}?{encoded}&status=FAILED")
    assert listed_ids(listed) == [job.pk]
