"""The outbox event page: a read-only detail page with a one-click Re-dispatch."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from django_jobs.models import OutboxEvent
from django_jobs.status import OutboxStatus
from tests.admin.factories import make_user

pytestmark = pytest.mark.django_db


def failed_event(**fields) -> OutboxEvent:
    values = {
        "topic": "order.created",
        "key": "acct-7",
        "payload": {"order": 42, "lines": [{"sku": "A-1", "qty": 2}]},
        "headers": {"trace": "t-1"},
        "status": OutboxStatus.FAILED,
        "attempts": 3,
        "last_error": "hook: DeliveryError: HTTP 500 from the receiver",
        "failed_publishers": ["hook"],
        **fields,
    }
    return OutboxEvent.objects.create(**values)


def detail_url(event: OutboxEvent) -> str:
    return reverse("admin:django_jobs_outboxevent_change", args=[event.pk])


def act_url(event: OutboxEvent) -> str:
    return reverse("admin:django_jobs_outboxevent_act", args=[event.pk, "redispatch_events"])


def test_detail_shows_pretty_json_error_and_redispatch_button(admin_client):
    event = failed_event()
    response = admin_client.get(detail_url(event))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<h1>Outbox event {event.pk} " in html and "jobs-status-failed" in html
    assert "order.created" in html and "acct-7" in html
    assert "hook: DeliveryError: HTTP 500 from the receiver" in html
    # pretty (indented) JSON; PostgreSQL's jsonb orders keys its own way
    assert '<pre class="jobs-json">{\n  &quot;' in html and "\n  &quot;order&quot;: 42" in html
    assert "\n      &quot;sku&quot;: &quot;A-1&quot;" in html
    assert "&quot;trace&quot;: &quot;t-1&quot;" in html
    assert 'data-action="redispatch_events"' in html
    # a detail page, not a form
    assert 'name="_save"' not in html and "<textarea" not in html and 'name="topic"' not in html


def test_no_redispatch_button_unless_failed(admin_client):
    event = failed_event(status=OutboxStatus.PENDING, last_error="", failed_publishers=[])
    html = admin_client.get(detail_url(event)).content.decode()
    assert 'data-action="redispatch_events"' not in html
    assert "jobs-status-pending" in html


def test_change_form_post_does_not_edit_the_event(admin_client):
    event = failed_event()
    response = admin_client.post(detail_url(event), {"topic": "hacked", "status": "DISPATCHED"})
    assert response.status_code == 405
    event.refresh_from_db()
    assert (event.topic, event.status) == ("order.created", OutboxStatus.FAILED)


def test_one_click_redispatch_of_a_failed_event(admin_client):
    event = failed_event()
    response = admin_client.post(act_url(event), follow=True)
    assert response.redirect_chain[-1][0] == detail_url(event)
    assert [str(m) for m in response.context["messages"]] == ["1 event re-dispatched."]
    event.refresh_from_db()
    assert (event.status, event.failed_publishers) == (OutboxStatus.DISPATCHED, [])
    assert 'data-action="redispatch_events"' not in response.content.decode()


def test_redispatch_needs_change_permission_and_csrf():
    event = failed_event()
    make_user("viewer", "django_jobs.view_outboxevent")
    viewer = Client()
    viewer.login(username="viewer", password="pw")
    html = viewer.get(detail_url(event)).content.decode()
    assert "order.created" in html and 'data-action="redispatch_events"' not in html
    assert viewer.post(act_url(event)).status_code == 403
    make_user("boss", superuser=True)
    strict = Client(enforce_csrf_checks=True)
    strict.login(username="boss", password="pw")
    assert strict.post(act_url(event)).status_code == 403  # no CSRF token
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.FAILED
