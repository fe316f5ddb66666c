"""Webhook publisher against a real local HTTP server, through a real
runworker; re-dispatch from the real admin (POST + CSRF, permissions)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from django_jobs import outbox
from django_jobs.models import DeadLetter, Job, OutboxEvent
from django_jobs.outbox.delivery import DELIVERY_TASK
from django_jobs.outbox.publishers.webhook import verify_signature
from django_jobs.status import JobStatus, OutboxStatus
from tests.conftest import wait_until
from tests.testapp.models import Event as Log

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec-test"


class Receiver:
    """A local HTTP server: /ok accepts, /flaky fails twice per event, /down fails until fixed."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.down = True
        self.flaky_seen: dict[str, int] = defaultdict(int)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers["Idempotency-Key"]
                status = 200
                if self.path == "/flaky":
                    receiver.flaky_seen[event_id] += 1
                    status = 500 if receiver.flaky_seen[event_id] <= 2 else 200
                elif self.path == "/down" and receiver.down:
                    status = 500
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "status": status,
                        "at": time.monotonic(),
                    }
                )
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"receiver says no" if status >= 400 else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self, path: str, event_id: int, status: int | None = None) -> list[dict]:
        return [
            r
            for r in self.requests
            if r["path"] == path
            and r["headers"]["Idempotency-Key"] == str(event_id)
            and (status is None or r["status"] == status)
        ]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()


def publishers_for(url: str) -> dict:
    hook = {"BACKEND": "webhook", "SECRET": SECRET, "BACKOFF": "fixed"}
    return {
        "ok": {**hook, "URL": f"{url}/ok", "TOPICS": ["order.*"]},
        "flaky": {**hook, "URL": f"{url}/flaky", "TOPICS": ["order.created"], "MAX_ATTEMPTS": 4},
        "down": {**hook, "URL": f"{url}/down", "TOPICS": ["order.created"], "MAX_ATTEMPTS": 3},
    }


def post_action(client: Client, event_id: int):
    client.get("/admin/django_jobs/outboxevent/")
    return client.post(
        "/admin/django_jobs/outboxevent/",
        {
            "action": "redispatch_events",
            "_selected_action": [str(event_id)],
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        follow=True,
    )


def test_webhook_signed_retried_failed_and_redispatched_from_admin(receiver, start_worker):
    config = publishers_for(receiver.url)
    created = outbox.publish("order.created", {"order": 1}, key="o-1")
    paid = outbox.publish("order.paid", {"order": 1}, key="o-1")
    start_worker(
        "--concurrency", "4", env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": json.dumps(config)}
    )
    wait_until(
        lambda: (
            OutboxEvent.objects.get(pk=created.pk).status == OutboxStatus.FAILED
            and receiver.got("/flaky", created.pk, 200)
            and receiver.got("/ok", paid.pk)
            and not Job.objects.filter(
                task_name=DELIVERY_TASK, status__in=[JobStatus.READY, JobStatus.RUNNING]
            ).exists()
        ),
        60,
        message="deliveries settled",
    )

    # Every request is signed (checked here by hand, and with the helper) and
    # carries the event id; the body is the event.
    for request in receiver.requests:
        headers, body = request["headers"], request["body"]
        stamp, given = (
            part.split("=", 1)[1] for part in headers["X-Django-Jobs-Signature"].split(",")
        )
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert hmac.compare_digest(expected.hexdigest(), given)
        assert verify_signature(SECRET, body, headers["X-Django-Jobs-Signature"])
        assert not verify_signature(SECRET, body + b" ", headers["X-Django-Jobs-Signature"])
        assert not verify_signature("other", body, headers["X-Django-Jobs-Signature"])
        sent = json.loads(body)
        assert str(sent["id"]) == headers["Idempotency-Key"] == headers["X-Django-Jobs-Event-Id"]
        assert sent["topic"] == headers["X-Django-Jobs-Topic"]
        assert headers["Content-Type"] == "application/json"
    assert json.loads(receiver.got("/ok", created.pk)[0]["body"])["payload"] == {"order": 1}

    # /flaky: two 500s, retried with backoff, then delivered.
    assert [r["status"] for r in receiver.got("/flaky", created.pk)] == [500, 500, 200]
    # /down: gave up after MAX_ATTEMPTS=3; the event is FAILED with the error.
    down = receiver.got("/down", created.pk)
    assert [r["status"] for r in down] == [500, 500, 500]
    assert all(b["at"] - a["at"] >= 0.15 for a, b in zip(down, down[1:], strict=False))
    event = OutboxEvent.objects.get(pk=created.pk)
    assert event.failed_publishers == ["down"]
    assert "down: DeliveryError" in event.last_error and "HTTP 500" in event.last_error
    assert event.attempts == 1 + 3 + 3  # ok, flaky (2 failed + 1), down (3 failed)
    failed_job = Job.objects.get(task_name=DELIVERY_TASK, args__0="down")
    assert failed_job.status == JobStatus.FAILED and failed_job.attempts == 3
    assert "attempts exhausted (3/3)" in DeadLetter.objects.get(job_id=failed_job.pk).reason
    # The failing endpoint blocked nobody: the other deliveries landed before it gave up.
    assert receiver.got("/ok", paid.pk)[0]["at"] < down[-1]["at"]
    assert OutboxEvent.objects.get(pk=paid.pk).status == OutboxStatus.DISPATCHED

    # Admin: a view-only staff member cannot re-dispatch; a superuser can.
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxevent"))
    User.objects.create_superuser("admin", password="pw")
    receiver.down = False
    with override_settings(DJANGO_JOBS={**settings.DJANGO_JOBS, "OUTBOX_PUBLISHERS": config}):
        client = Client(enforce_csrf_checks=True)
        client.login(username="viewer", password="pw")
        post_action(client, created.pk)
        assert OutboxEvent.objects.get(pk=created.pk).status == OutboxStatus.FAILED
        client.login(username="admin", password="pw")
        page = post_action(client, created.pk)
        assert "1 event re-dispatched." in page.content.decode()
        detail = client.get(f"/admin/django_jobs/outboxevent/{created.pk}/change/")
        assert detail.status_code == 200 and "order.created" in detail.content.decode()
    # Re-dispatch made the event DISPATCHED at once; wait for the new delivery to finish.
    assert OutboxEvent.objects.get(pk=created.pk).status == OutboxStatus.DISPATCHED
    wait_until(
        lambda: (
            receiver.got("/down", created.pk, 200)
            and not Job.objects.filter(
                task_name=DELIVERY_TASK, status__in=[JobStatus.READY, JobStatus.RUNNING]
            ).exists()
        ),
        30,
        message="re-dispatched delivery",
    )
    assert [r["status"] for r in receiver.got("/down", created.pk)] == [500, 500, 500, 200]
    final = OutboxEvent.objects.get(pk=created.pk)
    assert (final.status, final.failed_publishers, final.attempts) == (
        OutboxStatus.DISPATCHED,
        [],
        8,
    )
    # Only the publisher that gave up got it again; subscribers did not run again.
    assert len(receiver.got("/ok", created.pk)) == 1
    assert len(receiver.got("/flaky", created.pk)) == 3
    assert Log.objects.filter(value__event=created.pk).count() == 2
