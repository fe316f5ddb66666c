"""The example's "generate report" page in a real browser: the POST returns
202 at once, the page polls the job status, and the progress bar reaches 100%
while a real runworker subprocess runs the django.tasks task."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from django_jobs.models import Job
from django_jobs.status import JobStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_report_progress_bar_reaches_100_percent(page, login, screenshot, start_worker):
    User.objects.create_user("reporter", password="report-pw", is_staff=True)
    start_worker("--concurrency", "1", "--queue", "reports")
    login("reporter", "report-pw")
    page.goto("/report/")
    page.fill("#rows", "10")  # 10 rows x 0.2 s in the task
    page.click("#start")

    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = int(page.evaluate("document.getElementById('bar').value"))
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == 100:
            break
        time.sleep(0.1)
    expect(page.locator("#percent")).to_have_text("100%")
    expect(page.locator("#status")).to_have_text("SUCCESSFUL")
    expect(page.locator("#result")).to_contain_text('"rows": 10')
    screenshot(page, "report-page-done")

    assert seen[-1] == 100
    assert any(0 < value < 100 for value in seen), f"no intermediate progress seen: {seen}"
    assert seen == sorted(seen)
    job = Job.objects.get()
    assert job.task_name == "example_project.demo.tasks.generate_report"
    assert (job.status, job.progress) == (JobStatus.SUCCESSFUL, {"done": 10, "total": 10})
    assert job.result == {"rows": 10, "sum": 55, "attempt": 1}
