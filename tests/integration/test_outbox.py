"""The outbox against a real database: publish in transactions, validation,
the relay's batches, per-key blocking, deliveries bookkeeping, pruning."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_jobs import outbox
from django_jobs.engine.outbox import get_outbox_engine
from django_jobs.engine.outbox_postgres import PostgresOutboxEngine
from django_jobs.models import Job, OutboxEvent
from django_jobs.outbox.delivery import DELIVERY_TASK, plan_redispatch
from django_jobs.outbox.publishers import get_publishers
from django_jobs.outbox.relay import Relay
from django_jobs.status import JobStatus, OutboxStatus
from tests.testapp import subscribers

pytestmark = pytest.mark.django_db(transaction=True)

HOOK = {"BACKEND": "webhook", "URL": "http://127.0.0.1:9/hook", "SECRET": "s3cret"}


def with_publishers(**publishers):
    return override_settings(DJANGO_JOBS={**settings.DJANGO_JOBS, "OUTBOX_PUBLISHERS": publishers})


def jobs_of(event_id):
    return {
        job.task_name: job
        for job in Job.objects.all()
        if job.args and isinstance(job.args[-1], dict) and job.args[-1].get("id") == event_id
    }


def test_publish_commits_and_rolls_back_with_the_transaction():
    with transaction.atomic():
        kept = outbox.publish("order.created", {"order": 1}, key="o-1", headers={"trace": "t1"})
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.publish("order.created", {"order": 2}, key="o-2")
        raise RuntimeError("business error: roll back")
    stored = OutboxEvent.objects.get()
    assert stored.pk == kept.pk and kept.status == OutboxStatus.PENDING
    assert (stored.topic, stored.key, stored.payload, stored.headers) == (
        "order.created",
        "o-1",
        {"order": 1},
        {"trace": "t1"},
    )
    assert stored.created_at == kept.created_at
    auto = outbox.publish("order.paid", [1, 2, 3])  # autocommit: its own transaction
    assert OutboxEvent.objects.get(pk=auto.pk).payload == [1, 2, 3]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: outbox.publish("t", {"when": timezone.now()}), TypeError, "JSON-serializable"),
        (lambda: outbox.publish("t", float("nan")), TypeError, "JSON-serializable"),
        (lambda: outbox.publish("", {}), ValueError, "non-empty string"),
        (lambda: outbox.publish("order.*", {}), ValueError, "wildcard"),
        (lambda: outbox.publish("t", {}, key=42), TypeError, "str(...)"),
        (lambda: outbox.publish("t", {}, key="k" * 256), ValueError, "longer than 255"),
        (lambda: outbox.publish("t", {}, headers=["a"]), TypeError, "headers must be a dict"),
        (lambda: outbox.publish("t", {}, headers={"a": {1, 2}}), TypeError, "headers of event"),
        (
            lambda: outbox.publish_many([("ok", {}), ("bad", object())]),
            TypeError,
            "publish_many item 1: payload of event 'bad'",
        ),
        (lambda: outbox.publish_many([{"topic": "t"}]), TypeError, "item 0: needs 'topic'"),
        (
            lambda: outbox.publish_many([{"topic": "t", "payload": 1, "x": 1}]),
            TypeError,
            "field(s) x",
        ),
        (lambda: outbox.publish_many(["t"]), TypeError, "item 0: must be a (topic"),
        # PostgreSQL stores no NUL character in jsonb or text.
        (lambda: outbox.publish("t", {"raw": "a\x00b"}), TypeError, "payload of event 't'"),
        (lambda: outbox.publish("t\x00", {}), ValueError, "contains a NUL character"),
        (lambda: outbox.publish("t", {}, key="k\x00"), ValueError, "contains a NUL character"),
    ],
)
def test_bad_input_names_the_problem_and_writes_nothing(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
    assert not OutboxEvent.objects.exists()


def test_publish_many_keeps_order_in_one_call():
    events = outbox.publish_many(
        [("a.b", {"n": 0}, "k"), {"topic": "a.b", "payload": {"n": 1}, "key": "k"}, ("c", None)]
    )
    assert [e.payload for e in events] == [{"n": 0}, {"n": 1}, None]
    assert events[0].pk < events[1].pk < events[2].pk
    assert OutboxEvent.objects.pending().count() == 3
    assert outbox.publish_many([]) == []


def test_subscriber_rejects_misuse():
    with pytest.raises(TypeError, match="needs a topic"):
        outbox.subscriber(lambda event: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stand alone"):
        outbox.subscriber("order.x*")
    with pytest.raises(TypeError, match="unknown option"):
        outbox.subscriber("t", retries=3)


def test_relay_enqueues_one_job_per_subscriber_and_marks_dispatched():
    created = outbox.publish("order.created", {"order": 7}, key="o-7", headers={"h": 1})
    paid = outbox.publish("order.paid", {"order": 7}, key="o-7")
    nobody = outbox.publish("nobody.listens", {})
    report = Relay().dispatch_once()
    assert (report.dispatched, report.jobs, report.blocked) == (3, 3, 0)
    jobs = jobs_of(created.pk)
    assert set(jobs) == {subscribers.on_order_created.name, subscribers.on_any_order.name}
    job = jobs[subscribers.on_order_created.name]
    assert job.idempotency_key == f"outbox:{created.pk}:{subscribers.on_order_created.name}"
    event_arg = job.args[0]
    assert event_arg["payload"] == {"order": 7} and event_arg["headers"] == {"h": 1}
    assert event_arg["key"] == "o-7" and event_arg["topic"] == "order.created"
    assert set(jobs_of(paid.pk)) == {subscribers.on_any_order.name}
    assert jobs_of(nobody.pk) == {}
    for event in OutboxEvent.objects.all():
        assert event.status == OutboxStatus.DISPATCHED and event.dispatched_at is not None
    assert Relay().dispatch_once().dispatched == 0
    assert Job.objects.count() == 3
    # The subscriber's function receives an Event, also when called directly.
    received = outbox.Event.from_dict(event_arg)
    assert received.id == created.pk and received.created_at == created.created_at


def test_relay_batches_in_id_order():
    outbox.publish_many([("bulk.item", {"n": n}) for n in range(5)])
    relay = Relay(batch_size=2)
    assert [relay.dispatch_once().dispatched for _ in range(4)] == [2, 2, 1, 0]
    order = [job.args[0]["payload"]["n"] for job in Job.objects.order_by("id")]
    assert order == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # two subscribers per event


def test_delivery_bookkeeping_failed_then_redispatched():
    event = outbox.publish("order.created", {"order": 1})
    engine = get_outbox_engine()
    with with_publishers(hook=HOOK, other={**HOOK, "TOPICS": ["nothing.*"]}):
        Relay().dispatch_once()
        delivery = Job.objects.get(task_name=DELIVERY_TASK)
        assert delivery.args[0] == "hook" and delivery.args[1]["id"] == event.pk
        assert delivery.idempotency_key == f"outbox:{event.pk}:publisher:hook"
        assert delivery.max_attempts == 8
        assert engine.record_delivery(event.pk, "hook", "HTTP 500")
        stored = OutboxEvent.objects.get(pk=event.pk)
        assert (stored.status, stored.attempts, stored.last_error) == (
            OutboxStatus.DISPATCHED,
            1,
            "hook: HTTP 500",
        )
        engine.record_delivery(event.pk, "hook", "HTTP 503", gave_up=True)
        stored.refresh_from_db()
        assert (stored.status, stored.attempts, stored.failed_publishers) == (
            OutboxStatus.FAILED,
            2,
            ["hook"],
        )
        Job.objects.filter(pk=delivery.pk).update(status=JobStatus.FAILED)
        assert engine.redispatch_failed([event.pk, 999999], plan_redispatch) == 1
        assert engine.redispatch_failed([event.pk], plan_redispatch) == 0  # not FAILED now
        stored.refresh_from_db()
        assert (stored.status, stored.failed_publishers) == (OutboxStatus.DISPATCHED, [])
        again = Job.objects.filter(task_name=DELIVERY_TASK, status=JobStatus.READY).get()
        assert again.args[0] == "hook" and again.pk != delivery.pk
        engine.record_delivery(event.pk, "hook")
        stored.refresh_from_db()
        assert (stored.status, stored.attempts) == (OutboxStatus.DISPATCHED, 3)
    assert not jobs_of(event.pk).keys() - {
        subscribers.on_order_created.name,
        subscribers.on_any_order.name,
        DELIVERY_TASK,
    }
    # Subscribers were not enqueued again by the re-dispatch.
    assert Job.objects.filter(task_name=subscribers.on_any_order.name).count() == 1


def test_publisher_configuration_errors_are_clear():
    for options, message in [
        ({"BACKEND": "webhook", "URL": "ftp://x", "SECRET": "s"}, "http:// or https://"),
        ({"BACKEND": "webhook", "URL": "http://x"}, "missing option(s) SECRET"),
        ({**HOOK, "RETRIES": 3}, "unknown option(s) RETRIES"),
        ({**HOOK, "MAX_ATTEMPTS": 0}, "MAX_ATTEMPTS must be a positive number"),
        ({**HOOK, "TOPICS": "order.*"}, "TOPICS must be a non-empty list"),
        ({"BACKEND": "nope.Nope"}, "cannot load BACKEND 'nope.Nope'"),
        ({"URL": "x"}, "must be a dict with a BACKEND"),
    ]:
        with with_publishers(bad=options), pytest.raises(ImproperlyConfigured) as info:
            get_publishers()
        assert "OUTBOX_PUBLISHERS']['bad']" in str(info.value)
        assert message in str(info.value), (options, str(info.value))


def test_prune_deletes_old_dispatched_events_only_in_batches():
    events = outbox.publish_many([("nobody.listens", {"n": n}) for n in range(5)])
    failed = outbox.publish("nobody.listens", {})
    Relay().dispatch_once()
    old = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in events[:4]]).update(dispatched_at=old)
    OutboxEvent.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED, dispatched_at=old)
    recent = outbox.publish("nobody.listens", {})  # still pending
    with override_settings(
        DJANGO_JOBS={**settings.DJANGO_JOBS, "PRUNE_BATCH_SIZE": 3, "OUTBOX_RETENTION": 86400}
    ):
        assert Relay().prune_once() == 4
    left = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert left == {events[4].pk, failed.pk, recent.pk}


def test_event_dict_round_trip():
    stored = outbox.publish("a", {"x": [1, None, "é"]}, key="k", headers={"h": True})
    event = outbox.Event(
        stored.pk, stored.topic, stored.key, stored.payload, stored.headers, stored.created_at
    )
    data = json.loads(json.dumps(event.as_dict()))
    assert data["payload"] == {"x": [1, None, "é"]} and data["id"] == stored.pk
    assert outbox.Event.from_dict(data) == event


def test_admin_list_filters_and_searches_by_key_and_id(client):
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", password="pw")
    client.login(username="root", password="pw")
    first = outbox.publish("order.created", {"secret": "payload-a"}, key="acct-1")
    second = outbox.publish("order.paid", {}, key="acct-2")
    OutboxEvent.objects.filter(pk=second.pk).update(
        status=OutboxStatus.FAILED, last_error="hook: HTTP 500 from the receiver"
    )
    url = "/admin/django_jobs/outboxevent/"
    page = client.get(url).content.decode()
    assert "order.created" in page and "order.paid" in page
    assert "payload-a" not in page  # the list never reads payloads
    failed = client.get(url, {"status__exact": "FAILED"}).content.decode()
    assert "order.paid" in failed and "order.created" not in failed
    assert "hook: HTTP 500" in failed
    by_key = client.get(url, {"q": "acct-1"}).content.decode()
    assert "order.created" in by_key and "order.paid" not in by_key
    by_id = client.get(url, {"q": str(second.pk)}).content.decode()
    assert "order.paid" in by_id and "order.created" not in by_id
    detail = client.get(f"{url}{first.pk}/change/").content.decode()
    assert "payload-a" in detail and "acct-1" in detail
    assert client.get(f"{url}add/").status_code == 403


# Django's model checks ask every alias whether it supports JSONField.
@pytest.mark.django_db(transaction=True, databases=["default", "jobs"])
def test_system_check_reports_bad_publisher_settings():
    from django.core import checks

    with with_publishers(hook={**HOOK, "URL": "not-a-url"}):
        errors = [m for m in checks.run_checks() if m.id == "django_jobs.E010"]
    assert len(errors) == 1 and "URL must be an http://" in errors[0].msg
    with with_publishers(hook=HOOK):
        assert not [m for m in checks.run_checks() if m.id == "django_jobs.E010"]


@pytest.mark.postgres
def test_event_waits_for_a_batch_started_after_its_predecessors_dispatch():
    """Our batch began (now() fixed) before another relay dispatched event 1 of
    key k: event 2 would get jobs due earlier than event 1's, so it waits for
    the next batch."""
    import psycopg

    first, second = outbox.publish_many([("seq.step", {"n": 1}, "k"), ("seq.step", {"n": 2}, "k")])
    engine = PostgresOutboxEngine("default")
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "server_side_binding", "prepare_threshold"):
        params.pop(name, None)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")  # our transaction has started
        with psycopg.connect(**params, autocommit=True) as rival:
            rival.execute(
                "UPDATE django_jobs_outboxevent SET status = 'DISPATCHED', "
                "dispatched_at = now() WHERE id = %s",
                [first.pk],
            )
        events, blocked = engine.claim_events(10)
        assert (events, blocked) == ([], 1)
    events, blocked = engine.claim_events(10)  # a new transaction: now() is later
    assert [e.id for e in events] == [second.pk] and blocked == 0
