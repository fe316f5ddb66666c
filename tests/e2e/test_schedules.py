"""Schedules fired by real runworker / runscheduler processes: exactly one job
per tick across several workers, a SIGKILL and a restart; catch-up after
downtime per policy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.models import Job, Schedule, Worker
from django_jobs.status import JobStatus
from tests.conftest import ROOT, wait_until, worker_env

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)

EVERY_SECOND = {"tick": {"task": "tests.testapp.tasks.noop", "every": 1}}
# catch_up="all": a pass that comes more than a tick late (a SIGKILL mid-pass,
# a loaded machine) still owes one job per tick, so "no gap" is checkable;
# "latest" would rightly fold the late ticks into one job.
EVERY_SECOND_ALL = {"tick": {**EVERY_SECOND["tick"], "catch_up": "all"}}


def schedule_env(schedules: dict[str, object], **extra: str) -> dict[str, str]:
    return {"DJANGO_JOBS_TEST_SCHEDULES": json.dumps(schedules), **extra}


def ticks_of(name: str) -> list[datetime]:
    """The run_after of every job of schedule ``name``, in order."""
    return sorted(Job.objects.filter(meta__schedule=name).values_list("run_after", flat=True))


def assert_one_per_tick(ticks: list[datetime], step: timedelta) -> None:
    doubled = [tick for tick, n in Counter(ticks).items() if n > 1]
    assert not doubled, f"ticks with more than one job: {doubled}"
    gaps = [(a, b) for a, b in zip(ticks, ticks[1:], strict=False) if b - a != step]
    assert not gaps, f"missed ticks between: {gaps}"


def test_three_workers_one_job_per_tick_through_sigkill_and_restart(start_worker):
    env = schedule_env(EVERY_SECOND_ALL)
    workers = [start_worker("--concurrency", "2", env=env) for _ in range(3)]
    # 4 + 4 ticks (one second each): every tick is contended by all live
    # workers, before and after the SIGKILL / restart; more ticks prove no more.
    wait_until(lambda: len(ticks_of("tick")) >= 4, 30, 0.2, "4 ticks with 3 workers")
    workers[0].kill()  # SIGKILL: mid-pass or asleep, its transaction never commits
    workers[1].terminate()
    workers.append(start_worker("--concurrency", "2", env=env))  # restart one
    start = len(ticks_of("tick"))
    wait_until(lambda: len(ticks_of("tick")) >= start + 4, 30, 0.2, "4 more ticks")
    for proc in workers[2:]:
        assert proc.terminate() == 0, proc.output()[-2000:]
    ticks = ticks_of("tick")
    assert len(ticks) >= 8
    assert all(t.microsecond == 0 for t in ticks), "interval ticks are whole seconds"
    assert_one_per_tick(ticks, timedelta(seconds=1))
    jobs = Job.objects.filter(meta__schedule="tick")
    assert all(job.requested_run_after == job.run_after for job in jobs)
    schedule = Schedule.objects.get(name="tick")
    assert schedule.source == Schedule.Source.SETTINGS
    assert schedule.last_job_id == max(job.pk for job in jobs)
    assert schedule.next_run_at > ticks[-1]


def run_scheduler_once(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runscheduler", "--once"],
        cwd=ROOT,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", 1), ("all", 5), ("skip", 0)],
)
def test_downtime_of_five_ticks_per_catch_up_policy(catch_up, expected):
    name = f"down-{catch_up}"
    env = schedule_env(
        {name: {"task": "tests.testapp.tasks.noop", "every": 3600, "catch_up": catch_up}}
    )
    assert "enqueued 0" in run_scheduler_once(env)  # synced: first tick on the next hour
    # Five ticks pass with no scheduler running (hourly: no tick falls due meanwhile).
    schedule = Schedule.objects.get(name=name)
    grid = schedule.next_run_at - timedelta(hours=5)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=grid)
    now = datetime.now(UTC)
    missed = [grid + timedelta(hours=i) for i in range(6) if grid + timedelta(hours=i) <= now]
    assert len(missed) == 5
    out = run_scheduler_once(env)
    assert f"enqueued {expected} " in out
    ticks = ticks_of(name)
    assert len(ticks) == expected
    if catch_up == "latest":
        assert ticks == [missed[-1]]
    if catch_up == "all":
        assert ticks == missed
    schedule.refresh_from_db()
    assert schedule.skipped_ticks == 5 - expected
    assert schedule.next_run_at > now
    assert run_scheduler_once(env).startswith("enqueued 0")  # nothing due twice


def test_overlap_false_skips_ticks_while_the_previous_job_runs(start_worker):
    env = schedule_env(
        {
            "slow": {
                "task": "tests.testapp.tasks.sleep_for",
                "every": 1,
                "args": [3.5],
                "overlap": False,
            }
        }
    )
    worker = start_worker("--concurrency", "4", env=env)
    wait_until(
        lambda: Schedule.objects.filter(name="slow", skipped_ticks__gte=2).exists(),
        30,
        0.2,
        "skipped ticks",
    )
    assert worker.terminate() == 0
    jobs = list(Job.objects.filter(meta__schedule="slow").order_by("run_after"))
    # Never two at once: each job started after the previous one finished.
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert earlier.finished_at is not None and later.started_at >= earlier.finished_at
    schedule = Schedule.objects.get(name="slow")
    assert "overlap=False" in schedule.last_skip_reason


def test_invalid_schedule_refuses_to_start_and_writes_nothing(start_worker):
    env = schedule_env({"bad": {"task": "tests.testapp.tasks.noop", "cron": "61 * * * *"}})
    proc = start_worker(env=env)
    assert proc.wait(60) != 0
    assert "bad" in proc.output() and "cron" in proc.output()
    assert not Schedule.objects.exists()
    assert not Job.objects.exists()


def test_no_scheduler_flag_and_removed_schedules_are_disabled(start_worker):
    proc = start_worker("--no-scheduler", env=schedule_env(EVERY_SECOND))
    wait_until(lambda: Worker.objects.exists(), 30, 0.1, "the worker to start")
    time.sleep(1.5)  # more than a tick
    assert proc.terminate() == 0
    assert not Schedule.objects.exists(), "--no-scheduler neither syncs nor fires"
    run_scheduler_once(schedule_env(EVERY_SECOND))
    assert Schedule.objects.get(name="tick").enabled
    run_scheduler_once(schedule_env({}))  # removed from settings: disabled, kept
    schedule = Schedule.objects.get(name="tick")
    assert (schedule.enabled, schedule.removed_from_code) == (False, True)
    count = Job.objects.filter(meta__schedule="tick").count()
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime.now(UTC) - timedelta(1))
    run_scheduler_once(schedule_env({}))
    assert Job.objects.filter(meta__schedule="tick").count() == count, "disabled: no job"
    assert all(s == JobStatus.READY for s in Job.objects.values_list("status", flat=True))
