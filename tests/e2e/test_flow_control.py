"""Flow control with several real runworker processes: pause/resume,
concurrency limits (per key, per task, per queue), rate limits and circuit
breakers, all decided by the database at claim time."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime

import pytest
from django.core.management import call_command

from django_jobs import queues
from django_jobs.models import Circuit, CircuitEvent, Job, Worker
from django_jobs.status import CircuitState, JobStatus
from tests.conftest import wait_until
from tests.testapp import flow_tasks, tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases=["default", "jobs"], transaction=True)


def _all_done(ids: list[int]) -> bool:
    return Job.objects.filter(pk__in=ids, status=JobStatus.SUCCESSFUL).count() == len(ids)


def _intervals(name: str) -> dict[str, list[tuple[float, float]]]:
    """key -> [(start, end)] of each run of the task recorded as ``name``."""
    starts = {e.job_id: e.value for e in Event.objects.filter(name=f"{name}:start")}
    ends = {e.job_id: e.value for e in Event.objects.filter(name=f"{name}:end")}
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for job_id, start in starts.items():
        runs[start["key"]].append((start["t"], ends[job_id]["t"]))
    return runs


def _most_at_once(runs: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs])
    most = current = 0
    for _, step in points:  # an end at the same instant as a start comes first
        current += step
        most = max(most, current)
    return most


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def test_pause_stops_claims_resume_restarts_them_and_it_survives_restarts(start_worker):
    call_command("jobs", "pause", "held")
    held = [flow_tasks.pausable.using(queue_name="held").enqueue(str(n)).pk for n in range(6)]
    other = tasks.add.enqueue(1, 2)
    workers = [start_worker("--concurrency", "4") for _ in range(2)]
    wait_until(lambda: _all_done([other.pk]), 30, message="the unpaused queue's job")
    time.sleep(5)
    stored = Job.objects.filter(pk__in=held)
    assert {(j.status, j.attempts) for j in stored} == {(JobStatus.READY, 0)}
    # A restarted worker still sees the pause: it is a row, not memory.
    assert workers[0].terminate() == 0
    start_worker("--concurrency", "4")
    time.sleep(2)
    assert Job.objects.filter(pk__in=held, status=JobStatus.READY).count() == 6
    call_command("jobs", "resume", "held")
    wait_until(lambda: _all_done(held), 30, message="the resumed queue's jobs")
    assert {j.attempts for j in Job.objects.filter(pk__in=held)} == {1}
    assert queues.paused_queues() == []


@pytest.mark.postgres
def test_resume_wakes_idle_workers_at_once_not_at_their_next_poll(start_worker):
    call_command("jobs", "pause", "held")
    job = flow_tasks.pausable.using(queue_name="held").enqueue("woken")
    # A 30 s poll: only the resume's wake-up can start the job within seconds.
    start_worker("--concurrency", "2", env={"DJANGO_JOBS_TEST_POLL": "30"})
    wait_until(lambda: Worker.objects.exists(), 30, message="the worker's registration")
    time.sleep(1.0)  # the worker's first claim found the queue paused; it now sleeps
    assert Job.objects.get(pk=job.pk).status == JobStatus.READY
    resumed = time.monotonic()
    queues.resume("held")
    wait_until(lambda: _all_done([job.pk]), 10, message="the resumed queue's job")
    assert time.monotonic() - resumed < 10


def test_concurrency_limit_one_per_key_never_overlaps_within_a_key(start_worker):
    ids = [
        flow_tasks.one_per_key.enqueue(key, 0.05).pk for n in range(20) for key in ("red", "blue")
    ]
    for _ in range(3):
        start_worker("--concurrency", "10")
    wait_until(lambda: _all_done(ids), 90, message="all keyed jobs")
    runs = _intervals("one_per_key")
    assert sorted(runs) == ["blue", "red"]
    assert _most_at_once(runs["red"]) == 1
    assert _most_at_once(runs["blue"]) == 1
    assert _overlap(runs["red"], runs["blue"]), "one key held the other back"
    # Waiting for the lane never counted an attempt.
    assert {j.attempts for j in Job.objects.filter(pk__in=ids)} == {1}


def test_task_and_queue_limits_cap_running_jobs_and_do_not_block_others(start_worker):
    limited = [flow_tasks.two_at_a_time.enqueue(0.2).pk for _ in range(12)]
    capped = [flow_tasks.capped.using(queue_name="capped").enqueue(0.2).pk for _ in range(12)]
    free = [flow_tasks.unlimited.enqueue(n).pk for n in range(20)]
    for _ in range(3):
        start_worker("--concurrency", "4", "--queue", "default", "--queue", "capped")
    # The unlimited jobs, enqueued last, are not held behind the full lanes.
    wait_until(lambda: _all_done(free), 30, message="the unlimited jobs")
    assert not _all_done(limited)
    wait_until(lambda: _all_done(limited + capped), 90, message="the limited jobs")
    assert _most_at_once(_intervals("two_at_a_time")[""]) == 2
    assert _most_at_once(_intervals("capped")[""]) == 2
    assert {j.attempts for j in Job.objects.filter(pk__in=limited + capped)} == {1}


def test_rate_limit_five_per_second_across_three_workers(start_worker):
    ids = [flow_tasks.five_per_second.enqueue(n).pk for n in range(40)]
    began = time.time()
    for _ in range(3):
        start_worker("--concurrency", "4")
    wait_until(lambda: _all_done(ids), 60, message="the rate-limited jobs")
    starts: list[datetime] = sorted(
        Job.objects.filter(pk__in=ids).values_list("last_attempted_at", flat=True)
    )
    # At most 5 starts (claims, by the database's clock) in any 1 s window.
    stamps = [s.timestamp() for s in starts]
    for i, first in enumerate(stamps):
        assert sum(1 for t in stamps[i:] if t < first + 1.0) <= 5, stamps
    # 40 starts at 5/s: eight windows at least, so over 7 s from first to last.
    assert stamps[-1] - stamps[0] >= 7.0
    assert time.time() - began < 30, "far slower than the rate allows"
    task_starts = sorted(e.value["t"] for e in Event.objects.filter(name="five_per_second:start"))
    assert len(task_starts) == 40


def test_circuit_opens_after_failures_then_one_probe_closes_it(start_worker):
    failing = [flow_tasks.partner_call.enqueue(n).pk for n in range(5)]  # FAILURES: 5
    for _ in range(3):
        start_worker("--concurrency", "4")
    wait_until(
        lambda: Job.objects.filter(pk__in=failing, status=JobStatus.FAILED).count() == 5,
        30,
        message="five failures",
    )
    wait_until(
        lambda: Circuit.objects.filter(name="test-circuit", state=CircuitState.OPEN).exists(),
        10,
        message="the circuit to open",
    )
    Event.objects.create(name="partner-healthy")  # the partner recovers
    waiting = [flow_tasks.partner_call.enqueue(n).pk for n in range(6)]
    time.sleep(1.0)  # inside the 2 s cooldown: nothing runs, no attempt counted
    assert {(j.status, j.attempts) for j in Job.objects.filter(pk__in=waiting)} == {
        (JobStatus.READY, 0)
    }
    wait_until(lambda: _all_done(waiting), 60, message="the jobs after the circuit closed")
    events = list(
        CircuitEvent.objects.filter(circuit_id="test-circuit")
        .order_by("id")
        .values_list("old_state", "new_state", "job_id")
    )
    assert [(old, new) for old, new, _ in events] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    probe_id = events[1][2]
    assert probe_id in waiting and events[2][2] == probe_id
    # Exactly one probe: every other job started after the probe finished.
    probe = Job.objects.get(pk=probe_id)
    others = Job.objects.filter(pk__in=waiting).exclude(pk=probe_id)
    assert all(j.last_attempted_at >= probe.finished_at for j in others)
    assert {j.attempts for j in Job.objects.filter(pk__in=waiting)} == {1}
