"""An operator's day in a real browser: Chromium + the live server + real workers.

Jobs fail for real (``runworker --burst`` subprocesses), then every click is
checked against the database.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from django_jobs.models import DeadLetter, Job
from django_jobs.status import JobStatus
from tests.conftest import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser("ops", "ops@example.com", "s3cret-pw")


def fail_for_real(run_burst, count: int) -> list[Job]:
    """``count`` jobs of a task that always fails, run to exhaustion by real workers."""
    jobs = [tasks.always_fails.enqueue() for _ in range(count)]
    tasks.add.enqueue(1, 2)

    def all_failed() -> bool:
        run_burst()
        return Job.objects.filter(status=JobStatus.FAILED).count() == count

    wait_until(all_failed, 60, message="jobs to exhaust their attempts")
    return [Job.objects.get(pk=job.pk) for job in jobs]


def message(page) -> str:
    return page.locator("ul.messagelist li").first.inner_text()


def test_operator_inspects_and_retries_failed_jobs(page, login, screenshot, operator, run_burst):
    first, second = fail_for_real(run_burst, 2)
    scheduled = tasks.add.using(run_after=timedelta(hours=2)).enqueue(3, 4)
    login("ops", "s3cret-pw")

    # The overview is linked from the admin index.
    page.click("a[href='/admin/django_jobs/overview/']")
    page.wait_for_url("**/admin/django_jobs/overview/")
    failed_card = page.locator(".jobs-card", has_text="Failed")
    assert failed_card.locator(".jobs-card-value").inner_text() == "2"
    assert (
        page.locator(".jobs-card", has_text="Dead letters").locator(".jobs-card-value").inner_text()
        == "2"
    )
    assert page.locator("figure.jobs-chart svg").count() == 2
    screenshot(page, "admin-overview")

    # Filter the job list to failed jobs.
    page.goto("/admin/django_jobs/job/")
    page.locator("#changelist-filter").get_by_role("link", name="Failed", exact=True).click()
    page.wait_for_url("**status=FAILED**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert rows.locator(".jobs-status-failed").count() == 2
    screenshot(page, "admin-job-list")

    # Open one and read its tracebacks.
    page.locator("#result_list tbody").get_by_role("link", name=str(second.pk), exact=True).click()
    page.wait_for_url(re.compile(rf"/admin/django_jobs/job/{second.pk}/change/"))
    traceback = page.locator("pre.jobs-traceback").first
    assert traceback.is_visible()
    assert "ValueError: this task always fails" in traceback.inner_text()
    assert "Traceback (most recent call last)" in traceback.inner_text()
    assert page.locator("details.jobs-error").count() == 2
    screenshot(page, "admin-job-detail")

    # Retry it from the detail page.
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_url(re.compile(rf"/admin/django_jobs/job/{second.pk}/change/"))
    assert message(page) == "1 job retried."
    retried = Job.objects.get(pk=second.pk)
    assert (retried.status, retried.attempts, len(retried.errors)) == (JobStatus.READY, 0, 2)
    assert page.locator("h1 .jobs-status").inner_text() == "Ready"

    # Retry the other one from the (filtered) list with the bulk action.
    page.goto("/admin/django_jobs/job/?status=FAILED")
    assert page.locator("#result_list tbody tr").count() == 1
    page.locator(f"input.action-select[value='{first.pk}']").check()
    page.select_option("select[name=action]", "retry_jobs")
    page.click("button[name=index]")
    assert message(page) == "1 job retried."
    assert Job.objects.get(pk=first.pk).status == JobStatus.READY

    # Retry a dead letter: a new job is enqueued and recorded on the letter.
    letter = DeadLetter.objects.get(job_id=first.pk)
    page.goto(f"/admin/django_jobs/deadletter/{letter.pk}/change/")
    page.get_by_role("button", name="Retry (enqueue a new job)").click()
    assert message(page) == "1 dead letter re-enqueued."
    letter.refresh_from_db()
    assert letter.retried_at is not None
    new_job = Job.objects.get(pk=letter.retried_job_id)
    assert (new_job.task_name, new_job.status) == (first.task_name, JobStatus.READY)
    assert page.get_by_role("button", name="Retry (enqueue a new job)").count() == 0

    # Cancel the scheduled job from the list.
    page.goto("/admin/django_jobs/job/?status=SCHEDULED")
    assert page.locator("#result_list tbody tr").count() == 1
    page.locator(f"input.action-select[value='{scheduled.pk}']").check()
    page.select_option("select[name=action]", "cancel_jobs")
    page.click("button[name=index]")
    assert message(page) == "1 job cancelled."
    assert Job.objects.get(pk=scheduled.pk).status == JobStatus.CANCELLED


def test_overview_refreshes_itself(page, login, operator, settings):
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "ADMIN_REFRESH_SECONDS": 1}
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/overview/")
    value = page.locator(".jobs-card", has_text="Running").locator(".jobs-card-value")
    assert value.inner_text() == "0"
    now = timezone.now()
    Job.objects.create(
        task_name="tests.testapp.tasks.noop",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=30),
    )
    expect(value).to_have_text("1", timeout=10_000)  # no reload: the script swapped it in
    # Pausing stops the refresh.
    page.uncheck("#jobs-refresh-toggle")
    Job.objects.filter(status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCESSFUL, finished_at=now
    )
    page.wait_for_timeout(2_500)
    assert value.inner_text() == "1"
