"""An event is marked DISPATCHED in the same transaction that enqueues its
jobs: both commit or neither does. A database trigger created by the test
makes one half fail for real (the job INSERT, or the event's UPDATE to
DISPATCHED); the other half must then be rolled back with it. Marking events
in a transaction apart from their jobs loses them (DISPATCHED, no job) or
duplicates them (jobs, still PENDING, dispatched again)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import DatabaseError, connection

from django_jobs import outbox
from django_jobs.engine.outbox import OutboxEngine, get_outbox_engine
from django_jobs.models import Job, OutboxEvent
from django_jobs.outbox.delivery import plan_jobs
from django_jobs.status import OutboxStatus

pytestmark = pytest.mark.django_db(transaction=True)

# The test's own trigger; PostgreSQL and SQLite spell it differently.
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


def engines() -> list[OutboxEngine]:
    # The vendor's own engine, and on PostgreSQL also the portable ORM one.
    ours = get_outbox_engine()
    return [ours] if type(ours) is OutboxEngine else [ours, OutboxEngine("default")]


@pytest.mark.parametrize("failing", ["jobs", "dispatched"])
def test_event_and_its_jobs_commit_together_or_not_at_all(refuse, failing):
    for engine in engines():
        event = outbox.publish("order.created", {"order": 1})  # two subscribers
        refuse(failing)
        # SQLite reports a trigger's RAISE as an IntegrityError, which the
        # portable enqueue takes for an idempotency-key race and retries.
        with pytest.raises(DatabaseError, match=r"injected failure|could not enqueue"):
            engine.dispatch_batch(10, plan_jobs)
        stored = OutboxEvent.objects.get(pk=event.pk)
        assert (stored.status, stored.dispatched_at) == (OutboxStatus.PENDING, None), (
            "the event was marked DISPATCHED in a transaction apart from its jobs"
        )
        assert not Job.objects.exists(), "jobs were committed apart from their event"

        lift()
        report = engine.dispatch_batch(10, plan_jobs)
        assert (report.dispatched, report.jobs) == (1, 2)
        assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED
        assert Job.objects.count() == 2
        OutboxEvent.objects.all().delete()
        Job.objects.all().delete()
