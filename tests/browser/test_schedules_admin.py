"""Schedules in a real browser: an operator adds one, disables and enables it,
runs it now, and is refused bad input; the database is checked after each click."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from django_jobs.engine import get_engine
from django_jobs.models import Job, Schedule
from django_jobs.scheduling.plans import ScheduleDefinition
from django_jobs.scheduling.ticks import Cadence

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser("ops", "ops@example.com", "s3cret-pw")


def synced(name: str) -> Schedule:
    get_engine("default").sync_schedules(
        [
            ScheduleDefinition(
                name=name,
                task_name="tests.testapp.tasks.add",
                cadence=Cadence(cron="0 3 * * *", timezone="Europe/Paris"),
                args=[2, 3],
                kwargs={},
                queue_name=None,
                priority=None,
                catch_up="latest",
                overlap=True,
                source="settings",
            )
        ]
    )
    return Schedule.objects.get(name=name)


def row(page, name: str):
    return page.locator("#result_list tbody tr", has_text=name)


def test_operator_disables_enables_and_runs_a_schedule_now(page, login, screenshot, operator):
    nightly = synced("nightly")
    before = nightly.next_run_at
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/schedule/")
    line = row(page, "nightly")
    expect(line).to_contain_text("At 03:00 every day (Europe/Paris)")
    expect(line).to_contain_text("enabled")
    screenshot(page, "schedules-list")

    line.get_by_role("button", name="Disable").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("1 schedule disabled")
    assert Schedule.objects.get(pk=nightly.pk).enabled is False
    assert not Job.objects.exists()

    row(page, "nightly").get_by_role("button", name="Enable").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("1 schedule enabled")
    after = Schedule.objects.get(pk=nightly.pk)
    assert after.enabled is True and after.next_run_at >= before

    row(page, "nightly").get_by_role("button", name="Run now").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("1 schedule run now")
    job = Job.objects.get()
    assert (job.task_name, job.args, job.meta) == (
        "tests.testapp.tasks.add",
        [2, 3],
        {"schedule": "nightly", "run_now": True},
    )
    ran = Schedule.objects.get(pk=nightly.pk)
    assert ran.next_run_at == after.next_run_at, "run now is not a tick"
    assert ran.last_job_id == job.pk
    page.reload()
    link = row(page, "nightly").get_by_role("link", name=f"#{job.pk}")
    expect(link).to_be_visible()
    screenshot(page, "schedules-after-run-now")
    link.click()
    expect(page).to_have_url(f"/admin/django_jobs/job/{job.pk}/change/")


def test_operator_adds_a_schedule_and_bad_input_is_refused(page, login, screenshot, operator):
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/schedule/add/")
    page.fill("#id_name", "weekly-sum")
    page.select_option("#id_task_name", "tests.testapp.tasks.add")
    page.fill("#id_cron", "61 * * * *")
    page.fill("#id_timezone", "Mars/Olympus")
    page.fill("#id_args", "[1]")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator("body")).to_contain_text("not a valid cron expression")
    expect(page.locator("body")).to_contain_text("unknown schedule timezone")
    assert not Schedule.objects.exists(), "nothing written"
    screenshot(page, "schedule-add-refused")

    page.fill("#id_cron", "0 9 * * 1")
    page.fill("#id_timezone", "Europe/Paris")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("body")).to_contain_text("do not fit tests.testapp.tasks.add")
    assert not Schedule.objects.exists()

    page.fill("#id_args", "[1, 2]")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("was added successfully")
    made = Schedule.objects.get(name="weekly-sum")
    assert (made.source, made.args, made.cron, made.enabled) == ("admin", [1, 2], "0 9 * * 1", True)
    assert timezone.now() < made.next_run_at <= timezone.now() + timedelta(days=7)
    local = made.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


def test_a_schedule_removed_from_settings_says_so_and_is_read_only(
    page, login, screenshot, operator
):
    gone = synced("old-report")
    get_engine("default").sync_schedules([])
    login("ops", "s3cret-pw")
    page.goto("/admin/django_jobs/schedule/")
    expect(row(page, "old-report")).to_contain_text("removed from settings: disabled, kept")
    page.goto(f"/admin/django_jobs/schedule/{gone.pk}/change/")
    expect(page.locator(".jobs-schedule-words")).to_contain_text("disabled, kept")
    assert page.locator("#id_cron").count() == 0, "code-owned fields are read-only"
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("ul.messagelist li").first).to_contain_text("removed from code")
    assert Schedule.objects.get(pk=gone.pk).enabled is False
    screenshot(page, "schedule-removed")
