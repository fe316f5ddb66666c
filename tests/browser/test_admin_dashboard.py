"""An operator's day in a real browser: Chromium + the live server + real workers.

Jobs fail for real (``runworker --burst`` subprocesses), then every click is
checked against the database.
"""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from django_jobs.models import DeadLetter, Job, OutboxEvent
from django_jobs.outbox.delivery import DELIVERY_TASK
from django_jobs.status import JobStatus, OutboxStatus
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


FRAGMENT = re.compile(r"[?&]fragment=1")


def test_overview_refreshes_itself_and_a_pause_wins_over_a_refresh_in_flight(
    page, login, operator, settings
):
    """Timers run on Playwright's fake clock, the refresh in flight is held by a
    route: every step waits on a condition, none on time passing."""
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "ADMIN_REFRESH_SECONDS": 1}
    login("ops", "s3cret-pw")
    page.clock.install()
    page.goto("/admin/django_jobs/overview/")
    root = page.locator("#jobs-overview")
    value = page.locator(".jobs-card", has_text="Running").locator(".jobs-card-value")
    expect(value).to_have_text("0")
    now = timezone.now()
    job = Job.objects.create(
        task_name="tests.testapp.tasks.noop",
        status=JobStatus.RUNNING,
        attempts=1,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=30),
    )
    page.clock.run_for(1_000)  # the refresh timer fires
    expect(value).to_have_text("1")  # no reload: the script swapped it in
    expect(root).to_have_attribute("data-last-refresh", "applied")

    # A refresh is in flight (held here) when the operator pauses: its answer
    # must not replace the page afterwards.
    held: list = []

    def hold(route) -> None:
        held.append(route)  # answered below, after the pause

    page.route(FRAGMENT, hold)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCESSFUL, finished_at=now)
    with page.expect_request(FRAGMENT):
        page.clock.run_for(1_000)
    page.uncheck("#jobs-refresh-toggle")
    (route,) = wait_until(lambda: page.evaluate("0") == 0 and held, 10, message="held refresh")
    with contextlib.suppress(PlaywrightError):  # the page may have aborted it already
        route.continue_()  # the server's answer now says 0 running
    expect(root).to_have_attribute("data-last-refresh", "dropped")
    assert value.inner_text() == "1"

    # While paused, no refresh is even started.
    page.unroute(FRAGMENT)
    started: list[str] = []
    page.on("request", lambda request: FRAGMENT.search(request.url) and started.append(request.url))
    page.clock.run_for(5_000)
    page.evaluate("0")  # a round trip: any request made meanwhile has been reported
    assert started == [] and value.inner_text() == "1"

    # Resuming refreshes again.
    page.check("#jobs-refresh-toggle")
    page.clock.run_for(1_000)
    expect(value).to_have_text("0")
    expect(root).to_have_attribute("data-last-refresh", "applied")


def test_overview_chart_axis_labels_are_whole(page, login, screenshot, operator):
    now = timezone.now()
    finished = now - timedelta(minutes=2)
    Job.objects.bulk_create(
        Job(
            task_name="tests.testapp.tasks.add",
            status=JobStatus.SUCCESSFUL,
            attempts=1,
            run_after=finished,
            enqueued_at=finished,
            started_at=finished,
            finished_at=finished,
        )
        for _ in range(6_000)
    )
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/overview/")
    labels = page.locator("figure.jobs-chart svg text[text-anchor=end]")
    assert "10,000" in labels.all_text_contents()
    expect(page.locator(".jobs-legend").first).to_contain_text("6,000 succeeded")
    for chart in page.locator("figure.jobs-chart svg").all():
        plot_left = float(chart.locator("line.axis").get_attribute("x1"))
        for label in chart.locator("text[text-anchor=end]").all():
            box = label.evaluate("t => { const b = t.getBBox(); return [b.x, b.x + b.width]; }")
            # inside the drawing (not cut at the left edge) and clear of the bars
            assert box[0] >= 0 and box[1] <= plot_left, (label.text_content(), box, plot_left)
    screenshot(page, "admin-overview-chart-labels")


def test_operator_redispatches_a_failed_outbox_event(page, login, screenshot, operator, settings):
    hook = {"BACKEND": "webhook", "URL": "http://127.0.0.1:9/hook", "SECRET": "s3cret"}
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "OUTBOX_PUBLISHERS": {"hook": hook}}
    event = OutboxEvent.objects.create(
        topic="order.created",
        key="acct-7",
        payload={"order": 42, "lines": [{"sku": "A-1", "qty": 2}]},
        headers={"trace": "t-1"},
        status=OutboxStatus.FAILED,
        attempts=8,
        last_error="hook: DeliveryError: HTTP 500 from http://127.0.0.1:9/hook",
        failed_publishers=["hook"],
    )
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/outboxevent/")
    page.locator("#result_list tbody").get_by_role("link", name=str(event.pk), exact=True).click()
    page.wait_for_url(re.compile(rf"/admin/django_jobs/outboxevent/{event.pk}/change/"))
    expect(page.locator("h1 .jobs-status")).to_have_text("Failed")
    expect(page.locator("#jobs-last-error")).to_contain_text("HTTP 500")
    payload = page.locator(".module", has_text="Payload").locator("pre.jobs-json")
    expect(payload).to_contain_text('"order": 42')
    assert page.locator("input[name=topic], textarea, input[name=_save]").count() == 0
    screenshot(page, "admin-outbox-event-failed")

    page.get_by_role("button", name="Re-dispatch").click()
    page.wait_for_url(re.compile(rf"/admin/django_jobs/outboxevent/{event.pk}/change/"))
    assert message(page) == "1 event re-dispatched."
    event.refresh_from_db()
    assert (event.status, event.failed_publishers) == (OutboxStatus.DISPATCHED, [])
    delivery = Job.objects.get(task_name=DELIVERY_TASK)
    # a new delivery job for the publisher that gave up
    assert (delivery.status, delivery.args[0]) == (JobStatus.READY, "hook")
    expect(page.locator("h1 .jobs-status")).to_have_text("Dispatched")
    assert page.get_by_role("button", name="Re-dispatch").count() == 0
    screenshot(page, "admin-outbox-event-redispatched")
