"""RabbitMQ publisher against the real broker at 127.0.0.1:5672 (guest/guest),
through a real runworker: confirms, persistence, message id, and recovery
from lost connections and a broker restart."""

from __future__ import annotations

import json
import subprocess
import uuid

import pika
import pytest

from django_jobs import outbox
from django_jobs.models import OutboxEvent
from django_jobs.status import OutboxStatus
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def broker_up() -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(URL)).close()
        return True
    except pika.exceptions.AMQPError:
        return False


@pytest.fixture
def queue():
    """A durable queue bound by name to the default exchange; deleted afterwards."""
    name = f"django_jobs_test_{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    conn.channel().queue_declare(name, durable=True)
    conn.close()
    yield name
    if not broker_up():
        rabbitmqctl("start_app")
        wait_until(broker_up, 60, 0.5, "RabbitMQ back up")
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    conn.channel().queue_delete(name)
    conn.close()


def drain(queue: str) -> list[tuple[pika.BasicProperties, dict]]:
    """Every message now in ``queue`` (acknowledged, so the queue empties)."""
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    channel = conn.channel()
    got = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        got.append((properties, json.loads(body)))
    conn.close()
    return got


def depth(queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    count = conn.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    conn.close()
    return count


def publishers(queue: str) -> str:
    return json.dumps(
        {
            "broker": {
                "BACKEND": "rabbitmq",
                "URL": URL,
                "ROUTING_KEY": queue,
                "TOPICS": ["stock.#"],
                "MAX_ATTEMPTS": 15,
                "BACKOFF": "linear",  # 0.2 s, 0.4 s, ...: about 24 s in all
                "TIMEOUT": 5,
            }
        }
    )


def test_events_arrive_persistent_with_the_event_id(queue, run_burst):
    events = outbox.publish_many(
        [("stock.reserved", {"sku": n}, f"sku-{n}", {"trace": "t"}) for n in range(3)]
    )
    outbox.publish("order.created", {"not": "for the broker"})
    run_burst(env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": publishers(queue)})
    got = drain(queue)
    assert sorted(p.message_id for p, _ in got) == sorted(str(e.pk) for e in events)
    for properties, body in got:
        assert properties.delivery_mode == 2  # persistent
        assert properties.content_type == "application/json"
        assert properties.type == "stock.reserved"
        assert str(body["id"]) == properties.message_id
        assert body["headers"] == {"trace": "t"} and body["key"] == f"sku-{body['payload']['sku']}"
    assert {e.status for e in OutboxEvent.objects.filter(topic="stock.reserved")} == {
        OutboxStatus.DISPATCHED
    }


@pytest.mark.postgres
def test_connection_loss_and_broker_restart_are_retried_nothing_lost(queue, start_worker):
    start_worker(
        "--concurrency", "4", env={"DJANGO_JOBS_TEST_OUTBOX_PUBLISHERS": publishers(queue)}
    )
    first = outbox.publish_many([("stock.moved", {"n": n}) for n in range(10)])
    wait_until(lambda: depth(queue) == 10, 30, message="first 10 messages")

    # The worker's cached connections are closed by the broker: replaced on next use.
    rabbitmqctl("close_all_connections", "test: connection loss")
    second = outbox.publish_many([("stock.moved", {"n": n}) for n in range(10, 20)])
    wait_until(lambda: depth(queue) == 20, 30, message="20 messages after connection loss")

    # Broker down: deliveries fail and are retried with backoff until it is back.
    rabbitmqctl("stop_app")
    try:
        third = outbox.publish_many([("stock.moved", {"n": n}) for n in range(20, 30)])
        wait_until(
            lambda: (
                OutboxEvent.objects.filter(pk__in=[e.pk for e in third], attempts__gte=2)
                .exclude(last_error="")
                .count()
                == 10
            ),
            60,
            message="failed attempts recorded while the broker is down",
        )
    finally:
        rabbitmqctl("start_app")
    wait_until(broker_up, 60, 0.5, "RabbitMQ back up")
    wait_until(
        lambda: (
            not OutboxEvent.objects.filter(topic="stock.moved", attempts__lt=1).exists()
            and depth(queue) >= 30
        ),
        90,
        message="all 30 messages after the restart",
    )
    got = drain(queue)
    ids = {p.message_id for p, _ in got}
    # Nothing lost (the 20 sent before the restart survived it: persistent messages
    # in a durable queue); duplicates are allowed (at-least-once) and carry the same id.
    assert ids == {str(e.pk) for e in first + second + third}
    assert {e.status for e in OutboxEvent.objects.filter(topic="stock.moved")} == {
        OutboxStatus.DISPATCHED
    }
    assert "unavailable" in OutboxEvent.objects.get(pk=third[0].pk).last_error
