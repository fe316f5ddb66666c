"""Webhook deliveries that fail, through a real runworker: a server that
accepts and never answers (timeout), a closed port (connection refused); URL
credentials stay out of every error and log. Topics of any script, and a topic
stored with CR/LF before publish() refused them, still reach the receiver."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

from django_jobs import outbox
from django_jobs.models import DeadLetter, Job, OutboxEvent
from django_jobs.outbox.delivery import DELIVERY_TASK
from django_jobs.outbox.publishers.webhook import WebhookPublisher, verify_signature
from django_jobs.rows import Event
from django_jobs.status import JobStatus, OutboxStatus
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec-test"
PASSWORD = "pw-8Hq2-never-logged"
HOOK = {"BACKEND": "webhook", "SECRET": SECRET, "BACKOFF": "fixed"}


class SilentServer:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed at teardown
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class Recorder:
    """An HTTP server that answers 200 and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.server.shutdown()
    server.server.server_close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def no_delivery_left() -> bool:
    return not Job.objects.filter(
        task_name=DELIVERY_TASK, status__in=[JobStatus.READY, JobStatus.RUNNING]
    ).exists()


def test_timeout_and_refused_connection_are_retried_then_failed_with_redacted_errors(
    silent, start_worker
):
    config = {
        "silent": {
            **HOOK,
            "URL": f"http://hookuser:{PASSWORD}@127.0.0.1:{silent.port}/in",
            "TOPICS": ["slow.*"],
            "MAX_ATTEMPTS": 2,
            "TIMEOUT": 0.5,
        },
        "refused": {
            **HOOK,
            "URL": f"http://hookuser:{PASSWORD}@127.0.0.1:{closed_port()}/in",
            "TOPICS": ["gone.*"],
            "MAX_ATTEMPTS": 2,
        },
    }
    slow = outbox.publish("slow.event", {"n": 1})
    gone = outbox.publish("gone.event", {"n": 2})
    worker = start_worker(
        "--concurrency", "2", env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": json.dumps(config)}
    )
    wait_until(
        lambda: (
            OutboxEvent.objects.filter(
                pk__in=[slow.pk, gone.pk], status=OutboxStatus.FAILED
            ).count()
            == 2
            and no_delivery_left()
        ),
        60,
        message="both deliveries gave up",
    )
    expected = {slow.pk: ("silent", "ReadTimeout"), gone.pk: ("refused", "ConnectError")}
    for event_id, (name, error) in expected.items():
        event = OutboxEvent.objects.get(pk=event_id)
        assert event.failed_publishers == [name] and event.attempts == 2
        assert event.last_error.startswith(f"{name}: DeliveryError: POST http://127.0.0.1:")
        assert f"failed: {error}" in event.last_error and "(attempt 2/2)" in event.last_error
        job = Job.objects.get(task_name=DELIVERY_TASK, args__0=name)
        assert job.status == JobStatus.FAILED and job.attempts == 2
        assert len(job.errors) == 2
        assert all(error in entry["message"] for entry in job.errors), job.errors
        dead = DeadLetter.objects.get(job_id=job.pk)
        for text in (event.last_error, json.dumps(job.errors), dead.reason, str(dead.errors)):
            assert PASSWORD not in text and "hookuser" not in text
    # Both attempts of the silent one reached the server and waited for an answer.
    assert len(silent.accepted) == 2
    assert PASSWORD not in worker.output() and "hookuser" not in worker.output()


def test_any_stored_topic_is_delivered_with_a_decodable_header(recorder, start_worker):
    config = {"hook": {**HOOK, "URL": f"http://127.0.0.1:{recorder.port}/in"}}
    topics = ["hook.заказ", "order.100%", "plain.topic"]
    events = [outbox.publish(topic, {"topic": topic}) for topic in topics]
    # Stored before publish() refused control characters: still deliverable.
    legacy = OutboxEvent.objects.create(topic="legacy\r\nX-Injected: 1", payload={})
    start_worker(
        "--concurrency", "2", env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": json.dumps(config)}
    )
    wait_until(
        lambda: (
            OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count() == 4
            and no_delivery_left()
        ),
        60,
        message="all four delivered",
    )
    assert OutboxEvent.objects.filter(attempts=1).count() == 4  # none failed first
    sent = {int(r["headers"]["X-Django-Jobs-Event-Id"]): r for r in recorder.requests}
    for event in [*events, legacy]:
        request = sent[event.pk]
        header = request["headers"]["X-Django-Jobs-Topic"]
        assert header.isascii() and header.isprintable()
        assert unquote(header) == event.topic == json.loads(request["body"])["topic"]
        assert "X-Injected" not in request["headers"]
        assert verify_signature(
            SECRET, request["body"], request["headers"]["X-Django-Jobs-Signature"]
        )
    assert (
        sent[events[0].pk]["headers"]["X-Django-Jobs-Topic"]
        == "hook.%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7"
    )
    assert sent[events[1].pk]["headers"]["X-Django-Jobs-Topic"] == "order.100%25"
    assert sent[events[2].pk]["headers"]["X-Django-Jobs-Topic"] == "plain.topic"


def test_url_credentials_are_sent_as_basic_auth_and_never_logged(recorder, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request
    url = f"http://hookuser:{PASSWORD}@127.0.0.1:{recorder.port}/in"
    publisher = WebhookPublisher("hook", {**HOOK, "URL": url})
    event = Event.from_dict(
        {"id": 7, "topic": "t", "payload": {}, "created_at": "2026-01-01T00:00:00+00:00"}
    )
    try:
        publisher.publish(event)
    finally:
        publisher.close()
    [request] = recorder.requests
    expected = base64.b64encode(f"hookuser:{PASSWORD}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert caplog.records, "httpx logged nothing: this test would prove nothing"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage(), record.getMessage()
