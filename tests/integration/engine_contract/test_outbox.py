"""The outbox engine: insert events in order, claim and dispatch them oldest
first, same-key events in id order, claim + enqueue + mark in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import DatabaseError, connection, transaction

from django_jobs import outbox
from django_jobs.models import Job, OutboxEvent
from django_jobs.outbox.delivery import plan_jobs
from django_jobs.rows import NewEvent
from django_jobs.status import OutboxStatus

pytestmark = pytest.mark.django_db(transaction=True)


def new_event(topic: str, payload: str = "{}", key: str | None = None) -> NewEvent:
    return NewEvent(topic=topic, key=key, payload_json=payload, headers_json='{"h":1}')


def test_insert_events_in_input_order(outbox_engine):
    rows = [new_event("a", '{"n":0}', "k"), new_event("b", "null"), new_event("c", "[1]", "k")]
    with transaction.atomic():
        created = outbox_engine.insert_events(rows)
    ids = [event.pk for event in created]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [e.payload for e in created] == [{"n": 0}, None, [1]]
    stored = {e.pk: e for e in OutboxEvent.objects.all()}
    assert [(stored[i].topic, stored[i].key, stored[i].payload) for i in ids] == [
        ("a", "k", {"n": 0}),
        ("b", None, None),
        ("c", "k", [1]),
    ]
    for event in created:
        assert stored[event.pk].status == OutboxStatus.PENDING
        assert stored[event.pk].headers == {"h": 1}
        assert event.created_at == stored[event.pk].created_at
    [one] = outbox_engine.insert_events([new_event("d")])
    assert one.pk > ids[-1] and OutboxEvent.objects.get(pk=one.pk).topic == "d"


def test_claim_events_takes_pending_events_oldest_first_up_to_the_limit(outbox_engine):
    ids = [e.pk for e in outbox.publish_many([("t", {"n": n}) for n in range(5)])]
    OutboxEvent.objects.filter(pk=ids[1]).update(status=OutboxStatus.DISPATCHED)
    with transaction.atomic():
        events, blocked = outbox_engine.claim_events(3)
    assert ([e.id for e in events], blocked) == ([ids[0], ids[2], ids[3]], 0)
    assert [e.payload for e in events] == [{"n": 0}, {"n": 2}, {"n": 3}]
    assert events[0].topic == "t" and events[0].headers == {}


def test_same_key_events_of_one_batch_are_all_dispatched_in_id_order(outbox_engine):
    outbox.publish_many([("seq.step", {"n": n}, "k") for n in (1, 2, 3)])
    report = outbox_engine.dispatch_batch(10, plan_jobs)
    assert (report.dispatched, report.blocked) == (3, 0)
    assert [j.args[0]["payload"]["n"] for j in Job.objects.order_by("id")] == [1, 2, 3]


def test_only_a_pending_earlier_event_of_the_key_blocks(outbox_engine):
    """An earlier event of key k that is FAILED or was dispatched in an earlier
    batch does not hold the later ones back (a PENDING one held by another
    relay does: see test_skip_locked)."""
    failed, dispatched, later = outbox.publish_many(
        [("seq.step", {"n": n}, "k") for n in (1, 2, 3)]
    )
    OutboxEvent.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED)
    with transaction.atomic():
        events, blocked = outbox_engine.claim_events(1)
        assert ([e.id for e in events], blocked) == ([dispatched.pk], 0)
        assert outbox_engine.mark_dispatched([dispatched.pk]) == 1
    with transaction.atomic():
        events, blocked = outbox_engine.claim_events(10)
    assert ([e.id for e in events], blocked) == ([later.pk], 0)


def test_dispatch_batch_enqueues_the_planned_jobs_and_marks_dispatched(outbox_engine):
    ids = [e.pk for e in outbox.publish_many([("bulk.item", {"n": n}) for n in range(5)])]
    reports = [outbox_engine.dispatch_batch(2, plan_jobs) for _ in range(4)]
    assert [(r.dispatched, r.jobs, r.blocked) for r in reports] == [
        (2, 4, 0),
        (2, 4, 0),
        (1, 2, 0),
        (0, 0, 0),
    ]
    order = [job.args[0]["payload"]["n"] for job in Job.objects.order_by("id")]
    assert order == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # two subscribers per event
    for event in OutboxEvent.objects.filter(pk__in=ids):
        assert event.status == OutboxStatus.DISPATCHED and event.dispatched_at is not None


def test_mark_dispatched_only_marks_pending_events(outbox_engine):
    pending, failed = (e.pk for e in outbox.publish_many([("a", {}), ("b", {})]))
    OutboxEvent.objects.filter(pk=failed).update(status=OutboxStatus.FAILED)
    with transaction.atomic():
        assert outbox_engine.mark_dispatched([pending, failed]) == 1
    assert dict(OutboxEvent.objects.values_list("pk", "status")) == {
        pending: OutboxStatus.DISPATCHED,
        failed: OutboxStatus.FAILED,
    }


# -- claim, enqueue and mark commit together ---------------------------------------
#
# A database trigger created by the test makes one half fail for real (the job
# INSERT, or the event's UPDATE to DISPATCHED); the other half must then be
# rolled back with it. Marking events in a transaction apart from their jobs
# loses them (DISPATCHED, no job) or duplicates them (jobs, still PENDING,
# dispatched again). The test's own trigger; PostgreSQL and SQLite spell it
# differently.
TRIGGERS = {
    "postgresql": {
        "jobs": (
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected failure on %', TG_TABLE_NAME; END $$",
            "CREATE TRIGGER test_refuse BEFORE INSERT ON django_jobs_job "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse()",
        ),
        "dispatched": (
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected failure on %', TG_TABLE_NAME; END $$",
            "CREATE TRIGGER test_refuse BEFORE UPDATE ON django_jobs_outboxevent "
            "FOR EACH ROW WHEN (NEW.status = 'DISPATCHED') EXECUTE FUNCTION test_refuse()",
        ),
    },
    "sqlite": {
        "jobs": (
            "CREATE TRIGGER test_refuse BEFORE INSERT ON django_jobs_job "
            "BEGIN SELECT RAISE(ABORT, 'injected failure on django_jobs_job'); END",
        ),
        "dispatched": (
            "CREATE TRIGGER test_refuse BEFORE UPDATE ON django_jobs_outboxevent "
            "WHEN NEW.status = 'DISPATCHED' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure on django_jobs_outboxevent'); END",
        ),
    },
}
DROP = {
    "postgresql": (
        "DROP TRIGGER IF EXISTS test_refuse ON django_jobs_job",
        "DROP TRIGGER IF EXISTS test_refuse ON django_jobs_outboxevent",
        "DROP FUNCTION IF EXISTS test_refuse()",
    ),
    "sqlite": ("DROP TRIGGER IF EXISTS test_refuse",),
}


@pytest.fixture
def refuse() -> Iterator[Callable[[str], None]]:
    """``refuse("jobs")`` / ``refuse("dispatched")``: from now on the database
    rejects every job INSERT / every event UPDATE to DISPATCHED."""

    def install(what: str) -> None:
        with connection.cursor() as cursor:
            for statement in TRIGGERS[connection.vendor][what]:
                cursor.execute(statement)

    yield install
    lift()


def lift() -> None:
    with connection.cursor() as cursor:
        for statement in DROP[connection.vendor]:
            cursor.execute(statement)


@pytest.mark.parametrize("failing", ["jobs", "dispatched"])
def test_event_and_its_jobs_commit_together_or_not_at_all(outbox_engine, refuse, failing):
    event = outbox.publish("order.created", {"order": 1})  # two subscribers
    refuse(failing)
    # SQLite reports a trigger's RAISE as an IntegrityError, which the
    # portable enqueue takes for an idempotency-key race and retries.
    with pytest.raises(DatabaseError, match=r"injected failure|could not enqueue"):
        outbox_engine.dispatch_batch(10, plan_jobs)
    stored = OutboxEvent.objects.get(pk=event.pk)
    assert (stored.status, stored.dispatched_at) == (OutboxStatus.PENDING, None), (
        "the event was marked DISPATCHED in a transaction apart from its jobs"
    )
    assert not Job.objects.exists(), "jobs were committed apart from their event"

    lift()
    report = outbox_engine.dispatch_batch(10, plan_jobs)
    assert (report.dispatched, report.jobs) == (1, 2)
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED
    assert Job.objects.count() == 2
