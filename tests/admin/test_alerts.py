"""Alert admin: the rules' states and their history, read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_jobs.models import AlertEvent, AlertState

pytestmark = pytest.mark.django_db

STATES = reverse("admin:django_jobs_alertstate_changelist")
EVENTS = reverse("admin:django_jobs_alertevent_changelist")


def test_state_list_shows_status_since_and_value(admin_client):
    AlertState.objects.create(
        rule="payments-failing",
        kind="failure_rate",
        status="firing",
        since=timezone.now() - timedelta(minutes=5),
        value=0.35,
        last_evaluated_at=timezone.now(),
    )
    AlertState.objects.create(rule="workers-down", kind="stale_workers", value=0)
    AlertState.objects.create(rule="backlog", kind="oldest_ready_age", value=None)
    html = admin_client.get(STATES).content.decode()
    assert "payments-failing" in html and "workers-down" in html
    assert "jobs-status-failed" in html and ">firing<" in html  # the firing badge
    assert "jobs-status-successful" in html and ">ok<" in html
    assert ">35%<" in html and "5 min ago" in html and "never" in html
    assert ">no data<" in html  # backlog: nothing measured yet
    assert (
        admin_client.get(f"{STATES}?status=firing").content.decode().count("payments-failing") >= 1
    )
    assert "workers-down" not in admin_client.get(f"{STATES}?status=firing").content.decode()


def test_event_history_newest_first(admin_client):
    AlertState.objects.create(rule="payments-failing", kind="failure_rate")
    for kind in ("fired", "resolved"):
        AlertEvent.objects.create(
            rule="payments-failing", kind=kind, value=0.5, threshold=0.2, message=f"m-{kind}"
        )
    html = admin_client.get(EVENTS).content.decode()
    assert html.index("m-resolved") < html.index("m-fired")
    assert html.count(">50%<") == 2


def test_read_only(admin_client):
    state = AlertState.objects.create(rule="r", kind="stale_workers")
    event = AlertEvent.objects.create(rule="r", kind="fired", threshold=1, message="m")
    assert admin_client.get(reverse("admin:django_jobs_alertstate_add")).status_code == 403
    url = reverse("admin:django_jobs_alertstate_change", args=[state.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(url, {"status": "firing"}).status_code == 403
    assert AlertState.objects.get().status == "ok"
    delete = reverse("admin:django_jobs_alertevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert AlertEvent.objects.count() == 1
