"""The schedule operations of every engine: sync, fire (one job per tick, even
for schedulers racing each other), run now."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs.models import Job, Schedule
from django_jobs.scheduling.planner import plan_ticks
from django_jobs.scheduling.plans import ScheduleDefinition
from django_jobs.scheduling.ticks import Cadence
from django_jobs.status import JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

NOOP = "tests.testapp.tasks.noop"


def definition(name: str = "every-minute", **changes: object) -> ScheduleDefinition:
    fields: dict[str, object] = {
        "name": name,
        "task_name": NOOP,
        "cadence": Cadence(interval=timedelta(minutes=1)),
        "args": [],
        "kwargs": {},
        "queue_name": "reports",
        "priority": 5,
        "catch_up": "latest",
        "overlap": True,
        "source": "settings",
    }
    fields.update(changes)
    return ScheduleDefinition(**fields)  # type: ignore[arg-type]


def make_due(name: str, minutes_ago: int = 0) -> Schedule:
    """Move ``name``'s next tick onto the grid, ``minutes_ago`` whole minutes back."""
    now = timezone.now().replace(second=0, microsecond=0)
    Schedule.objects.filter(name=name).update(next_run_at=now - timedelta(minutes=minutes_ago))
    return Schedule.objects.get(name=name)


def test_sync_creates_updates_disables_and_leaves_admin_rows_alone(engine):
    assert engine.sync_schedules([definition(), definition("other")])["created"] == 2
    Schedule.objects.create(
        name="by-hand", task_name=NOOP, interval=timedelta(hours=1), next_run_at=timezone.now()
    )
    counts = engine.sync_schedules([definition(priority=9)])
    assert counts == {"created": 0, "updated": 1, "removed": 1, "unchanged": 0}
    row = Schedule.objects.get(name="every-minute")
    assert (row.priority, row.enabled, row.queue_name) == (9, True, "reports")
    gone = Schedule.objects.get(name="other")
    assert (gone.enabled, gone.removed_from_code) == (False, True)
    assert Schedule.objects.get(name="by-hand").enabled, "admin schedules are never synced"
    # Back in code: enabled again, from its next tick (not the missed ones).
    engine.sync_schedules([definition(), definition("other")])
    back = Schedule.objects.get(name="other")
    assert (back.enabled, back.removed_from_code) == (True, False)
    assert back.next_run_at > timezone.now()


def test_fire_enqueues_the_tick_with_its_schedule_and_moves_next_run_at(engine):
    engine.sync_schedules([definition()])
    due = make_due("every-minute", minutes_ago=0)
    report = engine.fire_due_schedules(10, plan_ticks)
    assert (report.schedules, report.jobs, report.lost) == (1, 1, 0)
    job = Job.objects.get(meta__schedule="every-minute")
    assert (job.run_after, job.queue_name, job.priority) == (due.next_run_at, "reports", 5)
    assert job.status == JobStatus.READY
    row = Schedule.objects.get(pk=due.pk)
    assert row.next_run_at == due.next_run_at + timedelta(minutes=1)
    assert row.last_job_id == job.pk and row.last_enqueued_at is not None
    assert report.wait is not None and 0 < report.wait <= 60
    again = engine.fire_due_schedules(10, plan_ticks)
    assert again.jobs == 0 and Job.objects.count() == 1, "a tick fires once"


def test_disabled_schedules_do_not_fire_and_nothing_is_waited_for(engine):
    engine.sync_schedules([definition()])
    make_due("every-minute", minutes_ago=3)
    Schedule.objects.update(enabled=False)
    report = engine.fire_due_schedules(10, plan_ticks)
    assert (report.jobs, report.wait) == (0, None)
    assert not Job.objects.exists()


def test_run_now_adds_one_job_and_leaves_the_tick_alone(engine):
    engine.sync_schedules([definition()])
    row = Schedule.objects.get()
    from django_jobs.scheduling.planner import build_row  # the planner's own row builder

    job_id = engine.enqueue_schedule_now(row.pk, build_row(definition(), None), {"schedule": "x"})
    job = Job.objects.get(pk=job_id)
    assert job.meta == {"schedule": "x"} and job.queue_name == "reports"
    after = Schedule.objects.get(pk=row.pk)
    assert after.next_run_at == row.next_run_at and after.last_job_id == job_id


@pytest.mark.postgres
def test_racing_schedulers_fire_each_tick_once(engine):
    """Eight threads (eight connections) fire the same 50 due schedules at once:
    SKIP LOCKED spreads the rows and compare-and-set on next_run_at refuses a
    second write, so each schedule gets exactly one job."""
    engine.sync_schedules([definition(f"s{i}") for i in range(50)])
    for i in range(50):
        make_due(f"s{i}", minutes_ago=2)
    start = threading.Barrier(8)
    reports, errors = [], []

    def fire() -> None:
        try:
            start.wait(10)
            for _ in range(5):
                reports.append(type(engine)(engine.alias).fire_due_schedules(7, plan_ticks))
        except Exception as exc:  # reported below: a thread's failure fails the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    per_schedule = {
        name: Job.objects.filter(meta__schedule=name).count()
        for name in (f"s{i}" for i in range(50))
    }
    assert set(per_schedule.values()) == {1}, per_schedule
    assert sum(r.jobs for r in reports) == 50


@pytest.mark.postgres
def test_fire_skips_a_schedule_another_scheduler_holds(engine, lock_rows, no_lock_waits):
    engine.sync_schedules([definition("held"), definition("free")])
    held = make_due("held")
    make_due("free")
    lock_rows("django_jobs_schedule", [held.pk])
    report = engine.fire_due_schedules(10, plan_ticks)
    assert report.jobs == 1
    assert Job.objects.get().meta == {"schedule": "free"}
    assert report.wait is not None and report.wait < 1, "retries the held one soon"
